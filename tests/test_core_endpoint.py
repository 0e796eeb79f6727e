"""The one way to call an endpoint (`pushback.endpoint`) as the backends use it: a streamed reply through
LiteLLM to the real loopback server, its retries before the first chunk, and provider messages that
never carry a key -- to the screen, an exception, or a judge's output file."""
from __future__ import annotations

import traceback

import pytest

from pushback.backends import BackendError, GenerationParams, load_backend
from pushback.endpoint import RetryPolicy
from pushback.redaction import redact

HELLO = [{"role": "user", "content": "Task: write the eager answer\n<message>\nHow do tides work?\n</message>"}]
KEY = "zz-not-a-real-key-0123456789"  # no well-known prefix: only real redaction catches it


def test_redact_masks_keys_given_named_in_the_environment_and_echoed_in_part(monkeypatch):
    assert redact(f"Incorrect API key provided: {KEY}.", KEY) == "Incorrect API key provided: ***."
    assert KEY[:14] not in redact(f"key {KEY[:14]}****{KEY[-4:]} rejected", KEY)  # an echo of part of it
    monkeypatch.setenv("SOME_PROVIDER_API_KEY", KEY)  # a key LiteLLM may read on its own
    assert KEY not in redact(f"bad key {KEY}")
    assert "hf_abcdefghijklmnop" not in redact("token hf_abcdefghijklmnop refused")  # shaped like a known key
    assert redact("a plain message about 127.0.0.1:8000 and --api-key-env") == \
        "a plain message about 127.0.0.1:8000 and --api-key-env"
    assert redact("cannot reach https://bob:s3cret-pass@proxy:8080/v1") == "cannot reach https://***@proxy:8080/v1"


def test_a_recorded_command_line_keeps_no_credentials():
    from pushback.provenance import provenance

    command = provenance(argv=["pushback", "eval", "--judge", "litellm:x@api_base=https://bob:s3cret@h/v1",
                               "--note", "sk-abcdefghijklmnop"])["command"]
    assert "s3cret" not in command and "abcdefghijklmnop" not in command and "--judge" in command


def _spec(server, name: str = "PUSHBACK_ENDPOINT_TEST_KEY") -> str:
    return f"litellm:openai/local@api_base={server.url}@api_key_env={name}"


def test_a_401_that_repeats_the_key_is_one_fatal_error_without_the_key(server, monkeypatch, capfd):
    server.api_key, server.echo_key = "the-right-key", True
    monkeypatch.setenv("PUSHBACK_ENDPOINT_TEST_KEY", KEY)
    backend = load_backend(_spec(server))
    with pytest.raises(BackendError) as failed:
        backend.generate(HELLO, GenerationParams(max_new_tokens=20))
    shown = str(failed.value) + "".join(traceback.format_exception(failed.value))
    assert failed.value.fatal and "AuthenticationError" in shown and "check the key" in shown
    assert KEY not in shown and KEY[:12] not in shown  # nor in the chained exceptions a traceback would print
    assert server.counts["401"] == server.counts["requests"] == 1  # never retried
    printed = capfd.readouterr()  # nor in anything LiteLLM logged on the way
    assert KEY not in printed.out + printed.err


def test_a_stream_is_retried_before_its_first_chunk(server, monkeypatch):
    monkeypatch.setenv("PUSHBACK_ENDPOINT_TEST_KEY", "anything-goes-here")
    server.scripted_faults = ["500", "429"]
    text = load_backend(_spec(server)).generate(HELLO, GenerationParams(max_new_tokens=40))
    assert text.startswith("Sure! Great question.") and server.counts["requests"] == 3
    assert server.counts["500"] == server.counts["429"] == 1


def test_the_backend_gives_up_after_its_retries_with_a_clear_message(server, monkeypatch):
    from pushback.backends import LiteLLMBackend
    from pushback.specs import parse_spec

    monkeypatch.setenv("PUSHBACK_ENDPOINT_TEST_KEY", "anything-goes-here")
    server.scripted_faults = ["500"] * 3
    backend = LiteLLMBackend(parse_spec(_spec(server)), RetryPolicy(max_retries=2, base_delay=0.01))
    with pytest.raises(BackendError, match="gave up after 3 attempts") as failed:
        backend.generate(HELLO)
    assert not failed.value.fatal and server.counts["requests"] == 3


def test_a_judge_answering_401_with_the_key_leaves_no_key_in_its_rows(server, monkeypatch, tmp_path, capfd):
    """The probe: `judge_error` in the output held the whole key (evaluation.judge calls through the backend).
    A judge that is refused judges nothing: it fails, and neither its message nor its cache holds the key."""
    from evaluation.judge import JudgeFailed, judge_rows
    from pushback.specs import parse_spec

    server.api_key, server.echo_key = "the-right-key", True
    monkeypatch.setenv("PUSHBACK_JUDGE_TEST_KEY", KEY)
    rows = [{"prompt": "How do tides work?", "response": "The Moon pulls the sea.", "label": "comply"}]
    cache = tmp_path / "verdicts.jsonl"
    with pytest.raises(JudgeFailed) as failed:
        judge_rows(rows, parse_spec(_spec(server, "PUSHBACK_JUDGE_TEST_KEY")), cache=cache)
    assert "Authentication" in str(failed.value) and KEY not in str(failed.value)
    assert not cache.exists() or KEY not in cache.read_text()
    printed = capfd.readouterr()
    assert KEY not in printed.out + printed.err

def test_a_recorded_command_line_is_the_one_a_user_types():
    from pushback.provenance import provenance

    for argv in (["/x/pushback/__main__.py", "classify", "--validate"], ["/venv/bin/pushback", "classify", "--validate"]):
        assert provenance(argv=argv)["command"] == "pushback classify --validate"
    assert provenance(argv=["bench/pocket.py", "--seeds", "0"])["command"] == "python bench/pocket.py --seeds 0"
