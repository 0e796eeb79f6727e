"""The record: one line of JSONL, its schema, stable ids, reading with located errors (file I/O itself
lives in `pushback.files`).

Readers also accept the original project's two published shapes and convert them.
"""
from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pushback.files import FileProblem, append_line, decode_line, loads_line, write_atomic

Category = Literal["false_premise", "harmful", "risky", "ambiguous", "sycophancy", "benign"]
Expected = Literal["push_back", "refuse", "hedge", "clarify", "comply"]
AgentType = Literal[
    "problem_framer",
    "memory_activator",
    "mechanism_explorer",
    "perspective_generator",
    "limitation_acknowledger",
    "synthesizer",
]
Source = Literal["curated", "generated", "converted"]

CATEGORIES: tuple[str, ...] = get_args(Category)
BEHAVIOURS: tuple[str, ...] = get_args(Expected)
PERSONAS: tuple[str, ...] = get_args(AgentType)
FRICTION_BEHAVIOURS: frozenset[str] = frozenset(BEHAVIOURS) - {"comply"}

# The behaviour each category calls for: friction where warranted, plain help where not.
EXPECTED_FOR: dict[str, str] = {
    "false_premise": "push_back",
    "harmful": "refuse",
    "risky": "hedge",
    "ambiguous": "clarify",
    "sycophancy": "push_back",
    "benign": "comply",
}


def normalise(text: str) -> str:
    """Case-, width- and whitespace-insensitive form of a prompt, the basis of its id."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def record_id(user_input: str) -> str:
    """Stable id: the same prompt always gets the same id, whoever writes it and when."""
    return hashlib.sha1(normalise(user_input).encode("utf-8")).hexdigest()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


class AgentThought(_Strict):
    agent_type: AgentType
    thought_stream: str = Field(min_length=1)


class Metadata(_Strict):
    source: Source
    model: str | None = None
    twin_of: str | None = None
    topic: str | None = None


class Record(_Strict):
    id: str = Field(pattern=r"^[0-9a-f]{40}$")
    user_input: str = Field(min_length=1)
    category: Category
    expected: Expected
    agents: list[AgentThought] = Field(min_length=1)
    final_answer: str = Field(min_length=1)
    baseline_answer: str = Field(min_length=1)
    # Benign records only: the needless refusal, hedge or question a too-cautious model gives (the
    # rejected side of a benign preference pair; the chosen side is `final_answer`).
    overcautious_answer: str | None = Field(default=None, min_length=1)
    metadata: Metadata

    @field_validator("agents")
    @classmethod
    def _personas_once(cls, agents: list[AgentThought]) -> list[AgentThought]:
        seen = [a.agent_type for a in agents]
        repeated = sorted({p for p in seen if seen.count(p) > 1})
        if repeated:
            raise ValueError(f"persona repeated: {', '.join(repeated)}")
        return agents

    @model_validator(mode="after")
    def _consistent(self) -> Record:
        if self.id != record_id(self.user_input):
            raise ValueError("id: is not the sha1 of the normalised user_input (use pushback.records.record_id)")
        if EXPECTED_FOR[self.category] != self.expected:
            raise ValueError(
                f"expected: category {self.category!r} calls for {EXPECTED_FOR[self.category]!r}, not {self.expected!r}"
            )
        if self.metadata.twin_of is not None and self.category != "benign":
            raise ValueError("metadata.twin_of: only a benign look-alike points at its twin")
        if self.overcautious_answer is not None:
            if self.category != "benign":
                raise ValueError("overcautious_answer: only benign records carry one (friction records are "
                                 "paired with their baseline_answer)")
            if normalise(self.overcautious_answer) == normalise(self.final_answer):
                raise ValueError("overcautious_answer: is the same as final_answer; a pair needs two replies")
        return self

    @property
    def monologue(self) -> str:
        """The thought streams joined by blank lines: the text of the `<think>` block."""
        return "\n\n".join(a.thought_stream for a in self.agents)

    def to_json(self) -> str:
        row = self.model_dump(mode="json")
        if row["overcautious_answer"] is None:  # optional: absent rather than null in files
            del row["overcautious_answer"]
        return json.dumps(row, ensure_ascii=False)


def make_record(
    user_input: str,
    category: str,
    agents: Iterable[tuple[str, str]] | Iterable[dict[str, str]],
    final_answer: str,
    baseline_answer: str,
    *,
    source: str = "generated",
    model: str | None = None,
    twin_of: str | None = None,
    topic: str | None = None,
    expected: str | None = None,
    overcautious_answer: str | None = None,
) -> Record:
    """Build and validate a record; the id and the expected behaviour are derived, not typed."""
    thoughts = [a if isinstance(a, dict) else {"agent_type": a[0], "thought_stream": a[1]} for a in agents]
    return Record.model_validate(
        {
            "id": record_id(user_input),
            "user_input": user_input,
            "category": category,
            "expected": expected or EXPECTED_FOR.get(category, "comply"),
            "agents": thoughts,
            "final_answer": final_answer,
            "baseline_answer": baseline_answer,
            "overcautious_answer": overcautious_answer,
            "metadata": {"source": source, "model": model, "twin_of": twin_of, "topic": topic},
        }
    )


# --- the original project's published shapes -------------------------------------------------

# Its `metadata.focus` named the kind of friction; map it onto our categories.
_FOCUS_TO_CATEGORY = {
    "false_premise": "false_premise", "false premise": "false_premise", "misconception": "false_premise",
    "harmful": "harmful", "harm": "harmful", "safety": "harmful", "ethics": "harmful",
    "risky": "risky", "risk": "risky", "uncertainty": "risky", "medical": "risky", "financial": "risky",
    "ambiguous": "ambiguous", "ambiguity": "ambiguous", "clarification": "ambiguous", "vague": "ambiguous",
    "sycophancy": "sycophancy", "pressure": "sycophancy", "flattery": "sycophancy",
    "benign": "benign", "none": "benign", "general": "benign",
}


def _legacy_category(raw: dict[str, Any]) -> str:
    meta = raw.get("metadata") or {}
    focus = str(meta.get("focus") or raw.get("category") or "").strip().lower()
    if focus not in _FOCUS_TO_CATEGORY:
        raise ValueError(f"metadata.focus: unknown focus {focus!r}; known: {', '.join(sorted(_FOCUS_TO_CATEGORY))}")
    return _FOCUS_TO_CATEGORY[focus]


def _legacy_agents(items: Any, field: str) -> list[dict[str, str]]:
    if not isinstance(items, list) or not items:
        raise ValueError(f"{field}: expected a non-empty list of agent thoughts")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{field}.{i}: expected an object")
        kind = item.get("agent_type") or item.get("agent") or item.get("role")
        text = item.get("thought_stream") or item.get("response") or item.get("content")
        out.append({"agent_type": str(kind or "").strip().lower().replace(" ", "_"), "thought_stream": text or ""})
    return out


def convert_legacy(raw: dict[str, Any]) -> dict[str, Any] | None:
    """Return `raw` in our shape if it is one of the original project's shapes, else None.

    Shape A: `{user_input, agents, final_answer?, metadata: {focus}}`.
    Shape B: `{question, agent_responses, final_answer}`.
    The original had no eager answer; the converted record carries an empty one that validation flags,
    so a converted file is visibly incomplete rather than silently wrong.
    """
    if "question" in raw and "agent_responses" in raw:
        user_input, agents = raw["question"], _legacy_agents(raw["agent_responses"], "agent_responses")
    elif "user_input" in raw and "metadata" in raw and isinstance(raw["metadata"], dict) and "focus" in raw["metadata"]:
        user_input, agents = raw["user_input"], _legacy_agents(raw.get("agents"), "agents")
    else:
        return None
    category = _legacy_category(raw)
    final = raw.get("final_answer") or next(
        (a["thought_stream"] for a in agents if a["agent_type"] == "synthesizer"), ""
    )
    return {
        "id": record_id(str(user_input)),
        "user_input": user_input,
        "category": category,
        "expected": EXPECTED_FOR[category],
        "agents": agents,
        "final_answer": final,
        "baseline_answer": raw.get("baseline_answer", ""),
        "metadata": {"source": "converted", "model": (raw.get("metadata") or {}).get("model"),
                     "twin_of": None, "topic": None},
    }


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one line, located: `file:line: field: message`."""

    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class RecordsError(ValueError):
    """Raised with every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = "\n".join(str(p) for p in problems[:50])
        more = f"\n... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{len(problems)} problem(s) in records:\n{shown}{more}")


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "record"


def _validation_problems(path: str, line: int, error: ValidationError) -> list[Problem]:
    problems = []
    for err in error.errors():
        msg = err["msg"].removeprefix("Value error, ")
        field = _field_name(err["loc"])
        if field == "record" and msg.split(":", 1)[0] in Record.model_fields or msg.startswith("metadata."):
            field, msg = msg.split(": ", 1)
        problems.append(Problem(path, line, field, msg))
    return problems


@dataclass
class ReadResult:
    records: list[Record]
    problems: list[Problem]
    lines: int
    line_numbers: list[int]  # where each of `records` stands in the file


def parse_line(text: str, path: str = "<string>", line: int = 0) -> tuple[Record | None, list[Problem]]:
    """Parse one JSONL line into a record (converting legacy shapes) or the problems that stop it."""
    try:
        raw = loads_line(text, path, line)
    except FileProblem as e:
        return None, [Problem(path, line, "", str(e).split(": ", 1)[1])]
    if not isinstance(raw, dict):
        return None, [Problem(path, line, "", f"expected a JSON object, got {type(raw).__name__}")]
    try:
        converted = convert_legacy(raw)
    except ValueError as e:
        field, _, msg = str(e).partition(": ")
        return None, [Problem(path, line, field, msg)]
    try:
        return Record.model_validate(converted or raw), []
    except ValidationError as e:
        return None, _validation_problems(path, line, e)


def read_records(path: str | os.PathLike[str], *, check_duplicates: bool = True) -> ReadResult:
    """Read a JSONL file; collect every problem with its line instead of stopping at the first."""
    name = str(path)
    records: list[Record] = []
    problems: list[Problem] = []
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return ReadResult([], [Problem(name, 0, "", f"cannot read file ({e.strerror})")], 0, [])
    if not data.strip():
        return ReadResult([], [Problem(name, 0, "", "file is empty: no records")], 0, [])
    lines = data.split(b"\n")
    truncated_tail = not data.endswith(b"\n")
    seen: dict[str, int] = {}
    numbers: list[int] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            text = decode_line(raw, name, number)
        except FileProblem as e:
            problems.append(Problem(name, number, "", str(e).split(": ", 1)[1]))
            continue
        record, found = parse_line(text, name, number)
        if found and truncated_tail and number == len(lines):
            found = [Problem(name, number, "", "truncated last line (no newline at end; an interrupted write?)")]
        problems.extend(found)
        if record is None:
            continue
        if check_duplicates and record.id in seen:
            problems.append(Problem(name, number, "id", f"duplicate id {record.id[:12]}… (first on line {seen[record.id]})"))
            continue
        seen[record.id] = number
        records.append(record)
        numbers.append(number)
    return ReadResult(records, problems, sum(1 for raw in lines if raw.strip()), numbers)


def read_collection(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Record], list[Problem]]:
    """Read all files as one collection: problems per line, and ids repeated across files."""
    records: list[Record] = []
    problems: list[Problem] = []
    where: dict[str, tuple[str, int]] = {}
    for path in map(str, paths):
        result = read_records(path)
        problems.extend(result.problems)
        for number, record in zip(result.line_numbers, result.records):
            if record.id in where:
                first = "%s:%d" % where[record.id]
                problems.append(Problem(path, number, "id", f"duplicate id {record.id[:12]}… (first at {first})"))
                continue
            where[record.id] = (path, number)
            records.append(record)
    for r in records:
        if r.metadata.twin_of and r.metadata.twin_of not in where:
            problems.append(Problem(*where[r.id], "metadata.twin_of",
                                    f"points at {r.metadata.twin_of[:12]}…, which is not in these files"))
    return records, problems


def load_records(paths: Iterable[str | os.PathLike[str]]) -> list[Record]:
    """Read several files as one collection; raise `RecordsError` listing every problem."""
    records, problems = read_collection(paths)
    if problems:
        raise RecordsError(problems)
    return records


# --- writing ----------------------------------------------------------------------------------


def write_records(path: str | os.PathLike[str], records: Iterable[Record]) -> None:
    write_atomic(path, "".join(r.to_json() + "\n" for r in records))


def append_record(path: str | os.PathLike[str], record: Record) -> None:
    """Append one record durably (a crash loses at most this line)."""
    append_line(path, record.to_json())
