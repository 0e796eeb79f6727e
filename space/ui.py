"""The Blocks app: one prompt, the baseline and the friction model answering side by side.

The handlers are plain functions over plain state, so they are tested without a browser; the
layout only wires them to components.

No `from __future__ import annotations` here: Gradio finds the `gr.Request` parameter of a handler by
resolving its annotation, which fails for a string naming a module imported inside a function (the
request would silently be None and every visitor would share one session id)."""
import os
import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from pushback.backends import GenerationParams, device_summary
from pushback.chat import SYSTEM_FRICTION
from space.config import SpaceConfig
from space.render import history_messages, stats_line
from space.streaming import Reply, stream_side_by_side
from space.votes import CHOICES, FeedbackLog

CSS = """
.column-stats {font-size: 0.85em; opacity: 0.75; min-height: 1.4em}
#vote-label {text-align: right; align-self: center}
#vote-label p {margin: 0}
"""


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
    """Per-visitor conversation: turns with every column's reply, kept server-side."""

    def __init__(self) -> None:
        self.turns: list[dict[str, Any]] = []
        self.generating = False  # a second prompt must wait until this turn ends or is stopped

    def model_messages(self, key: str, user_input: str) -> list[dict[str, str]]:
        """What a column's model sees: earlier answers without their monologues, then the new prompt."""
        messages = []
        for turn in self.turns:
            messages.append({"role": "user", "content": turn["user"]})
            reply: Reply | None = turn["replies"].get(key)
            if reply is not None and not reply.error:
                messages.append({"role": "assistant", "content": reply.split.answer})
        return messages + [{"role": "user", "content": user_input}]


class App:
    """The Space's behaviour, independent of Gradio components."""

    def __init__(self, config: SpaceConfig):
        self.config = config
        self.columns = config.columns()
        self.feedback = FeedbackLog(config.feedback_dir, config.feedback_repo)
        self._stops: dict[str, list[threading.Event]] = defaultdict(list)

    def params(self) -> GenerationParams:
        return GenerationParams(max_new_tokens=self.config.max_new_tokens, temperature=self.config.temperature)

    def check_input(self, text: str, session: ChatSession) -> str | None:
        """A clear message for input the Space will not run, else None."""
        if session.generating:
            return "The models are still answering: wait for them or press Stop."
        if not text.strip():
            return "Type a prompt first."
        if len(text) > self.config.max_prompt_chars:
            return (f"That prompt is {len(text):,} characters; the limit here is {self.config.max_prompt_chars:,}. "
                    "Please shorten it.")
        if len(session.turns) >= self.config.max_turns:
            return (f"This conversation reached {self.config.max_turns} turns, the limit here. "
                    "Press Clear to start a new one.")
        return None

    def view(self, session: ChatSession) -> list[Any]:
        chats = [history_messages(session.turns, key) for key in self.columns]
        last = session.turns[-1]["replies"] if session.turns else {}
        return chats + [stats_line(last.get(key)) for key in self.columns]

    def chat(self, text: str, session: ChatSession, session_id: str = "") -> Iterator[tuple[list[Any], str]]:
        """Stream every column's reply to `text`; yields (component values, status message)."""
        problem = self.check_input(text, session)
        if problem:
            yield self.view(session), f"⚠️ {problem}"
            return
        jobs = {key: (spec, session.model_messages(key, text)) for key, (_, spec) in self.columns.items()}
        turn: dict[str, Any] = {"user": text, "replies": {}}
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
        text = session.turns.pop()["user"]
        yield from self.chat(text, session, session_id)

    def vote(self, choice: str, session: ChatSession) -> str:
        """Record a vote on the last exchange, from server state only."""
        if choice not in CHOICES:
            raise ValueError(f"unknown vote {choice!r}")
        replies = session.turns[-1]["replies"] if session.turns else {}
        if not replies or not all(r.done for r in replies.values()):
            return "Vote after the models have answered."
        turn = session.turns[-1]
        if turn.get("vote"):
            return f"You already voted on this answer ({CHOICES[turn['vote']]})."
        turn["vote"] = choice
        self.feedback.record({
            "vote": choice,
            "prompt": turn["user"],
            "history_turns": len(session.turns) - 1,
            "answers": {key: {"spec": r.spec, "monologue": r.split.monologue, "answer": r.split.answer,
                              "error": r.error, "stopped": r.stopped} for key, r in turn["replies"].items()},
            "specs": {key: spec for key, (_, spec) in self.columns.items()},
        })
        return f"Thanks! Recorded: {CHOICES[choice]}."


def banner(config: SpaceConfig) -> str:
    lines = ["# Push-Back AI: friction vs. a plain model",
             "One prompt, answered side by side. The friction model thinks first (open its *Inner monologue*), "
             "then pushes back, refuses, hedges or asks **when that is warranted**, and simply helps when it is not."]
    if not config.configured:
        lines.append(
            "> **Offline demo models.** Nothing is configured, so this runs the tiny *pocket* pair built from the "
            "curated set on this machine: they show the format and the streaming, not real quality. "
            "Set `PUSHBACK_BASELINE` and `PUSHBACK_FRICTION` to model specs (a Hub id, a local directory, "
            "`base+adapter`, or `litellm:ollama_chat/qwen2.5`), or `PUSHBACK_CONFIG=space.yaml`, and restart.")
    lines.append(f"<sub>Baseline `{config.baseline}` · Friction `{config.friction}` · "
                 f"running on {device_summary()}</sub>")
    return "\n\n".join(lines)


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

    def session_id(request: gr.Request | None) -> str:
        return getattr(request, "session_hash", None) or ""

    with gr.Blocks(title="Push-Back AI", fill_width=True) as demo:
        gr.Markdown(banner(config), elem_id="banner")
        session = gr.State(ChatSession())  # deep-copied per visitor
        chatbots, stats = [], []
        with gr.Row(equal_height=True):
            for key, (title, _) in app.columns.items():
                with gr.Column(min_width=280):
                    chatbots.append(gr.Chatbot(label=title, height=480, sanitize_html=True, allow_tags=False,
                                               buttons=["copy"], elem_id=f"chat-{key}",
                                               group_consecutive_messages=False))
                    stats.append(gr.Markdown(elem_classes="column-stats", elem_id=f"stats-{key}"))
        with gr.Row(equal_height=True):
            prompt = gr.Textbox(show_label=False, scale=8, autofocus=True, elem_id="prompt", max_lines=6,
                                placeholder="Ask anything… e.g. “Since we only use 10% of our brains, "
                                            "how do I use the rest?”")
            send = gr.Button("Send", variant="primary", scale=1, min_width=90, elem_id="send")
            stop = gr.Button("Stop", variant="stop", scale=1, min_width=90, elem_id="stop")
        status = gr.Markdown(elem_id="status")
        with gr.Row(equal_height=True, elem_id="actions"):
            regenerate = gr.Button("↻ Regenerate", size="sm", scale=0, min_width=130, elem_id="regenerate")
            clear = gr.Button("Clear", size="sm", scale=0, min_width=90, elem_id="clear")
            gr.Markdown("**Which answer handled it better?**", elem_id="vote-label")
            vote_buttons = {choice: gr.Button(label, size="sm", scale=0, min_width=130, elem_id=f"vote-{choice}")
                            for choice, label in CHOICES.items()}
        with gr.Accordion("Examples by friction category (held-out prompts)", open=False):
            for category, prompts in example_groups().items():
                gr.Examples(examples=[[p] for p in prompts], inputs=[prompt], label=category.replace("_", " "))
        with gr.Accordion("The friction system prompt (third column)", open=False):
            gr.Markdown(SYSTEM_FRICTION)

        outputs = [*chatbots, *stats, status]

        @gpu
        def run_chat(text: str, state: ChatSession, request: gr.Request):
            keep = text if app.check_input(text, state) else ""  # a rejected prompt stays to be edited
            for values, message in app.chat(text, state, session_id(request)):
                yield *values, message, state, keep

        @gpu
        def run_regenerate(state: ChatSession, request: gr.Request):
            for values, message in app.regenerate(state, session_id(request)):
                yield *values, message, state

        def run_stop(request: gr.Request) -> None:
            app.stop(session_id(request))  # the running chat then ends its answers and says "Stopped."

        def run_clear(request: gr.Request):
            app.stop(session_id(request))
            state = ChatSession()
            return *app.view(state), "", state

        def run_vote(choice: str):
            return lambda state: app.vote(choice, state)

        limit = {"concurrency_limit": config.concurrency, "concurrency_id": "generate"}
        chat_events = [
            prompt.submit(run_chat, [prompt, session], [*outputs, session, prompt], api_name="chat", **limit),
            send.click(run_chat, [prompt, session], [*outputs, session, prompt], api_visibility="private", **limit),
            regenerate.click(run_regenerate, [session], [*outputs, session], api_name="regenerate", **limit),
        ]
        # Stop sets the stop events, so generation itself ends and the answers end with "(stopped)".
        # On ZeroGPU the generator runs in another process that those events do not reach: cancel it there.
        zero_gpu = os.environ.get("SPACES_ZERO_GPU") == "true"
        # No output: a "Stopping…" here could land after the chat's own "Stopped." and overwrite it.
        stop.click(run_stop, None, None, api_name="stop", queue=False, cancels=chat_events if zero_gpu else None)
        clear.click(run_clear, None, [*outputs, session], api_name="clear", cancels=chat_events)
        for choice, button in vote_buttons.items():
            button.click(run_vote(choice), [session], [status], api_visibility="private", queue=False)
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
    """Load every column's model in the background so the first visitor does not wait for it
    (and import LiteLLM, which takes seconds, when a column talks to an endpoint). Returns the
    threads, for callers that want to wait."""
    def load(spec: str) -> None:
        try:
            load_backend(spec)
        except Exception:  # noqa: BLE001 - the column shows the error when it is used
            pass

    def import_litellm() -> None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download
        import litellm

        # A mocked call (no network) loads what LiteLLM imports lazily on its first call (~1 s that
        # would otherwise hold up the first reply and, holding the GIL, the other columns' streams).
        messages = [{"role": "user", "content": "warm up"}]
        for _ in litellm.completion(model="openai/warm-up", messages=messages, mock_response="ok", stream=True,
                                    stream_options={"include_usage": True}):
            pass

    specs = [spec for _, spec in config.columns().values()]
    jobs = [(f"warm:{spec}", load, (spec,)) for spec in specs]
    if any(spec.startswith("litellm:") for spec in specs):
        jobs.append(("warm:litellm", import_litellm, ()))
    threads = [threading.Thread(target=fn, args=args, daemon=True, name=name) for name, fn, args in jobs]
    for thread in threads:
        thread.start()
    return threads
