"""What people see: replies as chat messages (monologue in a collapsible block) and their figures.

Everything a model or a visitor wrote is shown as text: HTML is escaped (never run) and Markdown link and
image syntax is escaped (an image from model text would make every visitor's browser fetch its URL, a way
to send the conversation out)."""
from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from pushback.pressure import PressureReading
from space.streaming import Reply

MONOLOGUE_TITLE = "Inner monologue"


# Markdown code: fenced blocks (to their closing fence, or the end while streaming) and inline spans.
# Their content is already shown literally by the Markdown renderer, so escaping it would show "&lt;".
_CODE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?(?:^ {0,3}\1[ \t]*$|\Z)"  # fenced block
                   r"|(?<!`)(`+)(?!`)(?:(?!\n[ \t]*\n).)+?(?<!`)\2(?!`)",  # inline span, within a paragraph
                   re.MULTILINE | re.DOTALL)


# A URL the renderer would turn into a link by itself (GFM autolinks): "http://", "https://", "www.".
_AUTOLINK = re.compile(r"(?i)\b(https?:|ftp:|www)(//|\.)")


def _inert(text: str) -> str:
    """Prose shown as typed, with nothing that reaches out: HTML escaped; `[` escaped, so no `![image](url)`
    is fetched and no `[link](url)` or reference link forms (backslashes first, so `\\[` cannot undo it);
    bare URLs broken by an escape the renderer removes, so they show as text, not as links."""
    text = html.escape(text, quote=False).replace("\\", "\\\\").replace("[", "\\[")
    return _AUTOLINK.sub(lambda m: f"{m.group(1)}\\{m.group(2)}", text)


def as_text(text: str) -> str:
    """Model or visitor text, shown as text: outside Markdown code, HTML is escaped (a `<script>` is
    displayed and never run) and link and image syntax too (`_inert`); code keeps its `<` (the renderer
    shows code literally, images included). The Chatbot's HTML sanitizer stays on behind this."""
    out, last = [], 0
    for code in _CODE.finditer(text):
        out += [_inert(text[last:code.start()]), code.group(0)]
        last = code.end()
    out.append(_inert(text[last:]))
    return "".join(out)


def reply_messages(reply: Reply, show_monologue: bool = True) -> list[dict[str, Any]]:
    """Chat messages for one reply: the thought block (pending while thinking; left out when
    `show_monologue` is false, as in a blind vote) and the answer."""
    messages: list[dict[str, Any]] = []
    split = reply.split
    if (split.monologue or split.thinking) and show_monologue:
        pending = split.thinking and not reply.done
        metadata: dict[str, Any] = {"title": MONOLOGUE_TITLE, "status": "pending" if pending else "done"}
        if reply.done and reply.first_token is not None:
            metadata["duration"] = round(reply.ended - reply.first_token, 2)
        messages.append({"role": "assistant", "content": as_text(split.monologue) or "…", "metadata": metadata})
    if reply.error:
        messages.append({"role": "assistant", "content": f"⚠️ This model is unavailable: {as_text(reply.error)}"})
    elif split.answer or reply.done:
        answer = as_text(split.answer) if split.answer else ("_(no answer)_" if not reply.stopped else "")
        if reply.stopped:
            answer += "\n\n_(stopped)_"
        messages.append({"role": "assistant", "content": answer.strip()})
    elif not messages:
        messages.append({"role": "assistant", "content": "…"})
    return messages


def turn_messages(user: str, reply: Reply | None, show_monologue: bool = True) -> list[dict[str, Any]]:
    return [{"role": "user", "content": as_text(user)}] + (reply_messages(reply, show_monologue) if reply else [])


def stats_line(reply: Reply | None, pressure: PressureReading | None = None, blind: bool = False) -> str:
    """Per answer: whether it held or caved under a push back, then time to first token, tokens/s and
    monologue vs answer tokens (left out in a blind vote: they tell the models apart)."""
    if reply is None:
        return ""
    if reply.error:
        return "error"
    if not reply.done:
        return "thinking…" if reply.split.thinking and not blind else "generating…"
    parts = [f"**{pressure.describe()}**"] if pressure else []
    if blind:
        return " · ".join(parts + ["stopped" if reply.stopped else "done"])
    if reply.ttft is not None:
        parts.append(f"first token {reply.ttft:.2f} s")
    if reply.tokens_per_second is not None:
        parts.append(f"{reply.tokens_per_second:.1f} tok/s")
    parts.append(f"monologue {reply.monologue_tokens} tok · answer {reply.answer_tokens} tok")
    if reply.stopped:
        parts.append("stopped")
    return " · ".join(parts)


def history_messages(turns: Sequence[dict[str, Any]], key: str, show_monologue: bool = True) -> list[dict[str, Any]]:
    """A column's whole conversation from the server-side turns (the raw text, not the display)."""
    messages = []
    for turn in turns:
        messages += turn_messages(turn["user"], turn["replies"].get(key), show_monologue)
    return messages
