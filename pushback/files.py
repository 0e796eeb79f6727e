"""Files, written so that nothing is lost: whole-file atomic writes, durable appends, and a JSONL
reader whose every error names the file and the line. Records, reports, cards, votes and manifests
all go through here."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

BOM = "\ufeff"
# json.loads recurses once per nesting level; a line nested deeper than Python's stack is not data anyone
# meant to write, and the RecursionError it raises names nothing. Refuse it with its place instead.
MAX_DEPTH = 200


class FileProblem(ValueError):
    """A file that cannot be read as asked; the message starts with `file:line:`."""


def decode_line(raw: bytes, path: str | os.PathLike[str], number: int) -> str:
    """One line of a file as text (a leading UTF-8 BOM on the first line dropped); names the place on bad bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FileProblem(f"{path}:{number}: not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})") from None
    return text.removeprefix(BOM) if number == 1 else text


def _depth(text: str) -> int:
    """Deepest bracket nesting outside strings (cheap: one pass, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def loads_line(text: str, path: str | os.PathLike[str] = "<string>", number: int = 0) -> Any:
    """`json.loads` of one line; every failure is a `FileProblem` naming the place."""
    where = f"{path}:{number}" if number else str(path)
    if ("[" * 64 in text or "{" * 64 in text or text.count("[") + text.count("{") > MAX_DEPTH) \
            and _depth(text) > MAX_DEPTH:
        raise FileProblem(f"{where}: JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FileProblem(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise FileProblem(f"{where}: JSON nested too deeply") from None


def numbered_objects(lines: Iterable[bytes], name: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of JSONL bytes (a file, stdin); names `name:line` of the
    first bad one."""
    for number, raw in enumerate(lines, start=1):
        text = decode_line(raw, name, number)
        if not text.strip():
            continue
        row = loads_line(text, name, number)
        if not isinstance(row, dict):
            raise FileProblem(f"{name}:{number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Objects of a JSONL file (results, votes, caches); names the file and line of the first bad one."""
    for _, row in numbered_jsonl(path):
        yield row


def numbered_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of a JSONL file, blank lines skipped: for readers that name a line's problem."""
    with open(path, "rb") as f:
        for number, row in numbered_objects(f, path):
            yield number, row


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write the whole file or nothing: a temp file in the same folder, fsync, then rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); keep the mode a plain write would give.
        os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Pretty JSON, atomically (results, manifests, metrics)."""
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def append_jsonl(path: str | os.PathLike[str], row: dict[str, Any]) -> None:
    """Append one JSON object as a line, durably."""
    append_line(path, json.dumps(row, ensure_ascii=False))


def append_line(path: str | os.PathLike[str], text: str) -> None:
    """Append one line and make it durable before returning: a crash loses at most this line."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
