"""`pushback generate` never harms a file it did not write, and says why in one line when it cannot run:
a file of other data as --out, a folder, a read-only folder, a second run on the same output, bad flags.
Against the real loopback server, whose request count shows that no call was spent."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from generation.run import EXIT_FATAL, EXIT_OK
from generation.store import lock_path, set_aside_path, stats_path
from pushback.cli import main as cli
from pushback.records import make_record
from support.generation_runs import REPO, valid_records, wait_for_lines


def _generate(url: str, out: Path, n: int = 3, *extra: str) -> list[str]:
    return ["generate", "--model", "openai/local", "--api-base", url, "--n", str(n), "--out", str(out),
            "--workers", "1", "--concurrency", "4", "--max-retries", "1", "--timeout", "5", *extra]


def _one_line_error(capsys) -> str:
    printed = capsys.readouterr()
    lines = printed.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in printed.err + printed.out, printed.err
    return lines[0]


def _dead_url() -> str:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


def _records(count: int) -> list:
    return [make_record(f"How do I keep basil number {i} alive indoors?", "benign", [("problem_framer", "Fine.")],
                        "Water it when the soil is dry.", "Sure!", overcautious_answer="I can't advise on plants.")
            for i in range(count)]


def test_a_file_of_other_data_is_refused_and_left_untouched(server, tmp_path: Path, capsys):
    out = tmp_path / "notes.jsonl"
    out.write_bytes(b'{"a": 1}\n{"b": 2}\n')
    assert cli(_generate(server.url, out)) == EXIT_FATAL
    error = _one_line_error(capsys)
    assert error.startswith(f"pushback generate: {out}:1:") and "nothing was changed" in error
    assert out.read_bytes() == b'{"a": 1}\n{"b": 2}\n' and server.counts["requests"] == 0
    assert not set_aside_path(out).exists() and not stats_path(out).exists() and not lock_path(out).exists()


def test_invalid_utf8_in_the_output_is_refused_with_its_line(server, tmp_path: Path, capsys):
    out = tmp_path / "records.jsonl"
    data = b"".join(r.to_json().encode() + b"\n" for r in _records(2)) + b"caf\xe9 au lait\n"
    out.write_bytes(data)
    assert cli(_generate(server.url, out)) == EXIT_FATAL
    assert f"{out}:3: not valid UTF-8" in _one_line_error(capsys)
    assert out.read_bytes() == data and server.counts["requests"] == 0


def test_a_run_whose_endpoint_is_down_changes_nothing_in_a_record_file_with_a_bom_and_a_torn_tail(tmp_path: Path,
                                                                                                   capsys):
    out = tmp_path / "records.jsonl"
    good = b"".join(r.to_json().encode() + b"\n" for r in _records(3))
    data = b"\xef\xbb\xbf" + good + _records(4)[3].to_json().encode()[:30]  # BOM; a line cut off by kill -9
    out.write_bytes(data)
    assert cli(_generate(_dead_url(), out, 6)) == EXIT_FATAL  # no call ever succeeds
    printed = capsys.readouterr().out
    assert "3 before this run" in printed and "left in place as nothing was written" in printed
    assert out.read_bytes() == data and not set_aside_path(out).exists()


def test_a_record_file_with_a_bom_is_read_as_records_and_resumed(server, tmp_path: Path, capsys):
    out = tmp_path / "records.jsonl"
    out.write_bytes(b"\xef\xbb\xbf" + b"".join(r.to_json().encode() + b"\n" for r in _records(2)))
    assert cli(_generate(server.url, out, 4)) == EXIT_OK
    assert "2 before this run, 2 written" in capsys.readouterr().out
    assert len(valid_records(out)) == 4 and not set_aside_path(out).exists()


def test_a_folder_as_output_is_one_line_and_no_call(server, tmp_path: Path, capsys):
    assert cli(_generate(server.url, tmp_path)) == EXIT_FATAL
    assert "is a folder" in _one_line_error(capsys) and server.counts["requests"] == 0


def test_a_read_only_folder_is_found_before_the_first_call(server, read_only_dir: Path, capsys):
    out = read_only_dir / "records.jsonl"
    assert cli(_generate(server.url, out)) == EXIT_FATAL
    assert f"--out {out}: cannot write in {read_only_dir}" in _one_line_error(capsys)
    assert server.counts["requests"] == 0 and not any(read_only_dir.iterdir())


def test_a_stats_file_of_something_else_is_not_overwritten(server, tmp_path: Path, capsys):
    out = tmp_path / "records.jsonl"
    stats_path(out).write_text("my own notes\n")
    assert cli(_generate(server.url, out)) == EXIT_FATAL
    assert "is not a stats file of this command" in _one_line_error(capsys)
    assert stats_path(out).read_text() == "my own notes\n" and server.counts["requests"] == 0


@pytest.mark.parametrize("flags, named", [
    (["--max-retries", "-3"], "--max-retries must be 0 or more"),
    (["--timeout", "-1"], "--timeout must be a number of seconds above 0"),
    (["--timeout", "0"], "there is no 'no limit'"),
    (["--few-shot", "-5"], "--few-shot must be 0 or more"),
])
def test_bad_flags_are_one_line_naming_the_flag(server, tmp_path: Path, capsys, flags: list[str], named: str):
    out = tmp_path / "records.jsonl"
    assert cli(_generate(server.url, out, 3, *flags)) == EXIT_FATAL
    assert named in _one_line_error(capsys)
    assert not out.exists() and server.counts["requests"] == 0


def test_a_template_with_invalid_utf8_is_named_with_its_line(server, tmp_path: Path, capsys):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "baseline.txt").write_bytes(b"Task: write the eager answer\n<message>$user_input</message>\n\xff\n")
    assert cli(_generate(server.url, tmp_path / "records.jsonl", 3, "--templates", str(templates))) == EXIT_FATAL
    assert f"{templates / 'baseline.txt'}:3: not valid UTF-8" in _one_line_error(capsys)


@pytest.mark.skipif(sys.platform == "win32", reason="the output lock is POSIX flock")
def test_a_second_run_on_the_same_output_stops_at_once_naming_the_first(tmp_path: Path, capsys):
    from support.openai_server import LocalOpenAIServer

    out = tmp_path / "records.jsonl"
    with LocalOpenAIServer(latency=0.05) as server:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        first = subprocess.Popen([sys.executable, "-m", "pushback", *_generate(server.url, out, 200)], cwd=REPO,
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_lines(out, 1, timeout=60, process=first)
            requests = server.counts["requests"]
            written = out.read_bytes().count(b"\n")
            assert cli(_generate(server.url, out, 200)) == EXIT_FATAL
            error = _one_line_error(capsys)
            assert f"another `pushback generate` is writing it (pid {first.pid})" in error
            assert server.counts["requests"] - requests < 40  # only the first run's calls (a few per 0.05 s)
        finally:
            first.send_signal(signal.SIGINT)
            first.wait(timeout=30)
    records = valid_records(out)  # one writer: every line a whole record, no id twice
    assert len(records) >= written and len({r.id for r in records}) == len(records)
    assert not lock_path(out).exists()  # released by the first run as it ended


def test_a_stats_file_that_cannot_be_written_is_reported_beside_the_outcome(server, tmp_path: Path, capsys,
                                                                            monkeypatch):
    """A disk that fills up at the end cannot be made here for real: the write itself is made to fail."""
    import errno

    import generation.run

    def full_disk(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(generation.run, "write_atomic", full_disk)
    out = tmp_path / "records.jsonl"
    assert cli(_generate(server.url, out, 2)) == EXIT_FATAL
    printed = capsys.readouterr()
    assert "2/2 valid records" in printed.out and "Traceback" not in printed.err
    assert f"stats: cannot write {stats_path(out)} (No space left on device)" in printed.out
    assert len(valid_records(out)) == 2
