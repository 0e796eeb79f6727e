"""Several models answer one prompt at once: each side streams from its own thread into one queue,
so the wall time follows the slowest side rather than the sum."""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from pushback.backends import Backend, GenerationParams, load_backend
from pushback.chat import Message
from pushback.specs import ModelSpec
from pushback.thinking import Split, ThinkParser

@dataclass
class Reply:
    """One model's reply while it streams, and its figures once it ends."""

    key: str
    spec: ModelSpec
    started: float = field(default_factory=time.perf_counter)  # reset when the model is loaded and asked
    first_token: float | None = None
    ended: float | None = None
    raw: str = ""
    error: str | None = None
    stopped: bool = False
    monologue_tokens: int = 0
    answer_tokens: int = 0
    parser: ThinkParser = field(default_factory=ThinkParser)
    split: Split = field(default_factory=lambda: ThinkParser().split())

    @property
    def done(self) -> bool:
        return self.ended is not None

    @property
    def shows_text(self) -> bool:
        """Some words are on screen (in the monologue or the answer), not just a placeholder."""
        return bool(self.split.monologue or self.split.answer)

    @property
    def ttft(self) -> float | None:
        """Seconds from asking the (loaded) model to its first text."""
        return None if self.first_token is None else self.first_token - self.started

    @property
    def tokens_per_second(self) -> float | None:
        tokens = self.monologue_tokens + self.answer_tokens
        if not self.done or self.first_token is None or tokens == 0:
            return None
        return tokens / max(self.ended - self.first_token, 1e-6)


def _pump(key: str, spec: ModelSpec, messages: Sequence[Message], params: GenerationParams,
          stop: threading.Event, out: queue.Queue, loader: Callable[[ModelSpec], Backend]) -> None:
    """One side: load, stream, and report each step as (key, kind, value, when) into `out`."""
    def put(kind: str, value: object) -> None:
        out.put((key, kind, value, time.perf_counter()))

    try:
        backend = loader(spec)
        put("backend", backend)
        stream = backend.stream(messages, params, stop=stop)
        put("opened", stream.opened)
        for chunk in stream:
            put("chunk", chunk)
    except Exception as e:  # noqa: BLE001 - shown in this column; the others keep going
        put("error", f"{type(e).__name__}: {e}")
    finally:
        put("end", None)


def _finish(reply: Reply, backend: Backend | None, stopped: bool, when: float) -> None:
    reply.split = reply.parser.close()
    reply.stopped = stopped and reply.error is None
    if backend is not None:
        reply.monologue_tokens = backend.count_tokens(reply.split.monologue)
        reply.answer_tokens = backend.count_tokens(reply.split.answer)
    reply.ended = when


def stream_side_by_side(jobs: dict[str, tuple[ModelSpec, Sequence[Message]]], params: GenerationParams,
                        stop: threading.Event, *, loader: Callable[[ModelSpec], Backend] = load_backend,
                        min_interval: float = 0.05, first_frame_wait: float = 0.1,
                        stop_grace: float = 2.0) -> Iterator[dict[str, Reply]]:
    """Yield the replies of all sides (`key -> (spec, messages)`) as they grow: at once when a side
    shows its first words, ends or fails, otherwise at most every `min_interval` seconds (so the page is
    not flooded), and once more when all have ended. The first frame waits up to `first_frame_wait`
    seconds for text, so a fast model's first words go out in it (on a served page every frame costs a
    round of Gradio's processing); a slow one shows the placeholders then. Setting `stop` ends every side: local
    generation ends at the next token; a side still silent `stop_grace` seconds later (a hung endpoint)
    is marked stopped and left behind. Closing the iterator stops them all."""
    events: queue.Queue = queue.Queue()
    replies = {key: Reply(key, spec) for key, (spec, _) in jobs.items()}
    for key, (spec, messages) in jobs.items():
        threading.Thread(target=_pump, args=(key, spec, messages, params, stop, events, loader),
                         daemon=True, name=f"side:{key}").start()
    backends: dict[str, Backend] = {}
    started, last_yield, changed, stop_seen = time.perf_counter(), 0.0, False, None
    try:
        while not all(r.done for r in replies.values()):
            try:
                key, kind, value, when = events.get(timeout=min_interval)
            except queue.Empty:
                kind, first_text = None, False
            else:
                reply, had_text = replies[key], replies[key].shows_text
                changed = changed or kind in ("chunk", "error", "end") or (kind == "opened" and value)  # shown
                if kind == "backend":
                    backends[key], reply.started = value, when
                elif kind == "opened" and value:
                    reply.parser = ThinkParser(opened=True)
                    reply.split = reply.parser.split()
                elif kind == "chunk":
                    if reply.first_token is None:
                        reply.first_token = when
                    reply.raw += value
                    reply.split = reply.parser.feed(value)
                elif kind == "error":
                    reply.error = value
                elif kind == "end":
                    _finish(reply, backends.get(key), stop.is_set(), when)
                first_text = not had_text and reply.shows_text  # a side's first words go out at once
            now = time.perf_counter()
            if stop.is_set():
                stop_seen = stop_seen or now
                if now - stop_seen >= stop_grace:
                    for key, reply in replies.items():
                        if not reply.done:
                            _finish(reply, backends.get(key), True, now)
                    changed = True
            urgent = kind in ("end", "error") or first_text or all(r.done for r in replies.values())
            if not last_yield:  # the first frame: words, or placeholders once models take a while
                due = urgent or now - started >= first_frame_wait
            else:
                due = changed and (urgent or now - last_yield >= min_interval)
            if due:
                last_yield, changed = now, False
                yield replies
    finally:
        stop.set()  # the visitor left or pressed Stop: end generation in every thread
