"""The output file as a checkpoint: what it already holds, a lock for the run's lifetime, and safe appends.

Every finished record is appended and fsynced on its own (`pushback.records.append_record`), so a
`kill -9` loses at most the line being written. On the next run that cut-off line, and any other
line of ours that is no longer a valid record, is moved to `<stem>.set_aside.txt` (never silently
dropped), and the valid records count towards `--n`.

Nothing is changed before it must be: opening the output only reads it (and refuses a file that is
not a record file of ours, or a folder); the set-aside and the rewrite happen when the first new
record is ready to append, so a run whose endpoint is down leaves every file as it found it.
"""
from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pushback.files import FileProblem, decode_line, loads_line
from pushback.records import Problem, Record, append_record, read_records, write_records

# Our writer puts the id first (`Record.to_json`); a line cut off by `kill -9` still starts so.
_RECORD_START = b'{"id"'
_RECORD_KEYS = {"id", "user_input", "category"}


class OutputError(RuntimeError):
    """The output cannot be used as asked; one line that names the file (and the line) and why. Not a
    ValueError: a record that fails validation (ValueError) fails that record; this stops the run."""


def set_aside_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.set_aside.txt")


def stats_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.stats.json")


def lock_path(out: Path) -> Path:
    return out.with_name(f"{out.name}.lock")


@dataclass
class Existing:
    """What the output held when the run began. `bad_lines`: line numbers (1-based) to set aside before
    the first append; `fingerprint`: size and mtime when read (the file must not change under us)."""

    records: list[Record] = field(default_factory=list)
    set_aside: list[Problem] = field(default_factory=list)  # lines that will be (or were) moved out, and why
    bad_lines: list[int] = field(default_factory=list)
    needs_rewrite: bool = False  # bad lines to remove, or a valid last line without its newline
    lines: list[bytes] = field(default_factory=list)
    fingerprint: tuple[int, int] | None = None

    @property
    def ids(self) -> set[str]:
        return {r.id for r in self.records}

    @property
    def categories(self) -> Counter[str]:
        return Counter(r.category for r in self.records)


def _is_ours(raw: bytes, number: int, torn: bool, path: Path) -> bool:
    """A line this command could have written: a record (valid or not by today's schema), or the
    cut-off start of one (`torn`: the last line, without its newline)."""
    if torn and raw.startswith(_RECORD_START):
        return True
    try:
        row = loads_line(decode_line(raw, path, number), path, number)
    except FileProblem:
        return False
    return isinstance(row, dict) and _RECORD_KEYS <= row.keys()


def read_output(out: Path) -> Existing:
    """Read what `out` holds, changing nothing; `OutputError` for a file that is not ours."""
    if not out.exists():
        return Existing()
    stat = out.stat()
    data = out.read_bytes()
    if not data.strip():
        return Existing(fingerprint=(stat.st_size, stat.st_mtime_ns))
    result = read_records(out)
    lines = data.split(b"\n")
    torn = len(lines) if not data.endswith(b"\n") else None
    bad: set[int] = set()
    for problem in result.problems:
        if not problem.line:
            continue
        if not _is_ours(lines[problem.line - 1], problem.line, problem.line == torn, out):
            raise OutputError(f"{problem}: --out must name a new file or one this command wrote; "
                              "nothing was changed")
        bad.add(problem.line)
    keep = list(result.records)
    problems = [p for p in result.problems if p.line in bad]
    # A benign twin whose original is not kept would point at nothing: set it aside too.
    kept_ids = {r.id for r in keep}
    for number, record in zip(result.line_numbers, result.records, strict=True):
        if record.metadata.twin_of and record.metadata.twin_of not in kept_ids:
            bad.add(number)
            problems.append(Problem(str(out), number, "metadata.twin_of", "its original is not in the file"))
            keep.remove(record)
    return Existing(keep, problems, sorted(bad), bool(bad) or not data.endswith(b"\n"), lines,
                    (stat.st_size, stat.st_mtime_ns))


def check_writable(out: Path) -> None:
    """Prove, before the first call, that the output, its stats and set-aside files can be written:
    a run that can only fail at the end must not spend a single call."""
    if out.is_dir():
        raise OutputError(f"--out {out}: is a folder; name a .jsonl file (new, or one this command wrote)")
    folder = out.parent if str(out.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{out.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"--out {out}: cannot write in {folder} ({e.strerror or e})") from None
    for path in (out, set_aside_path(out)):
        if path.exists():
            try:
                with open(path, "ab"):  # opening to append changes nothing
                    pass
            except OSError as e:
                raise OutputError(f"--out {out}: cannot write {path} ({e.strerror or e})") from None
    stats = stats_path(out)
    if stats.exists():
        try:
            ours = "settings" in json.loads(stats.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError):
            ours = False
        if not ours:
            raise OutputError(f"--out {out}: {stats} exists and is not a stats file of this command; "
                              "move it or choose another --out")


def repair(out: Path, existing: Existing) -> None:
    """Move the bad lines to the set-aside file, then rewrite the output with the good ones (atomically).
    Called with the lock held, just before the first append."""
    if not existing.needs_rewrite:
        return
    stat = out.stat() if out.exists() else None
    if stat is None or (stat.st_size, stat.st_mtime_ns) != existing.fingerprint:
        raise OutputError(f"{out} changed while this run was using it; nothing was rewritten")
    if existing.bad_lines:
        with open(set_aside_path(out), "ab") as f:  # first keep the broken lines safe, then rewrite the output
            f.writelines(f"# {out}:{number}\n".encode() + existing.lines[number - 1] + b"\n"
                         for number in existing.bad_lines)
            f.flush()
            os.fsync(f.fileno())
    write_records(out, existing.records)  # atomic: also completes a valid last line that lacked its newline
    existing.needs_rewrite = False


class OutputLock:
    """An exclusive lock on `<out>.lock` (holding our pid) for the run's lifetime: a second run on the same
    output stops at once, naming the holder. POSIX only (`fcntl.flock`); elsewhere no lock is taken."""

    def __init__(self, out: Path):
        self.out = out
        self.path = lock_path(out)
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows
            return
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise OutputError(f"--out {self.out}: cannot create {self.path} ({e.strerror or e})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise OutputError(f"--out {self.out}: another `pushback generate` is writing it (pid {holder}); "
                                  "wait for it to end or stop it, then rerun") from None
            try:  # the holder before us removes the file as it leaves: make sure we locked the one in place
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it: the next run locks a fresh file
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> OutputLock:  # noqa: PYI034 - never subclassed
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Appender:
    """Appends records one at a time, off the event loop, in the order they finish; before the first, sets
    the broken lines of an earlier run aside (`repair`). `on_written` is called for each record once it
    is durable (even if the task was cancelled meanwhile)."""

    def __init__(self, out: Path, existing: Existing | None = None,
                 on_written: Callable[[Record], None] = lambda record: None,
                 on_repaired: Callable[[Existing], None] = lambda existing: None):
        self.out = out
        self.existing = existing or Existing()
        self.on_written = on_written
        self.on_repaired = on_repaired
        self._lock = asyncio.Lock()

    def _write(self, record: Record) -> None:
        if self.existing.needs_rewrite:
            repair(self.out, self.existing)
            self.on_repaired(self.existing)
        append_record(self.out, record)

    async def append(self, record: Record) -> None:
        async with self._lock:
            write = asyncio.ensure_future(asyncio.to_thread(self._write, record))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                await write  # finish the line already started (and keep the lock) before giving up
                self.on_written(record)
                raise
            self.on_written(record)
