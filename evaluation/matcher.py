"""Fast phrase matching: try each lexicon alternative only where a response has its first word.

A response has a few dozen words, and most alternatives start with a word most responses lack, so
indexing alternatives by their possible first words turns "every alternative at every position"
into a dictionary lookup per word plus a handful of anchored `match` calls. The first words are
read from each regular expression itself (`first_words`), so the lexicon stays plain regex.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

try:  # Python 3.11+
    from re import _constants as sre_constants
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

TOKEN = re.compile(r"\w+(?:'\w+)*")
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_'")
_MAX_WORDS = 400


class LexiconError(ValueError):
    """An alternative whose first word cannot be read off the pattern."""


def _walk(items, opened: set[str]) -> tuple[set[str], set[str]] | None:
    """Follow a parsed pattern from the current prefixes; return (finished words, still-open prefixes)."""
    finished: set[str] = set()
    for op, arg in items:
        if not opened:
            break
        if op is sre_constants.AT or op is sre_constants.ASSERT_NOT:
            continue  # \b, ^, negative look-ahead: consume nothing
        if op is sre_constants.LITERAL:
            char = chr(arg).lower()
            if char in _WORD_CHARS:
                opened = {o + char for o in opened}
            else:
                finished |= {o for o in opened if o}
                opened = set()
        elif op is sre_constants.BRANCH:
            outs = [_walk(alternative, opened) for alternative in arg[1]]
            if any(out is None for out in outs):
                return None
            finished |= set().union(*(out[0] for out in outs))
            opened = set().union(*(out[1] for out in outs))
        elif op is sre_constants.SUBPATTERN:
            out = _walk(arg[-1], opened)
            if out is None:
                return None
            finished |= out[0]
            opened = out[1]
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT) and arg[0] == 0 and arg[1] == 1:
            out = _walk(arg[2], opened)
            if out is None:
                return None
            finished |= out[0]
            opened = opened | out[1]
        else:
            return None  # a character class or a repeat: the first word is not a finite set
        if len(opened) + len(finished) > _MAX_WORDS:
            return None
    return finished, opened


def first_words(pattern: str) -> frozenset[str]:
    """Every word a match of `pattern` can start with (lower case); raise if that set is not finite."""
    out = _walk(sre_parse.parse(pattern, re.IGNORECASE), {""})
    if out is None:
        raise LexiconError(f"cannot read the first word of {pattern!r}: start it with literal words")
    words = out[0] | out[1]
    if not words or "" in words:
        raise LexiconError(f"{pattern!r} does not start with a word")
    return frozenset(words)


@dataclass(frozen=True)
class _Entry:
    family: str
    pattern: re.Pattern[str]
    sentence_start: bool


class Lexicon:
    """Families of alternatives, indexed by first word. `scan` returns where each family matched."""

    def __init__(self, families: Mapping[str, Sequence[str]]):
        self.families = tuple(families)
        index: dict[str, list[_Entry]] = defaultdict(list)
        for family, alternatives in families.items():
            for alternative in alternatives:
                start = alternative.startswith("^")
                body = alternative[1:] if start else alternative
                entry = _Entry(family, re.compile(f"(?:{body})", re.IGNORECASE), start)
                for word in first_words(body):
                    index[word].append(entry)
        self._index = dict(index)

    def scan(self, text: str, sentence_starts: Sequence[int] = (0,)) -> dict[str, list[int]]:
        """Family -> start offsets of its (non-overlapping) matches in `text`.

        `sentence_starts` are the offsets where sentences begin; `^` alternatives match only at the
        first word of a sentence.
        """
        found: dict[str, list[int]] = {}
        reach: dict[str, int] = {}  # family -> end of its last match, so matches do not overlap
        starts = list(sentence_starts) + [len(text) + 1]
        next_start = 0
        for token in TOKEN.finditer(text):
            position = token.start()
            at_sentence_start = False
            while starts[next_start] <= position:
                next_start += 1
                at_sentence_start = True
            word = token.group().lower()
            entries = self._index.get(word)
            if "'" in word:  # "doctor's": alternatives starting "doctor" may match here too
                head = self._index.get(word.split("'", 1)[0])
                entries = (entries or []) + (head or []) if head else entries
            if not entries:
                continue
            for entry in entries:
                if entry.sentence_start and not at_sentence_start:
                    continue
                if reach.get(entry.family, -1) > position:
                    continue
                match = entry.pattern.match(text, position)
                if match:
                    found.setdefault(entry.family, []).append(position)
                    reach[entry.family] = max(match.end(), position + 1)
        return found


def scan_plain(families: Mapping[str, Sequence[str]], text: str, sentence_starts: Sequence[int] = (0,)
               ) -> dict[str, list[int]]:
    """What `Lexicon.scan` returns, found the slow way: every alternative tried at every word.

    The reference that tests and `bench/classify.py` hold the first-word index against.
    """
    positions = [m.start() for m in TOKEN.finditer(text)]
    first_of_sentence = {min((p for p in positions if p >= s), default=-1) for s in sentence_starts}
    compiled = {family: [(a.startswith("^"), re.compile(f"(?:{a.removeprefix('^')})", re.IGNORECASE))
                         for a in alternatives] for family, alternatives in families.items()}
    found: dict[str, list[int]] = {}
    for family, alternatives in compiled.items():
        reach = -1
        for position in positions:
            if position < reach:
                continue
            for start_only, pattern in alternatives:
                if start_only and position not in first_of_sentence:
                    continue
                match = pattern.match(text, position)
                if match:
                    found.setdefault(family, []).append(position)
                    reach = max(match.end(), position + 1)
                    break
    return found
