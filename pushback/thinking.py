"""Split a response into its `<think>` monologue and its answer -- whole or while it streams.

One parser serves the Space (streamed chunks), evaluation and training checks (whole texts).
A tag may arrive split across chunks (`"<thi"`, `"nk>"`), so the parser holds back any tail that
could still become a tag. `opened=True` means the chat template already emitted `<think>` in the
prompt (DeepSeek-R1 style), so the response starts inside the block.
"""
from __future__ import annotations

from dataclasses import dataclass, field

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"


@dataclass(frozen=True)
class Split:
    monologue: str
    answer: str
    thinking: bool  # the block is still open: the model has not finished thinking
    blocks: int  # think blocks seen (closed or open)
    stray_closes: int  # `</think>` with no block open; dropped from the answer

    @property
    def well_formed(self) -> bool:
        """One closed, non-empty block before a non-empty answer: the shape we train."""
        return self.blocks == 1 and not self.thinking and not self.stray_closes and bool(self.monologue) and bool(self.answer)


def _partial_tag_len(text: str) -> int:
    """Length of the longest tail of `text` that is the start of a tag (to hold back)."""
    for n in range(min(len(text), len(CLOSE_TAG) - 1), 0, -1):
        tail = text[-n:]
        if OPEN_TAG.startswith(tail) or CLOSE_TAG.startswith(tail):
            return n
    return 0


@dataclass
class ThinkParser:
    """Incremental splitter: `feed()` chunks as they stream, read `split()` at any moment."""

    opened: bool = False
    _in_block: bool = field(init=False)
    _pending: str = field(init=False, default="")
    _monologue: list[str] = field(init=False, default_factory=list)
    _answer: list[str] = field(init=False, default_factory=list)
    _blocks: int = field(init=False, default=0)
    _strays: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._in_block = self.opened
        if self.opened:
            self._blocks = 1
            self._monologue.append("")

    def feed(self, chunk: str) -> Split:
        text = self._pending + chunk
        hold = _partial_tag_len(text)
        self._pending = text[len(text) - hold:] if hold else ""
        self._consume(text[: len(text) - hold])
        return self.split()

    def close(self) -> Split:
        """End of stream: a held-back partial tag was ordinary text after all."""
        text, self._pending = self._pending, ""
        self._consume(text)
        return self.split()

    def _consume(self, text: str) -> None:
        while text:
            if self._in_block:
                end = text.find(CLOSE_TAG)
                # A repeated `<think>` inside a block (common after a template opened it) is dropped.
                if end < 0:
                    self._monologue[-1] += text.replace(OPEN_TAG, "")
                    return
                self._monologue[-1] += text[:end].replace(OPEN_TAG, "")
                self._in_block = False
                text = text[end + len(CLOSE_TAG):]
                continue
            start, stray = text.find(OPEN_TAG), text.find(CLOSE_TAG)
            if stray >= 0 and (start < 0 or stray < start):
                self._answer.append(text[:stray])
                self._strays += 1
                text = text[stray + len(CLOSE_TAG):]
                continue
            if start < 0:
                self._answer.append(text)
                return
            self._answer.append(text[:start])
            self._in_block = True
            self._blocks += 1
            self._monologue.append("")
            text = text[start + len(OPEN_TAG):]

    def split(self) -> Split:
        thoughts = [m.strip() for m in self._monologue if m.strip()]
        # A held-back tail (maybe the start of a tag) is not shown until the next chunk resolves it.
        return Split(
            monologue="\n\n".join(thoughts),
            answer="".join(self._answer).strip(),
            thinking=self._in_block,
            blocks=self._blocks,
            stray_closes=self._strays,
        )


def split_thinking(text: str, *, opened: bool = False) -> Split:
    """Split a whole response. `opened=True` if the prompt already opened the `<think>` block."""
    parser = ThinkParser(opened=opened)
    parser.feed(text)
    return parser.close()


def join_thinking(monologue: str, answer: str) -> str:
    """The inverse: the assistant text we train on and expect back."""
    return f"{OPEN_TAG}\n{monologue.strip()}\n{CLOSE_TAG}\n\n{answer.strip()}"
