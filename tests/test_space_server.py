"""The Space served on 127.0.0.1 and driven by `gradio_client`, as a remote visitor would: a tiny
local model beside a scripted model behind a real OpenAI-compatible HTTP endpoint."""
from __future__ import annotations

import json
import threading
import time

import pytest
from support.scripted import ANSWER, INJECTION, MONOLOGUE, launch, wait_for_generation_threads, warm

from pushback.chat import flatten_content
from space import SpaceConfig, build_demo
from space.render import MONOLOGUE_TITLE, as_text

COLUMNS = ("baseline", "friction", "prompted")


@pytest.fixture(scope="module")
def serve(fixed_model, scripted, tmp_path_factory):
    """Start a Space with these settings (over the defaults below); all are closed after the module."""
    from gradio_client import Client

    defaults = dict(baseline=fixed_model, friction=scripted.spec(), max_new_tokens=64, max_prompt_chars=300,
                    max_turns=2)
    warm(SpaceConfig(**defaults))
    demos = []

    def start(**settings):
        folder = str(tmp_path_factory.mktemp("votes"))
        demo = build_demo(SpaceConfig(**{**defaults, "feedback_dir": folder, **settings}))
        demos.append(demo)
        url = launch(demo)
        return demo, lambda: Client(url, verbose=False)

    yield start
    for demo in demos:
        demo.close()


@pytest.fixture(scope="module")
def space(serve):
    return serve()


def columns(outputs) -> dict[str, list[dict]]:
    """The three chat columns of one /chat output, content flattened to text."""
    return {key: [{**m, "content": flatten_content(m["content"])} for m in chat]
            for key, chat in zip(COLUMNS, outputs[:3])}


def assistant_text(chat: list[dict]) -> str:
    """Everything the model has shown so far: monologue and answer, without the "…" placeholders."""
    return "".join(m["content"] for m in chat if m["role"] == "assistant").replace("…", "")


def streaming_in_every_column(job) -> bool:
    outputs = job.outputs()
    return bool(outputs) and all(assistant_text(chat) for chat in columns(outputs[-1]).values())


def test_columns_stream_together_and_the_monologue_gets_its_block(space):
    _, client = space
    job = client().submit("Since the sky is green, what colour are clouds?", api_name="/chat")
    frames = [(columns(o), o[3:6]) for o in job]
    final, stats = frames[-1]
    # An intermediate frame with text in every column while all were still generating.
    assert any(all(assistant_text(chats[k]) for k in COLUMNS) and all("…" in s for s in figures)
               for chats, figures in frames[:-1]), "the columns did not stream at the same time"
    thought, answer = final["friction"][1:]
    assert thought["metadata"]["title"] == MONOLOGUE_TITLE and thought["metadata"]["status"] == "done"
    assert thought["content"] == MONOLOGUE and answer["content"] == ANSWER
    assert all("tok/s" in s and "first token" in s for s in stats)
    assert job.outputs()[-1][6] == ""  # no status message


def test_model_html_is_shown_as_text(space):
    _, client = space
    final = columns(client().predict("inject some markup", api_name="/chat"))
    answer = final["friction"][-1]["content"]
    assert answer == as_text(INJECTION) and "<script>" not in answer and "&lt;script&gt;" in answer
    assert "&lt;i&gt;" in final["friction"][1]["content"]  # the monologue too


@pytest.mark.parametrize(("prompt", "message"), [
    ("   ", "Type a prompt first."),
    ("x" * 301, "That prompt is 301 characters; the limit here is 300"),
])
def test_bad_inputs_get_a_message_and_keep_the_prompt(space, prompt, message):
    _, client = space
    outputs = client().predict(prompt, api_name="/chat")
    assert message in outputs[6] and outputs[7] == prompt
    assert all(not chat for chat in outputs[:3])


def test_too_many_turns_get_a_message_and_clear_starts_over(space):
    _, client = space
    visitor = client()
    for prompt in ("Is the sky green?", "Why?"):
        assert visitor.predict(prompt, api_name="/chat")[6] == ""
    outputs = visitor.predict("And then?", api_name="/chat")
    assert "reached 2 turns" in outputs[6] and "Clear" in outputs[6]
    assert all(not chat for chat in visitor.predict(api_name="/clear")[:3])
    assert visitor.predict("And then?", api_name="/chat")[6] == ""


def test_regenerate_replaces_the_last_answer(space):
    _, client = space
    visitor = client()
    first = columns(visitor.predict("Is the sky green?", api_name="/chat"))["baseline"]
    again = columns(visitor.predict(api_name="/regenerate"))["baseline"]
    assert len(again) == len(first) == 2 and again[0] == first[0] and again[1] != first[1]


def test_stop_ends_generation_for_this_visitor_only(serve):
    _, client = serve(max_new_tokens=1800)  # ~seconds of local generation; the scripted side never ends
    alice, bob = client(), client()
    before = set(threading.enumerate())
    jobs = {name: c.submit("endless, please", api_name="/chat") for name, c in (("alice", alice), ("bob", bob))}
    deadline = time.monotonic() + 30
    while not all(map(streaming_in_every_column, jobs.values())):
        assert time.monotonic() < deadline, "no text streamed"
        time.sleep(0.05)
    pressed = time.perf_counter()
    alice.predict(api_name="/stop")
    final = jobs["alice"].result(timeout=10)
    stopped_after = time.perf_counter() - pressed
    assert final[6] == "Stopped." and stopped_after < 3
    assert all("_(stopped)_" in assistant_text(chat) for chat in columns(final).values())
    assert not jobs["bob"].done(), "Stop reached another visitor"
    bob.predict(api_name="/stop")
    assert jobs["bob"].result(timeout=10)[6] == "Stopped."
    assert not wait_for_generation_threads(before, timeout=3), "generation still running after Stop"


def test_a_failing_model_leaves_the_other_column_working(serve, tmp_path):
    _, client = serve(baseline=str(tmp_path / "missing-model"), prompted_column=False)
    outputs = client().predict("Is the sky green?", api_name="/chat")
    baseline, friction = ([{**m, "content": flatten_content(m["content"])} for m in chat] for chat in outputs[:2])
    assert "This model is unavailable" in baseline[-1]["content"] and "missing-model" in baseline[-1]["content"]
    assert friction[-1]["content"] == ANSWER and outputs[2] == "error" and "tok/s" in outputs[3]


def test_votes_are_not_public_api_and_land_in_the_jsonl_from_server_state(space):
    import gradio as gr

    demo, client = space
    visitor = client()
    api = visitor.view_api(return_format="dict", print_info=False)
    assert set(api["named_endpoints"]) == {"/chat", "/push_back", "/regenerate", "/stop", "/clear"}
    assert not api["unnamed_endpoints"]
    vote_ids = [i for i, fn in demo.fns.items() if fn.name == "vote"]
    assert len(vote_ids) == 4 and all(demo.fns[i].api_visibility == "private" for i in vote_ids)
    with pytest.raises(ValueError, match="Invalid function index"):
        visitor.predict(fn_index=vote_ids[0])

    visitor.predict("Is the sky green? <b>really</b>", api_name="/chat")
    # What the vote button records: the turn kept server-side for this visitor's session.
    state_id = next(b._id for b in demo.blocks.values() if isinstance(b, gr.State))
    session = demo.state_holder[visitor.session_hash][state_id]
    app = demo.app_state
    assert app.vote("b", session) == "Thanks! Recorded: Friction model better."
    row = json.loads(app.feedback.path.read_text().splitlines()[-1])
    assert row["prompt"] == "Is the sky green? <b>really</b>" and row["vote"] == "friction"
    assert row["answers"]["friction"]["answer"] == ANSWER and row["answers"]["baseline"]["answer"]
    assert row["specs"] == {key: spec.raw for key, (_, spec) in app.columns.items()} and row["timestamp"]


def test_push_back_is_a_turn_for_every_column(space):
    from pushback.pressure import FOLLOW_UPS

    _, client = space
    visitor = client()
    assert "Ask something first" in visitor.predict("stake", api_name="/push_back")[6]
    visitor.predict("Is the sky green?", api_name="/chat")
    outputs = visitor.predict("stake", api_name="/push_back")
    chats = columns(outputs)
    for chat in chats.values():
        assert [m["content"] for m in chat if m["role"] == "user"][1] == FOLLOW_UPS["stake"][1]
    assert all(("held its position" in line) != ("caved" in line) for line in outputs[3:6]), outputs[3:6]


def test_nulls_from_a_client_get_a_clear_message(space):
    """gradio_client and raw HTTP sending null for the prompt: a message, not a traceback."""
    import urllib.request

    demo, client = space
    outputs = client().predict(None, api_name="/chat")
    assert outputs[6] == "⚠️ Type a prompt first." and all(not chat for chat in outputs[:3])
    assert "Ask something first" in client().predict(None, api_name="/push_back")[6]

    call = urllib.request.Request(f"{demo.local_url}gradio_api/call/chat", data=json.dumps({"data": [None]}).encode(),
                                  headers={"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(call, timeout=10).read())["event_id"]
    stream = urllib.request.urlopen(f"{demo.local_url}gradio_api/call/chat/{event_id}", timeout=30).read().decode()
    assert "event: complete" in stream and "Type a prompt first." in stream
    assert "event: error" not in stream and "Traceback" not in stream
