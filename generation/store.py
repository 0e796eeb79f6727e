"""The output file as a checkpoint: what it already holds, what was cut off, and safe appends.

Every finished record is appended and fsynced on its own (`pushback.records.append_record`), so a
`kill -9` loses at most the line being written. On the next run that cut-off line, and any other
line that is not a valid record, is moved to `<stem>.set_aside.txt` (never silently dropped), and
the valid records count towards `--n`.
"""
from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pushback.records import Problem, Record, append_record, read_records, write_records


@dataclass
class Existing:
    records: list[Record] = field(default_factory=list)
    set_aside: list[Problem] = field(default_factory=list)  # lines moved out of the output, and why
    set_aside_path: Path | None = None

    @property
    def ids(self) -> set[str]:
        return {r.id for r in self.records}

    @property
    def categories(self) -> Counter[str]:
        return Counter(r.category for r in self.records)


def set_aside_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.set_aside.txt")


def stats_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.stats.json")


def open_output(out: Path) -> Existing:
    """Read what `out` holds; move broken lines aside so every line left is a valid, unique record."""
    if not out.exists() or out.stat().st_size == 0:
        return Existing()
    data = out.read_bytes()
    result = read_records(out)
    lines = data.split(b"\n")
    bad = {p.line for p in result.problems if p.line}
    keep = list(result.records)
    # A benign twin whose original was set aside would point at nothing: set it aside too.
    kept_ids = {r.id for r in keep}
    for number, record in zip(result.line_numbers, result.records, strict=True):
        if record.metadata.twin_of and record.metadata.twin_of not in kept_ids:
            bad.add(number)
            result.problems.append(Problem(str(out), number, "metadata.twin_of", "its original is not in the file"))
            keep.remove(record)
    if not bad and data.endswith(b"\n"):
        return Existing(keep)
    aside = set_aside_path(out)
    if bad:
        with open(aside, "ab") as f:  # first keep the broken lines safe, then rewrite the output
            for number in sorted(bad):
                f.write(f"# {out}:{number}\n".encode() + lines[number - 1] + b"\n")
            f.flush()
            os.fsync(f.fileno())
    write_records(out, keep)  # atomic: also completes a valid last line that lacked its newline
    problems = [p for p in result.problems if p.line in bad]
    return Existing(keep, problems, aside if bad else None)


class Appender:
    """Appends records one at a time, off the event loop, in the order they finish; `on_written` is
    called for each record once it is durable (even if the task was cancelled meanwhile)."""

    def __init__(self, out: Path, on_written: Callable[[Record], None] = lambda record: None):
        self.out = out
        self.on_written = on_written
        self._lock = asyncio.Lock()

    async def append(self, record: Record) -> None:
        async with self._lock:
            write = asyncio.ensure_future(asyncio.to_thread(append_record, self.out, record))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                await write  # finish the line already started (and keep the lock) before giving up
                self.on_written(record)
                raise
            self.on_written(record)
