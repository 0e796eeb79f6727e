"""`pushback generate --workers W`: worker processes make the calls, the parent alone writes.

Against the real local HTTP server through LiteLLM: exactly N valid unique records, 20% faults, 401
stopping everything at once, `kill -9` of the parent (no orphan left running, nothing written after),
Ctrl-C, the spawn start method; and, without a server, failures planned again within a budget."""
from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.openai_server import LocalOpenAIServer
from support.generation_runs import FAST, REPO, run_config as _one_process_config, valid_records as _valid, wait_for_lines as _wait_for_lines

from generation.pipeline import calls_for
from generation.config import GenerateConfig, auto_workers, available_cpus, check_config, parse_workers
from generation.run import EXIT_OK, Runner
from generation.workers import split
from pushback.endpoint import import_litellm
from pushback.cli import main as cli
from pushback.records import read_records


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the Linux process table")


def _config(server: LocalOpenAIServer, out: Path, n: int, **kw) -> GenerateConfig:
    kw.setdefault("workers", 2)
    return _one_process_config(server, out, n, **kw)


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid`, from the process table."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited orphan may wait for init to reap it)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_until_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [p for p in pids if _running(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def test_two_workers_write_exactly_n_valid_unique_records_and_sum_their_meters(server, tmp_path: Path):
    out = tmp_path / "records.jsonl"
    report = asyncio.run(Runner(_config(server, out, 24)).run())
    records = _valid(out)
    assert len(records) == 24 == report.written == report.final_count and report.failed == 0
    assert len({r.id for r in records}) == 24 and all(len(r.agents) == 6 for r in records)
    assert report.workers == 2 and len(report.calls_by_worker) == 2 and min(report.calls_by_worker) > 0
    assert server.counts["requests"] == report.meter.calls == sum(report.calls_by_worker) == sum(calls_for(r.category) for r in records)
    assert report.meter.tokens > 0 and report.cpu_s > 0
    assert not multiprocessing.active_children()  # the workers were stopped and reaped


def test_two_workers_survive_twenty_percent_faults_with_twins(server, tmp_path: Path):
    server.fault_rate, server.faults = 0.2, ("429", "500", "hang", "drop")
    out = tmp_path / "records.jsonl"
    report = asyncio.run(Runner(_config(server, out, 30, twins=True)).run())
    records = _valid(out)
    assert len(records) == 30 and report.failed == 0 and len({r.id for r in records}) == 30
    retried = report.meter.retries  # summed over the workers
    assert retried["429"] and retried["5xx"] and retried["timeout"] and retried["connection"]
    # Each fault retried once; a timeout also when a loaded machine delays an answer past the time limit.
    assert (retried["429"], retried["5xx"], retried["connection"]) == tuple(server.counts[f] for f in ("429", "500", "drop"))
    assert retried["timeout"] >= server.counts["hang"]
    ids = {r.id for r in records}
    twins = [r for r in records if r.metadata.twin_of]
    assert twins and all(t.metadata.twin_of in ids for t in twins)
    position = {r.id: i for i, r in enumerate(records)}
    assert all(position[t.metadata.twin_of] < position[t.id] for t in twins)  # each original before its twin


def _start_generate(server: LocalOpenAIServer, out: Path, n: int, **popen) -> tuple[subprocess.Popen, list[str]]:
    arguments = ["generate", "--model", "openai/local", "--api-base", server.url, "--n", str(n), "--out", str(out),
                 "--concurrency", "6", "--workers", "2", "--max-retries", "8", "--timeout", "5"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "pushback", *arguments], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **popen)
    return process, arguments


@pytest.mark.slow
@needs_proc
def test_kill_9_of_the_parent_leaves_no_worker_running_and_a_rerun_gives_exactly_n(tmp_path: Path, capsys):
    out, n = tmp_path / "records.jsonl", 30
    with LocalOpenAIServer(latency=0.03, fault_rate=0.1, faults=("429", "500"), retry_after=0.05) as server:
        victim, arguments = _start_generate(server, out, n)
        try:
            _wait_for_lines(out, 6, timeout=60, process=victim)
            workers = _children(victim.pid)
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
        assert len(workers) == 2, workers
        assert not _wait_until_gone(workers, timeout=3), "orphaned workers still running after the parent died"
        left = out.read_bytes()
        time.sleep(0.3)
        assert out.read_bytes() == left  # workers never write; nothing lands after the parent is gone
        killed_at = len(read_records(out).records)
        assert 6 <= killed_at < n
        assert cli(arguments) == EXIT_OK  # the rerun, in-process, with workers again
    printed = capsys.readouterr().out
    assert f"{n}/{n} valid records" in printed and f"{killed_at} before this run" in printed
    records = _valid(out)
    assert len(records) == n and len({r.id for r in records}) == n


@needs_proc
def test_ctrl_c_stops_the_parent_and_its_workers_cleanly(tmp_path: Path):
    out = tmp_path / "records.jsonl"
    with LocalOpenAIServer(latency=0.03) as server:
        # A new session stands in for a terminal: Ctrl-C sends SIGINT to the whole process group.
        victim, _ = _start_generate(server, out, 400, start_new_session=True)
        try:
            _wait_for_lines(out, 4, timeout=60, process=victim)
            workers = _children(victim.pid)
            os.killpg(victim.pid, signal.SIGINT)
            assert victim.wait(timeout=15) == 130, victim.stderr.read()
        finally:
            if victim.poll() is None:
                victim.kill()
    assert len(workers) == 2 and not _wait_until_gone(workers, timeout=3)
    stats = json.loads((tmp_path / "records.stats.json").read_text())
    assert stats["interrupted"] is True and stats["records"]["written"] >= 4
    assert len(_valid(out)) == stats["records"]["in_file"] == stats["records"]["written"]


@pytest.mark.slow
def test_workers_also_run_with_the_spawn_start_method(server, tmp_path: Path):
    """The default on macOS and Windows: each worker imports what it needs and gets its setup pickled."""
    out = tmp_path / "records.jsonl"
    report = asyncio.run(Runner(_config(server, out, 4, concurrency=2, start_method="spawn")).run())
    assert len(_valid(out)) == 4 and report.failed == 0 and min(report.calls_by_worker) > 0


def test_failed_records_are_planned_again_within_a_budget(tmp_path: Path):
    """One record blocked by the provider is replaced; a provider that blocks a whole category ends the run
    short (exit 1) instead of replacing forever. LiteLLM's mock_response stands in for the provider."""
    litellm = import_litellm()

    def runner(n: int, block) -> Runner:
        config = GenerateConfig(model="openai/mock", out=tmp_path / f"records-{n}.jsonl", n=n, concurrency=1,
                                workers=1, progress=False, policy=FAST)
        runner = Runner(config)
        original, calls = runner.client._attempt, []

        async def provider(kwargs):
            calls.append(kwargs["messages"][-1]["content"])
            if block(len(calls), calls[-1]):
                raise litellm.ContentPolicyViolationError(message="blocked", model="mock", llm_provider="openai")
            return await original({**kwargs, "mock_response": f"Reply number {len(calls)}?"})

        runner.client._attempt = provider
        return runner

    one = asyncio.run(runner(4, lambda number, _: number == 12).run())  # a call of the second record
    assert one.final_count == 4 and one.failed == 1 and one.replaced == 1 and one.failures["content_policy"] == 1
    everything = asyncio.run(runner(20, lambda number, text: number > 9 and "Category: harmful" in text).run())
    assert everything.failures["content_policy"] == everything.failed > everything.replaced
    assert everything.replaced == 2  # the budget: 10% of 20 records
    assert everything.final_count == 20 - everything.failed + everything.replaced < 20


def test_worker_count_parsing_auto_rule_and_shares():
    assert parse_workers("auto") is None and parse_workers(None) is None and parse_workers("3") == 3
    with pytest.raises(ValueError, match="at least 1"):
        parse_workers("0")
    with pytest.raises(ValueError, match="a number or auto"):
        parse_workers("many")
    assert auto_workers(1) == auto_workers(16) == 1
    assert auto_workers(17) == 2 and auto_workers(64) == min(4, 2 * available_cpus())
    assert auto_workers(10_000) == 2 * available_cpus()
    assert split(64, 3) == [22, 21, 21] and split(5, 5) == [1] * 5
    with pytest.raises(ValueError, match="between 1 and --concurrency"):
        check_config(GenerateConfig(model="m", out=Path("x.jsonl"), n=1, concurrency=2, workers=3))
