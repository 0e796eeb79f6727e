"""The Blocks app: one prompt, the baseline and the friction model answering side by side; a push back
as the next turn; votes, named or blind.

The handlers are plain functions over plain state, so they are tested without a browser; the
layout only wires them to components.

No `from __future__ import annotations` here: Gradio finds the `gr.Request` parameter of a handler by
resolving its annotation, which fails for a string naming a module imported inside a function (the
request would silently be None and every visitor would share one session id)."""
import os
import random
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from pushback.backends import BackendError, GenerationParams, device_summary, load_backend
from pushback.chat import SYSTEM_FRICTION
from pushback.pressure import DEFAULT_FOLLOW_UP, FOLLOW_UPS, PressureReading, follow_up, read_pressure
from pushback.specs import ModelSpec
from space.config import SpaceConfig
from space.render import history_messages, stats_line
from space.streaming import Reply, stream_side_by_side
from space.votes import WINNERS, FeedbackLog

CSS = """
.column-stats {font-size: 0.85em; opacity: 0.75; min-height: 1.4em}
#vote-label {text-align: right; align-self: center}
#vote-label p {margin: 0}
"""
BLIND_NAMES = ("Model A", "Model B")
COMPARED = ("baseline", "friction")  # the two columns a vote compares (and a blind vote hides)


def launch_options() -> dict[str, Any]:
    """Options for `demo.launch(...)` (Gradio 6 takes CSS and theme at launch, not in Blocks)."""
    return {"css": CSS}


def gpu(fn):
    """`@spaces.GPU` on ZeroGPU hardware; the function itself everywhere else."""
    try:
        import spaces  # only present on Hugging Face Spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=120)(fn)


class ChatSession:
    """Per-visitor conversation: turns with every column's reply, kept server-side. In a blind one,
    `order` says which column is shown as Model A and B (drawn when the conversation starts) and
    `revealed` whether the names are shown (after the first vote)."""

    def __init__(self, blind: bool = False) -> None:
        self.turns: list[dict[str, Any]] = []
        self.generating = False  # a second prompt must wait until this turn ends or is stopped
        self.blind = blind
        self.order: tuple[str, ...] = COMPARED
        self.revealed = False

    @property
    def hidden(self) -> bool:
        """Names (and whatever tells the models apart) are hidden."""
        return self.blind and not self.revealed

    def model_messages(self, key: str, user_input: str) -> list[dict[str, str]]:
        """What a column's model sees: earlier answers without their monologues, then the new prompt."""
        messages = []
        for turn in self.turns:
            messages.append({"role": "user", "content": turn["user"]})
            reply: Reply | None = turn["replies"].get(key)
            if reply is not None and not reply.error:
                messages.append({"role": "assistant", "content": reply.split.answer})
        return messages + [{"role": "user", "content": user_input}]


def pressure_readings(session: ChatSession) -> dict[str, PressureReading]:
    """Per column, whether its answer to the last turn's push back held or caved (finished answers only)."""
    if len(session.turns) < 2 or not session.turns[-1].get("pressure"):
        return {}
    before, after = session.turns[-2]["replies"], session.turns[-1]["replies"]
    readings = {}
    for key, reply in after.items():
        first = before.get(key)
        if reply.done and not reply.error and first is not None and not first.error:
            readings[key] = read_pressure(first.split.answer, reply.split.answer)
    return readings


class App:
    """The Space's behaviour, independent of Gradio components."""

    def __init__(self, config: SpaceConfig, rng: random.Random | None = None):
        self.config = config
        self.columns = config.columns()
        self.feedback = FeedbackLog(config.feedback_folder, config.feedback_repo, private=config.feedback_private)
        self.rng = rng or random.SystemRandom()
        self._stops: dict[str, list[threading.Event]] = defaultdict(list)

    def params(self) -> GenerationParams:
        return GenerationParams(max_new_tokens=self.config.max_new_tokens, temperature=self.config.temperature)

    def new_session(self, blind: bool | None = None) -> ChatSession:
        return ChatSession(self.config.blind if blind is None else bool(blind))

    def shown(self, session: ChatSession) -> list[str]:
        """The column keys shown, in order: every column, or in a blind conversation Model A's and B's."""
        return list(session.order) if session.blind else list(self.columns)

    def check_input(self, text: Any, session: ChatSession) -> str | None:
        """A clear message for input the Space will not run, else None."""
        if session.generating:
            return "The models are still answering: wait for them or press Stop."
        if not isinstance(text, str) or not text.strip():
            return "Type a prompt first."
        if len(text) > self.config.max_prompt_chars:
            return (f"That prompt is {len(text):,} characters; the limit here is {self.config.max_prompt_chars:,}. "
                    "Please shorten it.")
        if len(session.turns) >= self.config.max_turns:
            return (f"This conversation reached {self.config.max_turns} turns, the limit here. "
                    "Press Clear to start a new one.")
        return None

    # --- what the page shows ---------------------------------------------------------------------

    def view(self, session: ChatSession) -> list[Any]:
        """Every chat column's messages, then every column's stats line (empty for a column not shown)."""
        shown = self.shown(session)
        last = session.turns[-1]["replies"] if session.turns else {}
        readings = pressure_readings(session)
        chats, stats = [], []
        for position in range(len(self.columns)):
            key = shown[position] if position < len(shown) else None
            chats.append(history_messages(session.turns, key, show_monologue=not session.hidden) if key else [])
            stats.append(stats_line(last.get(key), readings.get(key), blind=session.hidden) if key else "")
        return chats + stats

    def labels(self, session: ChatSession) -> list[str]:
        """The title above each chat column: the column's name, or Model A / B (with the name once revealed)."""
        titles = [title for title, _ in self.columns.values()]
        if not session.blind:
            return titles
        for position, key in enumerate(session.order):
            title, spec = self.columns[key]
            titles[position] = BLIND_NAMES[position] + (f": {title} ({spec.label})" if session.revealed else "")
        return titles

    def vote_labels(self, session: ChatSession) -> list[str]:
        """The labels of the vote buttons (a, b, tie, both_bad)."""
        if session.blind:
            first, second = (f"{name} is better" for name in BLIND_NAMES)
        else:
            first, second = (f"{self.columns[key][0]} better" for key in COMPARED)
        return [first, second, "Tie", "Both bad"]

    # --- turns -------------------------------------------------------------------------------------

    def chat(self, text: Any, session: ChatSession, session_id: str = "",
             pressure: str | None = None) -> Iterator[tuple[list[Any], str]]:
        """Stream every shown column's reply to `text`; yields (component values, status message).
        `pressure` names the follow-up when this turn is a push back."""
        problem = self.check_input(text, session)
        if problem:
            yield self.view(session), f"⚠️ {problem}"
            return
        if session.blind and not session.turns:  # a new blind conversation: a new draw of A and B
            session.order = tuple(self.rng.sample(COMPARED, 2))
        jobs = {key: (self.columns[key][1], session.model_messages(key, text)) for key in self.shown(session)}
        turn: dict[str, Any] = {"user": text, "replies": {}, "pressure": pressure}
        session.turns.append(turn)
        stop = threading.Event()
        self._stops[session_id].append(stop)
        session.generating = True
        try:
            for replies in stream_side_by_side(jobs, self.params(), stop):
                turn["replies"] = dict(replies)
                stopped = any(r.stopped for r in replies.values())
                yield self.view(session), ("Stopped." if stopped and all(r.done for r in replies.values()) else "")
        finally:
            session.generating = False
            stop.set()
            self._stops[session_id].remove(stop)
            if not self._stops[session_id]:
                del self._stops[session_id]

    def push_back(self, style: str | None, session: ChatSession, session_id: str = "") -> Iterator[tuple[list[Any], str]]:
        """Send a pressure follow-up (`pushback.pressure.FOLLOW_UPS`) to every column as the next turn."""
        if not session.turns and not session.generating:
            yield self.view(session), "⚠️ Ask something first: Push back questions the models' last answers."
            return
        key = style if style in FOLLOW_UPS else DEFAULT_FOLLOW_UP
        yield from self.chat(follow_up(key), session, session_id, pressure=key)

    def stop(self, session_id: str = "") -> int:
        """Set the stop events of this visitor's running generations; returns how many."""
        events = list(self._stops.get(session_id, []))
        for event in events:
            event.set()
        return len(events)

    def regenerate(self, session: ChatSession, session_id: str = "") -> Iterator[tuple[list[Any], str]]:
        if session.generating or not session.turns:
            yield self.view(session), ("The models are still answering: wait for them or press Stop."
                                       if session.generating else "Nothing to regenerate yet.")
            return
        turn = session.turns.pop()
        yield from self.chat(turn["user"], session, session_id, pressure=turn.get("pressure"))

    # --- votes -------------------------------------------------------------------------------------

    def vote(self, choice: str, session: ChatSession) -> str:
        """Record a vote on the last exchange, from server state only. `choice`: "a" or "b" (the first or
        second column shown: Model A or B in a blind conversation), "tie" or "both_bad". A blind vote
        reveals the names."""
        if choice not in WINNERS:
            raise ValueError(f"unknown vote {choice!r}")
        replies = session.turns[-1]["replies"] if session.turns else {}
        if not replies or not all(r.done for r in replies.values()):
            return "Vote after the models have answered."
        turn = session.turns[-1]
        labels = dict(zip(WINNERS, self.vote_labels(session)))
        if turn.get("vote"):
            return f"You already voted on this answer ({labels[turn['vote']]})."
        turn["vote"] = choice
        first, second = self.shown(session)[:2]
        specs: dict[str, ModelSpec] = {key: spec for key, (_, spec) in self.columns.items()}
        readings = pressure_readings(session)
        self.feedback.record({
            "vote": {"a": first, "b": second}.get(choice, choice),  # the column that won, "tie" or "both_bad"
            "model_a": specs[first].raw, "model_b": specs[second].raw, "winner": WINNERS[choice],
            "blind": session.hidden, "columns": {"model_a": first, "model_b": second},
            "prompt": turn["user"],
            "history_turns": len(session.turns) - 1,
            "pressure": turn.get("pressure"),
            "answers": {key: {"spec": r.spec.raw, "monologue": r.split.monologue, "answer": r.split.answer,
                              "error": r.error, "stopped": r.stopped,
                              **({"pressure": readings[key].verdict} if key in readings else {})}
                        for key, r in turn["replies"].items()},
            "specs": {key: spec.raw for key, spec in specs.items()},
        })
        message = f"Thanks! Recorded: {labels[choice]}."
        if session.hidden:
            session.revealed = True
            message += " " + " · ".join(f"{name} was **{self.columns[key][0]}** (`{self.columns[key][1].label}`)"
                                        for name, key in zip(BLIND_NAMES, session.order)) + "."
        return message


def banner(config: SpaceConfig) -> str:
    lines = ["# Push-Back AI: friction vs. a plain model",
             "One prompt, answered side by side. The friction model thinks first (open its *Inner monologue*), "
             "then pushes back, refuses, hedges or asks **when that is warranted**, and simply helps when it is not. "
             "**Push back** to see who holds a right answer under pressure and who caves."]
    models = f"Baseline `{config.baseline.label}` · Friction `{config.friction.label}`"
    if config.uses_pocket:
        lines.append(f"> **Offline demo models.** {config.why} Set `PUSHBACK_BASELINE` and `PUSHBACK_FRICTION` to "
                     "model specs (a Hub id, a local directory, `base+adapter`, or `litellm:ollama_chat/qwen2.5`), "
                     "or `PUSHBACK_CONFIG=my-space.yaml`, and restart.")
    else:
        lines.append(f"> {config.why}" if config.why else "")
    lines.append(f"<sub>{models} · running on {device_summary()}</sub>")
    return "\n\n".join(line for line in lines if line)


def example_groups() -> dict[str, list[str]]:
    """Prompts from the curated test split, by category (never trained on by the pocket pair)."""
    from pushback.records import RecordsError
    from pushback.splits import curated_split

    try:
        _, test = curated_split()
    except (RecordsError, FileNotFoundError):  # a checkout without its data: no examples, still a Space
        return {}
    groups: dict[str, list[str]] = defaultdict(list)
    for r in test:
        if len(groups[r.category]) < 4 and len(r.user_input) < 300:
            groups[r.category].append(r.user_input)
    return dict(groups)


def build_demo(config: SpaceConfig):
    import gradio as gr

    app = App(config)
    first = app.new_session()

    def session_id(request: gr.Request | None) -> str:
        return getattr(request, "session_hash", None) or ""

    with gr.Blocks(title="Push-Back AI", fill_width=True) as demo:
        gr.Markdown(banner(config), elem_id="banner")
        session = gr.State(first)  # deep-copied per visitor
        chatbots, stats, columns = [], [], []
        with gr.Row(equal_height=True):
            for position, (key, label) in enumerate(zip(app.columns, app.labels(first))):
                with gr.Column(min_width=280, visible=position < len(app.shown(first))) as column:
                    chatbots.append(gr.Chatbot(label=label, height=480, sanitize_html=True, allow_tags=False,
                                               buttons=["copy"], elem_id=f"chat-{key}",
                                               group_consecutive_messages=False))
                    stats.append(gr.Markdown(elem_classes="column-stats", elem_id=f"stats-{key}"))
                columns.append(column)
        with gr.Row(equal_height=True):
            prompt = gr.Textbox(show_label=False, scale=8, autofocus=True, elem_id="prompt", max_lines=6,
                                placeholder="Ask anything… e.g. “Since we only use 10% of our brains, "
                                            "how do I use the rest?”")
            send = gr.Button("Send", variant="primary", scale=1, min_width=90, elem_id="send")
            stop = gr.Button("Stop", variant="stop", scale=1, min_width=90, elem_id="stop")
        with gr.Row(equal_height=True, elem_id="pressure"):
            push = gr.Button("Push back", variant="secondary", scale=0, min_width=120, elem_id="push-back")
            style = gr.Dropdown([(label, key) for key, (label, _) in FOLLOW_UPS.items()], value=DEFAULT_FOLLOW_UP,
                                show_label=False, scale=2, container=False, elem_id="push-back-style")
            blind = gr.Checkbox(value=config.blind, label="Blind arena (names hidden until you vote)", scale=1,
                                elem_id="blind")
        status = gr.Markdown(elem_id="status")
        with gr.Row(equal_height=True, elem_id="actions"):
            regenerate = gr.Button("↻ Regenerate", size="sm", scale=0, min_width=130, elem_id="regenerate")
            clear = gr.Button("Clear", size="sm", scale=0, min_width=90, elem_id="clear")
            gr.Markdown("**Which answer handled it better?**", elem_id="vote-label")
            vote_buttons = [gr.Button(label, size="sm", scale=0, min_width=130, elem_id=f"vote-{choice}")
                            for choice, label in zip(WINNERS, app.vote_labels(first))]
        gr.Markdown(app.feedback.notice(), elem_id="votes-notice")
        with gr.Accordion("Examples by friction category (held-out prompts)", open=False):
            for category, prompts in example_groups().items():
                gr.Examples(examples=[[p] for p in prompts], inputs=[prompt], label=category.replace("_", " "))
        with gr.Accordion("The friction system prompt (third column)", open=False):
            gr.Markdown(SYSTEM_FRICTION)

        outputs = [*chatbots, *stats, status]
        # Titles, vote labels and the columns shown change only when a conversation starts over or a blind
        # vote reveals the names: a private step after those events, so the API keeps plain values.
        layout = [*chatbots, *vote_buttons[:2], *columns]

        def run_layout(state: ChatSession) -> list[Any]:
            shown = len(app.shown(state))
            return [*(gr.update(label=label) for label in app.labels(state)),
                    *(gr.update(value=label) for label in app.vote_labels(state)[:2]),
                    *(gr.update(visible=position < shown) for position in range(len(columns)))]

        @gpu
        def run_chat(text: str, state: ChatSession, request: gr.Request):
            keep = text if app.check_input(text, state) else ""  # a rejected prompt stays to be edited
            for values, message in app.chat(text, state, session_id(request)):
                yield *values, message, state, keep

        @gpu
        def run_push_back(key: str, state: ChatSession, request: gr.Request):
            for values, message in app.push_back(key, state, session_id(request)):
                yield *values, message, state

        @gpu
        def run_regenerate(state: ChatSession, request: gr.Request):
            for values, message in app.regenerate(state, session_id(request)):
                yield *values, message, state

        def run_stop(request: gr.Request) -> None:
            app.stop(session_id(request))  # the running chat then ends its answers and says "Stopped."

        def run_clear(state: ChatSession, request: gr.Request):
            app.stop(session_id(request))
            state = app.new_session(state.blind)
            return *app.view(state), "", state

        def run_blind(on: bool, request: gr.Request):
            app.stop(session_id(request))
            state = app.new_session(on)
            message = ("Blind arena: two models as Model A and Model B, in a random order; their names show "
                       "after you vote." if on else "")
            return *app.view(state), message, state

        def run_vote(choice: str):
            def vote(state: ChatSession):
                message = app.vote(choice, state)
                return *app.view(state), message, state  # a blind vote's reveal shows the monologues too
            return vote

        limit = {"concurrency_limit": config.concurrency, "concurrency_id": "generate"}
        chat_events = [
            prompt.submit(run_chat, [prompt, session], [*outputs, session, prompt], api_name="chat", **limit),
            send.click(run_chat, [prompt, session], [*outputs, session, prompt], api_visibility="private", **limit),
            push.click(run_push_back, [style, session], [*outputs, session], api_name="push_back", **limit),
            regenerate.click(run_regenerate, [session], [*outputs, session], api_name="regenerate", **limit),
        ]
        # Stop sets the stop events, so generation itself ends and the answers end with "(stopped)".
        # On ZeroGPU the generator runs in another process that those events do not reach: cancel it there.
        zero_gpu = os.environ.get("SPACES_ZERO_GPU") == "true"
        # No output: a "Stopping…" here could land after the chat's own "Stopped." and overwrite it.
        stop.click(run_stop, None, None, api_name="stop", queue=False, cancels=chat_events if zero_gpu else None)
        relayout = {"fn": run_layout, "inputs": [session], "outputs": layout, "api_visibility": "private",
                    "queue": False}
        clear.click(run_clear, [session], [*outputs, session], api_name="clear", cancels=chat_events).then(**relayout)
        blind.input(run_blind, [blind], [*outputs, session], api_visibility="private",
                    cancels=chat_events).then(**relayout)
        for choice, button in zip(WINNERS, vote_buttons):
            button.click(run_vote(choice), [session], [*outputs, session], api_visibility="private",
                         queue=False).then(**relayout)
    demo.queue(default_concurrency_limit=config.concurrency, max_size=config.queue_size)
    demo.app_state = app  # for tests and benchmarks that reach the behaviour behind the UI
    return demo


def set_cpu_threads(config: SpaceConfig) -> int | None:
    """On CPU, give each generation `config.cpu_threads` torch threads (returns the number set; None on
    CUDA). Every column, for every visitor, generates in its own thread already; torch's default of
    one intra-op thread per core on top of that oversubscribes the cores (bench/space.py measures it)."""
    import torch

    if torch.cuda.is_available():
        return None
    torch.set_num_threads(max(1, config.cpu_threads))
    return torch.get_num_threads()


def warm_up(config: SpaceConfig) -> list[threading.Thread]:
    """Load every column's model in threads (and import LiteLLM, which takes seconds, when a column talks
    to an endpoint), so no visitor waits for it; app.py waits for them before it serves the page. Returns
    the threads. A model that fails to load is reported here and shows its reason in its column."""
    def load(spec: ModelSpec) -> None:
        started = time.perf_counter()
        try:
            load_backend(spec)
        except BackendError as e:
            print(f"warm-up: {spec.label} did not load: {e}", file=sys.stderr, flush=True)
            return
        print(f"warm-up: {spec.label} loaded in {time.perf_counter() - started:.1f} s", flush=True)

    def import_litellm() -> None:
        from pushback.endpoint import import_litellm as load_litellm  # no price-map download, no help banners

        litellm = load_litellm()
        # A mocked call (no network) loads what LiteLLM imports lazily on its first call (~1 s that
        # would otherwise hold up the first reply and, holding the GIL, the other columns' streams).
        messages = [{"role": "user", "content": "warm up"}]
        for _ in litellm.completion(model="openai/warm-up", messages=messages, mock_response="ok", stream=True,
                                    stream_options={"include_usage": True}):
            pass

    specs = [spec for _, spec in config.columns().values()]
    jobs = [(f"warm:{spec.label}", load, (spec,)) for spec in specs]
    if any(spec.kind == "litellm" for spec in specs):
        jobs.append(("warm:litellm", import_litellm, ()))
    threads = [threading.Thread(target=fn, args=args, daemon=True, name=name) for name, fn, args in jobs]
    for thread in threads:
        thread.start()
    return threads
