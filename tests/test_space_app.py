"""The Space's behaviour without a browser or a server: config, rendering, side-by-side streaming,
Stop, limits and votes, on a tiny local model and a scripted model behind a real HTTP endpoint."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from support.openai_server import LocalOpenAIServer
from support.scripted import ANSWER, MONOLOGUE, thinking_template_model, warm, wait_for_generation_threads

from pushback.backends import GenerationParams
from space.config import SpaceConfig, load_config
from space.render import MONOLOGUE_TITLE, as_text, reply_messages, stats_line
from space.streaming import stream_side_by_side
from space.ui import App, ChatSession, example_groups

ASK = [{"role": "user", "content": "Is the sky green?"}]


@pytest.fixture(scope="module")
def make_app(fixed_model, scripted, tmp_path_factory):
    defaults = dict(baseline=fixed_model, friction=scripted.spec(), prompted_column=False, max_new_tokens=48,
                    configured=True)
    warm(SpaceConfig(**{**defaults, "prompted_column": True}))

    def make(**settings) -> App:
        folder = str(tmp_path_factory.mktemp("votes"))
        return App(SpaceConfig(**{**defaults, "feedback_dir": folder, **settings}))

    return make


def run_turn(app: App, text: str, session: ChatSession, session_id: str = "visitor") -> list[tuple[list, str]]:
    return list(app.chat(text, session, session_id))


# --- config ---------------------------------------------------------------------------------------


def test_config_defaults_to_the_pocket_pair_and_reads_env_and_yaml(tmp_path):
    default = load_config(env={})
    assert (default.baseline, default.friction, default.configured, default.uses_pocket) == (
        "pocket:baseline", "pocket:friction", False, True)
    assert default.columns()["prompted"][1] == "pocket:baseline@system=friction"

    yaml_file = tmp_path / "space.yaml"
    yaml_file.write_text("baseline: Qwen/Qwen2.5-0.5B-Instruct\nmax_turns: 3\nprompted_column: false\n")
    config = load_config(env={"PUSHBACK_CONFIG": str(yaml_file), "PUSHBACK_FRICTION": "litellm:ollama_chat/qwen2.5"})
    assert (config.baseline, config.friction, config.max_turns, config.configured) == (
        "Qwen/Qwen2.5-0.5B-Instruct", "litellm:ollama_chat/qwen2.5", 3, True)
    assert list(config.columns()) == ["baseline", "friction"]

    yaml_file.write_text("baseline: x\nmax_prompt_char: 10\n")
    with pytest.raises(ValueError, match=r"space.yaml: unknown setting\(s\) max_prompt_char"):
        load_config(yaml_file, env={})


def test_example_config_file_loads():
    config = load_config(Path(__file__).parent.parent / "space.yaml.example", env={})
    assert config.configured and config.friction.startswith("litellm:")


def test_examples_come_from_the_held_out_split_grouped_by_category():
    from pushback.splits import curated_split

    groups = example_groups()
    train, _ = curated_split()
    trained_on = {r.user_input for r in train}
    assert len(groups) >= 4 and all(1 <= len(prompts) <= 4 for prompts in groups.values())
    assert not trained_on & {p for prompts in groups.values() for p in prompts}


# --- rendering ------------------------------------------------------------------------------------


def test_text_is_escaped_outside_code_and_literal_inside():
    assert as_text("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert as_text("use `a < b` here <b>") == "use `a < b` here &lt;b&gt;"
    fenced = "```py\nif a < b:\n    pass\n```\n"
    assert as_text(fenced + "<i>x</i>") == fenced + "&lt;i&gt;x&lt;/i&gt;"
    assert as_text("```\nstill streaming <b") == "```\nstill streaming <b"  # an open fence is code to the end
    # A code span stays within a paragraph: a lone backtick does not shield what follows it.
    assert as_text("a `tick\n\n<img src=x>\n\n` b") == "a `tick\n\n&lt;img src=x&gt;\n\n` b"


# --- streaming ------------------------------------------------------------------------------------


def test_both_sides_stream_at_once_and_the_monologue_is_split_out(make_app, scripted, fixed_model):
    params = GenerationParams(max_new_tokens=48)
    jobs = {"baseline": (fixed_model, ASK), "friction": (scripted.spec(), ASK)}
    snapshots = []
    for replies in stream_side_by_side(jobs, params, threading.Event(), min_interval=0.01):
        snapshots.append({k: (len(r.raw), r.done) for k, r in replies.items()})
    final = replies
    # Somewhere both had text while neither had finished: they streamed together, not one after the other.
    assert any(all(n > 0 and not done for n, done in snap.values()) for snap in snapshots), snapshots
    friction = final["friction"]
    assert (friction.split.monologue, friction.split.answer) == (MONOLOGUE, ANSWER)
    assert friction.monologue_tokens > 0 and friction.answer_tokens > 0 and friction.ttft is not None
    assert final["baseline"].answer_tokens > 0 and final["baseline"].tokens_per_second > 0
    messages = reply_messages(friction)
    assert messages[0]["metadata"]["title"] == MONOLOGUE_TITLE and messages[0]["metadata"]["status"] == "done"
    assert messages[1]["content"] == as_text(ANSWER)
    assert "monologue" in stats_line(friction) and "tok/s" in stats_line(friction)


def test_a_template_that_opens_think_starts_inside_the_monologue(tiny_model_dir, tmp_path):
    model = str(thinking_template_model(tiny_model_dir, tmp_path / "think"))
    jobs = {"thinker": (model, ASK)}
    snapshots = []
    for replies in stream_side_by_side(jobs, GenerationParams(max_new_tokens=16), threading.Event()):
        snapshots.append((replies["thinker"].split.thinking, replies["thinker"].done))
    reply = replies["thinker"]
    assert any(thinking and not done for thinking, done in snapshots)  # shown as thinking while it streamed
    assert reply.split.blocks == 1 and reply.split.monologue and not reply.split.answer
    assert reply.monologue_tokens > 0 and reply.answer_tokens == 0
    block, answer = reply_messages(reply)
    assert block["metadata"] == {**block["metadata"], "title": MONOLOGUE_TITLE, "status": "done"}
    assert answer["content"] == "_(no answer)_"


def test_stop_ends_a_hung_endpoint_after_the_grace_period(monkeypatch):
    import litellm

    monkeypatch.setattr(litellm, "suppress_debug_info", True)  # the abandoned call fails when the server closes
    before = set(threading.enumerate())
    with LocalOpenAIServer(fault_rate=1.0, faults=("hang",), hang_seconds=20) as hung:
        stop = threading.Event()
        spec = f"litellm:openai/hung@api_base={hung.url}"
        stream = stream_side_by_side({"hung": (spec, ASK)}, GenerationParams(), stop, stop_grace=0.3)
        next(stream)
        threading.Timer(0.3, stop.set).start()
        started = time.perf_counter()
        final = list(stream)[-1]["hung"]
        assert time.perf_counter() - started < 3
        assert final.done and final.stopped and final.error is None
    assert not wait_for_generation_threads(before, timeout=5)  # the abandoned side ends once the call does


def test_a_failing_spec_shows_its_reason_and_the_other_side_answers(make_app, tmp_path):
    app = make_app(baseline=str(tmp_path / "no-such-model"))
    frames = run_turn(app, "Is the sky green?", ChatSession())
    (baseline_chat, friction_chat, baseline_stats, _), status = frames[-1]
    assert "This model is unavailable" in baseline_chat[-1]["content"] and "cannot load" in baseline_chat[-1]["content"]
    assert baseline_stats == "error" and status == ""
    assert friction_chat[-1]["content"] == as_text(ANSWER)


# --- the App: limits, Stop, history, votes ---------------------------------------------------------


def test_bad_inputs_get_a_clear_message_and_run_nothing(make_app):
    app = make_app(max_prompt_chars=50, max_turns=1)
    session = ChatSession()
    assert run_turn(app, "   ", session)[-1][1] == "⚠️ Type a prompt first."
    assert "limit here is 50" in run_turn(app, "x" * 51, session)[-1][1]
    assert not session.turns
    assert run_turn(app, "Is the sky green?", session)[-1][1] == ""
    assert "reached 1 turns" in run_turn(app, "And the sea?", session)[-1][1]
    assert len(session.turns) == 1


def test_stop_ends_generation_threads_not_just_the_stream(make_app):
    app = make_app(max_new_tokens=1500)  # the fixed-length model would take seconds to write 1500 tokens
    before = set(threading.enumerate())
    session = ChatSession()
    chat = app.chat("endless: think forever", session, "visitor")
    for _, status in chat:
        replies = session.turns[-1]["replies"]
        if replies and all(r.raw for r in replies.values()):
            break
    pressed = time.perf_counter()
    assert app.stop("visitor") == 1
    chats, status = list(chat)[-1]
    assert time.perf_counter() - pressed < 2 and status == "Stopped."
    replies = session.turns[-1]["replies"]
    assert all(r.stopped for r in replies.values()) and replies["baseline"].answer_tokens < 1500
    assert "_(stopped)_" in chats[0][-1]["content"]
    left = wait_for_generation_threads(before, timeout=3)
    assert not left, f"generation threads still running after Stop: {left}"
    assert app.stop("visitor") == 0  # nothing left registered for this visitor


def test_history_keeps_answers_without_monologues_and_regenerate_replaces_the_turn(make_app):
    app = make_app()
    session = ChatSession()
    run_turn(app, "Is the sky green?", session)
    messages = session.model_messages("friction", "Why?")
    assert messages == [{"role": "user", "content": "Is the sky green?"}, {"role": "assistant", "content": ANSWER},
                        {"role": "user", "content": "Why?"}]
    first = session.turns[-1]["replies"]["baseline"].raw
    run_turn(app, "", session)  # rejected: changes nothing
    frames = list(app.regenerate(session, "visitor"))
    assert len(session.turns) == 1 and session.turns[-1]["replies"]["baseline"].raw != first
    assert frames[-1][1] == ""
    assert list(app.regenerate(ChatSession()))[-1][1] == "Nothing to regenerate yet."


def test_a_vote_records_the_server_side_turn_once(make_app):
    app = make_app(prompted_column=True)
    session = ChatSession()
    assert app.vote("friction", session) == "Vote after the models have answered."
    run_turn(app, "Is the sky green? <b>hi</b>", session)
    assert app.vote("friction", session) == "Thanks! Recorded: Friction better."
    assert "already voted" in app.vote("tie", session)
    with pytest.raises(ValueError, match="unknown vote"):
        app.vote("best", session)
    rows = [json.loads(line) for line in app.feedback.path.read_text().splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert row["vote"] == "friction" and row["prompt"] == "Is the sky green? <b>hi</b>"
    assert set(row["answers"]) == {"baseline", "friction", "prompted"}
    assert row["answers"]["friction"]["answer"] == ANSWER and row["answers"]["friction"]["monologue"] == MONOLOGUE
    assert row["specs"] == {key: spec for key, (_, spec) in app.columns.items()}
    assert row["specs"]["prompted"].endswith("@system=friction")
    assert row["timestamp"].endswith("+00:00")


def test_a_second_prompt_waits_for_the_first(make_app):
    app = make_app()
    session = ChatSession()
    before = set(threading.enumerate())
    chat = app.chat("endless", session, "visitor")
    next(chat)
    assert "still answering" in run_turn(app, "another", session)[-1][1]
    assert "still answering" in list(app.regenerate(session, "visitor"))[-1][1]
    chat.close()  # the visitor left: closing the stream stops its generation
    assert not session.generating and app.stop("visitor") == 0
    assert not wait_for_generation_threads(before, timeout=3)


def test_on_a_space_votes_are_committed_to_the_feedback_dataset(monkeypatch, tmp_path):
    """Only the last hop is fake: `pushback.hub.hub_api` returns a recorder in place of HfApi."""
    from concurrent.futures import Future

    import pushback.hub
    from space.votes import FeedbackLog

    class RecordingHub:
        def __init__(self) -> None:
            self.repos, self.commits = [], []

        def create_repo(self, repo_id: str, repo_type: str, **kwargs):
            self.repos.append((repo_id, repo_type))
            return type("RepoUrl", (), {"repo_id": repo_id})()

        def run_as_future(self, fn) -> Future:
            future: Future = Future()
            future.set_result(fn())
            return future

        def create_commit(self, repo_id: str, repo_type: str, operations, **kwargs):
            self.commits.append({op.path_in_repo: op.path_or_fileobj.read().decode() for op in operations})

    hub = RecordingHub()
    monkeypatch.setattr(pushback.hub, "hub_api", lambda: hub)
    assert FeedbackLog(tmp_path / "local", "me/votes").scheduler is None  # not on a Space: nothing leaves the machine
    monkeypatch.setenv("SPACE_ID", "me/pushback")
    log = FeedbackLog(tmp_path / "space", "me/votes")
    try:
        log.record({"vote": "tie", "prompt": "Is the sky green?"})
        log.scheduler.trigger().result()
    finally:
        log.scheduler.stop()
    assert hub.repos == [("me/votes", "dataset")]
    (uploaded,) = [c for c in hub.commits if c]
    (path, text), = uploaded.items()
    assert path == f"votes/{log.path.name}" and json.loads(text)["prompt"] == "Is the sky green?"
