"""Where delivery happens: the shape of an answer (verse, code, a list, paragraphs), the numbers it opens
with, and the questions it puts to the user -- read from the text itself, with no phrase lexicon.

A writing request answered with a disclaimer and a few lines of prose has not been carried out; the same
disclaimer followed by twelve short lines of verse has. A correction that never says "actually" often
opens with a figure the prompt did not give ("Goldfish remember for months" to "3-second memory"). A
clarifying question may follow a partial answer. The learned layer (`evaluation.learned`) reads these as
features beside the cue families; none of them decides a label on its own.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_LIST_LINE = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s+\S")
_WORD = re.compile(r"[A-Za-z0-9']+")
# A line of code: a statement, a call, an assignment, a shell prompt or a keyword that opens a block.
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from [\w.]+ import |return\b|for .+:$|while .+:$|if .+:$|elif |else:|try:|except\b|"
    r"const |let |var |function\b|#include|public |private |SELECT |UPDATE |INSERT |CREATE TABLE|\$ |>>> |[}{]\s*$|"
    r"[\w.\[\]]+\s*(?:=|\+=|-=|==)\s*\S.*|[\w.]+\([^)]*\)\s*;?\s*$|<\w+[^>]*>)")
VERSE_MAX_WORDS = 12  # a line of verse is short ...
VERSE_MIN_LINES = 4  # ... and a poem has a few of them
# A number as written in running text: "3", "3.5", "1,200", "40%".
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# Questions asked about the user's situation ("Which version are you on?", "What's your budget?").
_ABOUT_YOU = re.compile(r"\b(?:you|your|you're|you've|yours)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Shape:
    lines: int  # non-empty lines
    verse_lines: int  # short lines that are neither list items nor headings ending in ":"
    code_lines: int  # lines that read as code (fenced blocks count every line inside)
    paragraphs: int  # blocks separated by a blank line
    list_lines: int

    @property
    def verse(self) -> bool:
        return self.verse_lines >= VERSE_MIN_LINES and 2 * self.verse_lines >= self.lines

    @property
    def code(self) -> bool:
        return self.code_lines >= 2


def shape_of(answer: str) -> Shape:
    lines = [line for line in answer.splitlines() if line.strip()]
    verse = code = listed = 0
    fenced = False
    for line in lines:
        if line.lstrip().startswith("```"):
            fenced = not fenced
            code += 1
            continue
        if fenced or _CODE_LINE.match(line):
            code += 1
            continue
        if _LIST_LINE.match(line):
            listed += 1
            continue
        words = len(_WORD.findall(line))
        if 0 < words <= VERSE_MAX_WORDS and not line.rstrip().endswith((":", "?")) and not line.lstrip().startswith("#"):
            verse += 1
    paragraphs = len([block for block in re.split(r"\n\s*\n", answer) if block.strip()])
    return Shape(len(lines), verse, code, paragraphs, listed)


def numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def new_numbers(sentence: str, prompt: str) -> bool:
    """The sentence gives a figure the prompt names none of, where the prompt gives figures of its own
    ("It takes about 20 minutes" to "my 3-minute egg"): a correction that does not announce itself."""
    asked = numbers(prompt)
    said = numbers(sentence)
    return bool(asked) and bool(said) and not said & asked


def prompt_overlap(sentence: str, content_words: frozenset[str]) -> float:
    """Share of the prompt's content words the sentence repeats."""
    if not content_words:
        return 0.0
    said = {w.lower() for w in _WORD.findall(sentence)}
    return len(said & content_words) / len(content_words)


def about_you(question: str) -> bool:
    return bool(_ABOUT_YOU.search(question))
