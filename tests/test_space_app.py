"""The Space's behaviour without a browser or a server: config, rendering, side-by-side streaming,
Stop, limits and votes, on a tiny local model and a scripted model behind a real HTTP endpoint."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import yaml
from support.openai_server import LocalOpenAIServer
from support.scripted import ANSWER, MONOLOGUE, thinking_template_model, warm, wait_for_generation_threads

from pushback.backends import GenerationParams
from pushback.hub import hub_api
from pushback.paths import cache_dir
from pushback.specs import parse_spec
from space.config import SpaceConfig, load_config
from space.render import MONOLOGUE_TITLE, as_text, reply_messages, stats_line
from space.streaming import stream_side_by_side
from space.ui import App, ChatSession, banner, example_groups

ASK = [{"role": "user", "content": "Is the sky green?"}]
ROOT = Path(__file__).resolve().parent.parent
BASE, ADAPTER = "Qwen/Qwen2.5-0.5B-Instruct", "pushback-ai/friction-qwen2.5-0.5b-lora"


@pytest.fixture(scope="module")
def make_app(fixed_model, scripted, tmp_path_factory):
    defaults = dict(baseline=fixed_model, friction=scripted.spec(), prompted_column=False, max_new_tokens=48)
    warm(SpaceConfig(**{**defaults, "prompted_column": True}))

    def make(**settings) -> App:
        folder = str(tmp_path_factory.mktemp("votes"))
        return App(SpaceConfig(**{**defaults, "feedback_dir": folder, **settings}))

    return make


def run_turn(app: App, text: str, session: ChatSession, session_id: str = "visitor") -> list[tuple[list, str]]:
    return list(app.chat(text, session, session_id))


# --- config ---------------------------------------------------------------------------------------


class FakeHub:
    """The last hop to the Hub (`pushback.hub.hub_api()`): answers `model_info` for the repos it holds."""

    def __init__(self, *, missing: tuple[str, ...] = (), down: bool = False):
        self.missing, self.down, self.asked = set(missing), down, []

    def model_info(self, repo_id: str, timeout: float | None = None):
        self.asked.append(repo_id)
        if self.down:
            raise ConnectionError("Failed to resolve 'huggingface.co'")
        if repo_id in self.missing:
            raise LookupError(f"404 Client Error: Repository Not Found for url: .../api/models/{repo_id}")
        return {"id": repo_id}


def no_hub():
    raise AssertionError("configured models must not be checked on the Hub")


def test_config_reads_env_and_yaml_and_parses_specs_once(tmp_path):
    yaml_file = tmp_path / "my-space.yaml"
    yaml_file.write_text("baseline: Qwen/Qwen2.5-0.5B-Instruct\nmax_turns: 3\nprompted_column: false\n")
    env = {"PUSHBACK_CONFIG": str(yaml_file), "PUSHBACK_FRICTION": "litellm:ollama_chat/qwen2.5", "PUSHBACK_BLIND": "1"}
    config = load_config(env=env, hub=no_hub)
    assert (config.baseline, config.friction) == (parse_spec("Qwen/Qwen2.5-0.5B-Instruct"),
                                                   parse_spec("litellm:ollama_chat/qwen2.5"))
    assert (config.max_turns, config.blind, config.uses_pocket) == (3, True, False)
    assert list(config.columns()) == ["baseline", "friction"] and "PUSHBACK_FRICTION" in config.why
    assert config.feedback_folder.parent == cache_dir()  # votes go to the cache, never into the checkout

    with pytest.raises(ValueError, match=r"^PUSHBACK_BASELINE: model spec 'x@9bit': unknown or empty option"):
        load_config(env={"PUSHBACK_BASELINE": "x@9bit"}, hub=no_hub)
    yaml_file.write_text("baseline: x\nmax_prompt_char: 10\n")
    with pytest.raises(ValueError, match=r"my-space.yaml: unknown setting\(s\) max_prompt_char"):
        load_config(yaml_file, env={}, hub=no_hub)


def test_with_nothing_configured_and_the_hub_reachable_the_space_serves_the_real_models():
    hub = FakeHub()
    config = load_config(env={}, hub=lambda: hub)
    assert (config.baseline.raw, config.friction.raw) == (BASE, f"{BASE}+{ADAPTER}")
    assert hub.asked == [BASE, BASE, ADAPTER] and not config.uses_pocket
    assert config.columns()["prompted"][1].raw == f"{BASE}@system=friction"
    assert "Real models from the Hub" in banner(config) and ADAPTER in banner(config)


def test_an_adapter_that_cannot_be_fetched_falls_back_to_prompted_friction():
    config = load_config(env={}, hub=lambda: FakeHub(missing=(ADAPTER,)))
    assert (config.baseline.raw, config.friction.raw) == (BASE, f"{BASE}@system=friction")
    assert list(config.columns()) == ["baseline", "friction"]  # no third column repeating the second
    assert f"{ADAPTER}: LookupError" in config.why and "friction system prompt" in config.why


@pytest.mark.parametrize("hub", [lambda: FakeHub(down=True), hub_api], ids=["no-network", "offline-client"])
def test_with_the_hub_unreachable_the_pocket_pair_stands_in(hub):
    config = load_config(env={}, hub=hub)  # hub_api(): the real client, refusing under HF_HUB_OFFLINE=1
    assert (config.baseline.raw, config.friction.raw) == ("pocket:baseline", "pocket:friction") and config.uses_pocket
    assert "cannot be reached" in config.why and "Offline demo models" in banner(config)


def test_the_front_matter_lists_the_models_the_space_loads():
    front = yaml.safe_load(ROOT.joinpath("README.md").read_text(encoding="utf-8").split("---")[1])
    config = load_config(env={}, hub=FakeHub)
    assert sorted(front["models"]) == sorted({BASE, ADAPTER}) == sorted(
        {config.baseline.model, config.friction.model, config.friction.adapter})
    # `pushback publish --repo-prefix OWNER/NAME` uploads the adapter as OWNER/NAME-lora.
    assert ADAPTER.endswith("-lora")


def test_example_config_file_loads():
    config = load_config(ROOT / "space.yaml.example", env={}, hub=no_hub)
    assert config.friction.kind == "litellm" and not config.uses_pocket


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
    jobs = {"baseline": (parse_spec(fixed_model), ASK), "friction": (parse_spec(scripted.spec()), ASK)}
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
    jobs = {"thinker": (parse_spec(model), ASK)}
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
        stream = stream_side_by_side({"hung": (parse_spec(spec), ASK)}, GenerationParams(), stop, stop_grace=0.3)
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
    assert app.vote("b", session) == "Vote after the models have answered."
    run_turn(app, "Is the sky green? <b>hi</b>", session)
    assert app.vote("b", session) == "Thanks! Recorded: Friction model better."
    assert "already voted" in app.vote("tie", session)
    with pytest.raises(ValueError, match="unknown vote"):
        app.vote("best", session)
    rows = [json.loads(line) for line in app.feedback.path.read_text().splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert row["vote"] == "friction" and row["prompt"] == "Is the sky green? <b>hi</b>"
    assert (row["model_a"], row["model_b"], row["winner"], row["blind"]) == (
        app.columns["baseline"][1].raw, app.columns["friction"][1].raw, "model_b", False)
    assert set(row["answers"]) == {"baseline", "friction", "prompted"}
    assert row["answers"]["friction"]["answer"] == ANSWER and row["answers"]["friction"]["monologue"] == MONOLOGUE
    assert row["specs"] == {key: spec.raw for key, (_, spec) in app.columns.items()}
    assert row["specs"]["prompted"].endswith("@system=friction")
    assert row["timestamp"].endswith("+00:00")


def test_null_input_gets_a_message_not_a_traceback(make_app):
    app = make_app()
    session = ChatSession()
    assert run_turn(app, None, session)[-1][1] == "⚠️ Type a prompt first."
    assert list(app.push_back(None, session))[-1][1].startswith("⚠️ Ask something first")
    assert not session.turns


# --- push back: a pressure follow-up as the next turn ------------------------------------------------


def test_push_back_sends_the_follow_up_to_every_column_and_says_who_held_and_who_caved(make_app, scripted):
    from pushback.pressure import FOLLOW_UPS
    from support.scripted import CAVE, HOLD

    # The scripted model holds under the friction system prompt and caves without it.
    app = make_app(baseline=scripted.spec(), friction=scripted.spec(system="friction"), prompted_column=True)
    assert list(app.columns) == ["baseline", "friction"]  # the prompted column would repeat the friction one
    session = ChatSession()
    run_turn(app, "Since the sky is green, what colour are clouds?", session)
    frames = list(app.push_back("authority", session, "visitor"))
    (baseline_chat, friction_chat, baseline, friction), status = frames[-1]
    assert status == "" and len(session.turns) == 2 and session.turns[-1]["pressure"] == "authority"
    for chat in (baseline_chat, friction_chat):
        assert chat[-3]["role"] == "user" and chat[-3]["content"] == as_text(FOLLOW_UPS["authority"][1])
    assert (baseline_chat[-1]["content"], friction_chat[-1]["content"]) == (as_text(CAVE), as_text(HOLD))
    assert baseline.startswith("**caved (apologised and reversed)**") and "tok/s" in baseline
    assert friction.startswith("**held its position**")
    # What the models saw: the follow-up after their own first answer (no monologue).
    assert session.model_messages("friction", "x")[1:3] == [
        {"role": "assistant", "content": ANSWER}, {"role": "user", "content": FOLLOW_UPS["authority"][1]}]
    run_turn(app, "Thanks. And the sea?", session)  # an ordinary turn after it reads nothing
    assert not any("held" in s or "caved" in s for s in app.view(session)[2:])


# --- blind arena --------------------------------------------------------------------------------------


def test_a_blind_conversation_hides_names_draws_an_order_and_a_vote_records_the_true_mapping(make_app):
    import random

    app = make_app(prompted_column=True, blind=True)
    app.rng = random.Random(1)
    orders = set()
    for _ in range(8):  # a new draw for each conversation
        session = app.new_session()
        run_turn(app, "Is the sky green?", session)
        orders.add(session.order)
    assert orders == {("baseline", "friction"), ("friction", "baseline")}

    app.rng = random.Random(3)
    session = app.new_session()
    assert session.blind and app.labels(session)[:2] == ["Model A", "Model B"]
    run_turn(app, "Is the sky green?", session)
    order = session.order
    chats, stats = app.view(session)[:3], app.view(session)[3:]
    assert chats[2] == [] and stats[2] == ""  # the third column is not in a blind vote
    friction_at = order.index("friction")
    assert [m["content"] for m in chats[friction_at] if m["role"] == "assistant"] == [as_text(ANSWER)]  # no monologue
    assert all("tok/s" not in line and "monologue" not in line for line in stats)  # nothing that tells them apart
    assert app.vote_labels(session)[:2] == ["Model A is better", "Model B is better"]

    message = app.vote("a", session)  # Model A wins, whichever column that was
    row = json.loads(app.feedback.path.read_text().splitlines()[-1])
    assert row["blind"] is True and row["winner"] == "model_a" and row["vote"] == order[0]
    assert (row["model_a"], row["model_b"]) == tuple(app.columns[key][1].raw for key in order)
    assert row["columns"] == {"model_a": order[0], "model_b": order[1]}
    names = {"baseline": "Baseline", "friction": "Friction model"}
    assert f"Model A was **{names[order[0]]}**" in message and f"Model B was **{names[order[1]]}**" in message
    assert app.labels(session)[0].startswith(f"Model A: {names[order[0]]}")
    assert any(m.get("metadata") for m in app.view(session)[friction_at])  # the monologue, now shown

    run_turn(app, "And the sea?", session)
    app.vote("tie", session)  # the names are known now: no longer a blind vote
    assert json.loads(app.feedback.path.read_text().splitlines()[-1])["blind"] is False


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

        def create_repo(self, repo_id: str, repo_type: str, private: bool | None = None, **kwargs):
            self.repos.append((repo_id, repo_type, private))
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
    assert hub.repos == [("me/votes", "dataset", True)]  # created private
    assert "private Hub dataset `me/votes`" in log.notice() and str(log.folder) in log.notice()
    (uploaded,) = [c for c in hub.commits if c]
    (path, text), = uploaded.items()
    assert path == f"votes/{log.path.name}" and json.loads(text)["prompt"] == "Is the sky green?"


def test_votes_default_to_the_cache_and_the_page_says_where_they_go(make_app, tmp_path):
    app = App(SpaceConfig(baseline="pocket:baseline", friction="pocket:friction"))
    assert app.feedback.folder == cache_dir() / "feedback"
    assert not str(app.feedback.folder).startswith(str(ROOT))  # never into the checkout
    assert "your prompt, every column's answer and monologue" in app.feedback.notice()
    assert "feedback/" in (ROOT / ".gitignore").read_text().split()


# --- warm-up ----------------------------------------------------------------------------------------


def test_warm_up_loads_every_model_before_the_first_request(fixed_model, scripted, capsys):
    from pushback.backends import is_loaded

    # Specs no other test loads, so this process has not loaded them yet.
    config = SpaceConfig(baseline=f"{fixed_model}@system=Warm-up test.", friction=scripted.spec(system="Warm-up test."))
    specs = [spec for _, spec in config.columns().values()]
    assert len(specs) == 3 and not any(map(is_loaded, specs))
    warm(config)  # what app.py does before it serves the page
    assert all(map(is_loaded, specs))
    assert capsys.readouterr().out.count("loaded in") == 3


# --- rendering: nothing a model or a visitor writes reaches out ---------------------------------------


def test_markdown_images_and_links_render_as_text():
    """Rendered by a CommonMark renderer: no image (fetched by every visitor's browser) and no link."""
    from markdown_it import MarkdownIt

    from support.scripted import exfiltration

    render = MarkdownIt("commonmark").render
    attacks = [exfiltration("http://127.0.0.1:9/x"), "![r][ref]\n\n[ref]: http://127.0.0.1:9/r",
               "\\![y](http://127.0.0.1:9/y)", "<img src=http://127.0.0.1:9/z>", "**bold** ![a](<http://127.0.0.1:9/a>)"]
    for text in attacks:
        assert "<img" in render(text) or "<a " in render(text) or "<img" in text  # as given, it would reach out
        shown = render(as_text(text))
        assert "<img" not in shown and "<a " not in shown, (text, shown)
    assert "![chart](http://127.0.0.1:9/x?q=the+conversation)" in render(as_text(attacks[0]))  # shown as typed
    assert "<strong>bold</strong>" in render(as_text(attacks[-1]))  # other Markdown still renders
    assert as_text("`![x](http://h/)` is code") == "`![x](http://h/)` is code"  # code is shown literally
