"""Lenient reading of plain-text replies: models add preambles, labels, quotes, fences and think blocks.

Every function returns clean text or raises `EmptyReply` (which the client retries), so nothing a
model wraps around its answer ends up in a record.
"""
from __future__ import annotations

import re

from pushback.endpoint import EmptyReply
from pushback.thinking import CLOSE_TAG, OPEN_TAG, split_thinking

_FENCE = re.compile(r"^```[\w-]*\s*\n(.*?)\n```\s*$", re.DOTALL)
_WRAPPER = re.compile(r"^<(message|thought|answer|reply)>\s*(.*?)\s*</\1>$", re.DOTALL | re.IGNORECASE)
_LABEL = re.compile(
    r"^\s*(?:\*\*|__)?(?:user(?:'s)? message|user|message|prompt|question|thought|my thought|answer|final answer|"
    r"reply|response|assistant|benign twin|twin)(?:\*\*|__)?\s*[:：]\s*(?:\*\*|__)?\s*",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(r"^(?:sure|okay|ok|certainly|of course|here(?:'s| is| are)?)\b[^\n]{0,80}:\s*$", re.IGNORECASE)
_QUOTES = [('"', '"'), ("“", "”"), ("'", "'"), ("«", "»")]
_NUMBERED = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")
# The generator model declining to write a prompt (not the assistant's refusal inside a record).
_DECLINED = re.compile(
    r"^(?:i'?m sorry|i am sorry|sorry,|i can(?:'|no)t (?:help|assist|create|write|provide|do)|i won'?t|"
    r"i'?m (?:not able|unable)|as an ai)", re.IGNORECASE)


def clean_reply(text: str) -> str:
    """The substance of a reply: think blocks, fences, wrappers, a preamble line, labels and quotes removed."""
    if OPEN_TAG in text or CLOSE_TAG in text:
        text = split_thinking(text).answer
    text = text.strip()
    for _ in range(3):  # layers come in any order: a fence around a label around quotes
        before = text
        if match := _FENCE.match(text):
            text = match.group(1).strip()
        if match := _WRAPPER.match(text):
            text = match.group(2).strip()
        first, _, rest = text.partition("\n")
        if rest.strip() and _PREAMBLE.match(first.strip()):
            text = rest.strip()
        text = _LABEL.sub("", text, count=1).strip()
        text = _unquote(text)
        if text == before:
            break
    if not text:
        raise EmptyReply("reply was empty after removing wrappers")
    return text


def clean_prompt(text: str) -> str:
    """A user message: as `clean_reply`, taking the first option of a list, and rejecting a refusal."""
    text = clean_reply(text)
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and all(_NUMBERED.match(line) for line in lines[:2]):
        text = _NUMBERED.sub("", lines[0]).strip()  # "1. ... 2. ...": several options, keep the first
        text = _unquote(_LABEL.sub("", text, count=1).strip())
    if _DECLINED.match(text):
        raise EmptyReply(f"the model declined to write a message: {text[:80]!r}", cause="declined")
    if not text:
        raise EmptyReply("reply was empty after removing wrappers")
    return text


def _unquote(text: str) -> str:
    for left, right in _QUOTES:
        marks = text.count(left) if left == right else text.count(left) + text.count(right)
        if len(text) > 1 and text.startswith(left) and text.endswith(right) and marks == 2:
            return text[1:-1].strip()
    return text
