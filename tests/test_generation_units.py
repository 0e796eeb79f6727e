"""Generation pieces without a server: lenient parsing, templates, the plan, retry policy, prompt building."""
from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import pytest

from pushback.endpoint import Endpoint, EmptyReply, RetryPolicy, retry_after
from pushback.redaction import redact
from generation.parse import clean_prompt, clean_reply
from generation.pipeline import CRITICAL_CALLS, Relay
from generation.plan import Examples, Job, allocate, category_weights, plan_jobs, read_curated
from generation.store import read_output, repair, set_aside_path
from generation.templates import TemplateError, load_templates
from pushback.records import CATEGORIES, PERSONAS, make_record, read_records, write_records


@pytest.mark.parametrize("raw, clean", [
    ("Plain text.", "Plain text."),
    ('"Is the sky green?"', "Is the sky green?"),
    ("“Curly quotes”", "Curly quotes"),
    ("User message: Is the sky green?", "Is the sky green?"),
    ("**Thought:** The premise is false.", "The premise is false."),
    ("Here is the message:\nIs the sky green?", "Is the sky green?"),
    ("<think>\nLet me write one.\n</think>\n\nIs the sky green?", "Is the sky green?"),
    ("```\nFinal answer: It is blue.\n```", "It is blue."),
    ("<message>\nIs the sky green?\n</message>", "Is the sky green?"),
    ("'I don't know' is fine", "'I don't know' is fine"),  # inner apostrophe: not a quoted reply
])
def test_clean_reply_strips_what_models_wrap_around_answers(raw, clean):
    assert clean_reply(raw) == clean


def test_clean_prompt_takes_the_first_option_and_rejects_a_declined_request():
    assert clean_prompt("1. Is the sky green?\n2. Why is grass blue?") == "Is the sky green?"
    with pytest.raises(EmptyReply) as declined:
        clean_prompt("I'm sorry, but I can't help with writing that.")
    assert declined.value.cause == "declined"
    with pytest.raises(EmptyReply):
        clean_reply("<think>only thinking, no answer</think>")


def test_builtin_templates_load_and_render_every_persona_category_and_behaviour():
    templates = load_templates()
    for persona in PERSONAS:
        assert templates.persona_guide(persona)
    for category in CATEGORIES:
        assert templates.category_guide(category)
    assert len(templates.topics) >= 10
    text = templates.render("baseline", user_input="Is the sky green?")
    assert "Is the sky green?" in text and "$" not in text


def test_override_templates_replace_file_by_file_and_bad_placeholders_are_located(tmp_path: Path):
    (tmp_path / "baseline.txt").write_text("Task: write the eager answer\n<message>$user_input</message>\nBe eager.")
    templates = load_templates(tmp_path)
    assert templates.sources["baseline"] == tmp_path / "baseline.txt"
    assert templates.sources["prompt"].parent.name == "templates"  # the rest stay built-in
    (tmp_path / "baseline.txt").write_text("Answer $user_imput eagerly.")
    expected = r"baseline\.txt: unknown placeholder\(s\) \$user_imput; allowed: \$user_input"
    with pytest.raises(TemplateError, match=expected):
        load_templates(tmp_path)
    with pytest.raises(TemplateError, match="not a directory"):
        load_templates(tmp_path / "missing")


def test_mix_follows_the_curated_balance_and_allocation_is_exact():
    curated = read_curated()
    weights = category_weights(curated)
    counts = Counter(r.category for r in curated)
    assert set(weights) == {c for c in CATEGORIES if counts[c]}
    assert sum(allocate(97, weights).values()) == 97
    jobs = plan_jobs(600, Counter(), weights, topics=["a", "b"], seed=1)
    planned = Counter(j.category for j in jobs)
    for category, share in weights.items():
        assert abs(planned[category] / 600 - share) < 0.01
    assert category_weights(curated, ["harmful", "benign"]).keys() == {"harmful", "benign"}
    lacking = [r for r in curated if r.category != "sycophancy"]
    assert "sycophancy" not in category_weights(lacking)  # the default mix follows the curated set
    named = category_weights(lacking, ["harmful", "sycophancy"])  # a named category always gets a share
    assert named["sycophancy"] > 0 and abs(sum(named.values()) - 1) < 1e-9
    with pytest.raises(ValueError, match="unknown nonsense"):
        category_weights(curated, ["nonsense"])


def test_plan_counts_what_exists_and_twins_fill_two_slots():
    weights = {"harmful": 0.5, "benign": 0.5}
    jobs = plan_jobs(10, Counter({"harmful": 5}), weights, topics=["t"])
    assert Counter(j.category for j in jobs) == Counter({"benign": 5})  # the short category is filled first
    assert plan_jobs(10, Counter({"benign": 10}), weights, topics=["t"]) == []
    twins = plan_jobs(9, Counter(), weights, topics=["t"], twins=True, seed=3)
    assert sum(j.slots for j in twins) == 9
    assert all(j.twin == (j.category != "benign") for j in twins[:-1])
    same = [plan_jobs(20, Counter(), weights, topics=["t"], seed=5) for _ in range(2)]
    assert same[0] == same[1]  # deterministic for a seed


def test_retry_policy_backs_off_exponentially_with_jitter_up_to_the_cap():
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0)
    rng = random.Random(0)
    waits = [policy.backoff(attempt, rng) for attempt in range(8)]
    assert 0.5 <= waits[0] <= 1.0 and 2.0 <= waits[2] <= 4.0
    assert all(5.0 <= w <= 10.0 for w in waits[4:])
    assert len({round(w, 6) for w in waits[4:]}) > 1  # jittered, not lock-step


def test_retry_after_reads_ms_seconds_and_dates_and_secrets_are_redacted():
    class Error(Exception):
        def __init__(self, headers):
            self.litellm_response_headers = headers

    assert retry_after(Error({"retry-after-ms": "250", "retry-after": "1"})) == 0.25
    assert retry_after(Error({"retry-after": "3"})) == 3.0
    assert retry_after(Error({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0  # in the past
    assert retry_after(Error({})) is None
    message = "Incorrect API key provided: sk-proj-abc123456789XYZ. Key my-secret-value rejected"
    cleaned = redact(message, "my-secret-value")
    assert "abc123456789" not in cleaned and "my-secret-value" not in cleaned


def test_relay_builds_prompts_from_templates_and_examples_with_mock_response():
    """LiteLLM's mock_response stands in for the provider; we check what each step asks for."""
    templates, curated = load_templates(), read_curated()
    client = Endpoint("openai/mock", temperature=0.0)
    sent: list[str] = []
    original = client._attempt

    async def recording(kwargs):
        sent.append(kwargs["messages"][-1]["content"])
        return await original({**kwargs, "mock_response": f"reply {len(sent)}"})

    client._attempt = recording
    relay = Relay(client, templates, Examples(curated, k=2))
    job = Job(0, "false_premise", "science", twin=False)
    written: list = []

    async def run():
        async def write(record):
            written.append(record)
        return await relay.run(job, set(), write)

    assert asyncio.run(run()) == 1
    record = written[0]
    assert len(sent) == CRITICAL_CALLS + 1  # prompt, six personas, synthesis, and the baseline beside them
    assert sent[0].startswith("Task: write a user message") and "Category: false_premise" in sent[0]
    curated_prompts = [r.user_input for r in curated if r.category == "false_premise"]
    assert sum(" ".join(p.split()) in sent[0] for p in curated_prompts) == 2  # two few-shot examples
    persona_requests = [s for s in sent if s.startswith("Task: think as one persona")]
    assert [s.split("Persona: ")[1].split("\n")[0] for s in persona_requests] == list(PERSONAS)
    assert "(none yet" in persona_requests[0] and "[problem framer] reply" in persona_requests[1]  # relay
    assert [a.agent_type for a in record.agents] == list(PERSONAS)
    assert record.user_input == "reply 1" and record.metadata.source == "generated" and record.expected == "push_back"
    assert record.metadata.model == "openai/mock" and record.metadata.topic == "science"


def test_a_truncated_tail_is_set_aside_only_when_the_first_record_is_ready(tmp_path: Path):
    out = tmp_path / "records.jsonl"
    records = [make_record(f"Question {i}?", "benign", [("problem_framer", "Fine.")], "Answer.", "Sure!")
               for i in range(3)]
    write_records(out, records)
    with open(out, "a", encoding="utf-8") as f:
        f.write(records[0].to_json()[:40])  # a write cut off by kill -9
    before = out.read_bytes()
    existing = read_output(out)
    assert out.read_bytes() == before and not set_aside_path(out).exists()  # reading changes nothing
    assert [r.id for r in existing.records] == [r.id for r in records]
    assert len(existing.set_aside) == 1 and "truncated last line" in str(existing.set_aside[0])
    repair(out, existing)  # what the appender does before the first new record
    assert records[0].to_json()[:40] in set_aside_path(out).read_text()
    again = read_records(out)
    assert not again.problems and len(again.records) == 3 and out.read_bytes().endswith(b"\n")
    # A complete record that only lacks its newline is kept, and the newline added.
    out.write_text(records[0].to_json() + "\n" + records[1].to_json())
    existing = read_output(out)
    repair(out, existing)
    assert len(existing.records) == 2 and out.read_text().endswith("\n")
