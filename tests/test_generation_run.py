"""End to end against a real OpenAI-compatible HTTP server on 127.0.0.1, reached through LiteLLM:
valid records, faults survived, 401 stopping at once, resume after `kill -9`, the CLI."""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.generation_runs import REPO, run_config as _config, valid_records as _valid, wait_for_lines as _wait_for_lines
from support.openai_server import LocalOpenAIServer

from generation.pipeline import calls_for
from generation.config import GenerateConfig
from generation.run import EXIT_FATAL, EXIT_OK, Runner, main
from pushback.endpoint import CallFailed, Endpoint, RetryPolicy
from pushback.cli import main as cli
from pushback.records import read_records

def test_forty_records_are_valid_balanced_and_counted(server, tmp_path: Path):
    out = tmp_path / "records.jsonl"
    report = asyncio.run(Runner(_config(server, out, 40)).run())
    records = _valid(out)
    assert len(records) == 40 == report.written == report.final_count and report.failed == 0
    assert len({r.id for r in records}) == 40
    assert all(len(r.agents) == 6 and r.metadata.source == "generated" for r in records)
    assert len({r.category for r in records}) >= 4  # the curated mix, not one category
    assert server.counts["requests"] == report.meter.calls == sum(calls_for(r.category) for r in records)
    benign = [r for r in records if r.category == "benign"]  # each with its over-cautious answer (its own call)
    assert benign and all(r.overcautious_answer and r.overcautious_answer != r.final_answer for r in benign)
    assert all(r.overcautious_answer is None for r in records if r.category != "benign")
    assert report.meter.tokens > 0 and not report.meter.cost_known  # a local model has no price


def test_twenty_percent_faults_still_complete_every_record(server, tmp_path: Path):
    server.fault_rate, server.faults = 0.2, ("429", "500", "hang", "drop")
    out = tmp_path / "records.jsonl"
    report = asyncio.run(Runner(_config(server, out, 30, twins=True)).run())
    records = _valid(out)
    assert len(records) == 30 and report.failed == 0
    assert {"429", "500", "hang", "drop"} <= set(server.counts)  # every fault kind was served
    retried = report.meter.retries
    assert retried["429"] and retried["5xx"] and retried["timeout"] and retried["connection"]
    # Each fault retried once; a timeout also when a loaded machine delays an answer past the time limit.
    assert (retried["429"], retried["5xx"], retried["connection"]) == tuple(server.counts[f] for f in ("429", "500", "drop"))
    assert retried["timeout"] >= server.counts["hang"]
    twins = [r for r in records if r.metadata.twin_of]
    ids = {r.id for r in records}
    assert twins and all(t.category == "benign" and t.metadata.twin_of in ids for t in twins)
    for r in records:  # no provider error ever becomes text in a record
        text = f"{r.user_input} {r.monologue} {r.final_answer} {r.baseline_answer}"
        assert "Rate limit" not in text and "server had an error" not in text


def test_sdk_retries_are_off_and_retry_after_is_honoured(server):
    async def call(client: Endpoint) -> str:
        return await client.complete([{"role": "user", "content": "hello"}])

    server.scripted_faults = ["500", "500", "500"]
    client = Endpoint("openai/local", api_base=server.url, policy=RetryPolicy(max_retries=2, base_delay=0.01))
    with pytest.raises(CallFailed, match="gave up after 3 attempts") as failed:
        asyncio.run(call(client))
    assert failed.value.kind == "5xx" and server.counts["requests"] == 3  # exactly ours: no hidden SDK retries

    server.retry_after = 0.4
    server.scripted_faults = ["429"]
    client = Endpoint("openai/local", api_base=server.url, policy=RetryPolicy(max_retries=2, base_delay=0.01))
    start = time.perf_counter()
    assert asyncio.run(call(client))
    assert time.perf_counter() - start >= 0.4 and client.meter.retries["429"] == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_401_stops_the_run_at_once_with_a_clear_message_and_no_secret(server, tmp_path: Path, capfd, monkeypatch,
                                                                       workers: str):
    server.api_key, server.echo_key = "the-right-key", True  # the 401 repeats the whole key it was sent
    monkeypatch.setenv("PUSHBACK_TEST_KEY", "zz-wrong-key-123456789")  # no well-known key prefix to spot
    out = tmp_path / "records.jsonl"
    args = argparse.Namespace(model="openai/local", api_base=server.url, api_key_env="PUSHBACK_TEST_KEY", n=40,
                              out=str(out), concurrency=8, categories=None, twins=False, temperature=0.8, seed=0,
                              timeout=5.0, max_retries=6, templates=None, few_shot=2, workers=workers)
    start = time.perf_counter()
    assert main(args) == EXIT_FATAL
    assert time.perf_counter() - start < 5  # no backoff loop on an auth error
    assert server.counts["401"] == server.counts["requests"] <= 8  # the first wave (of every worker), never retried
    printed = capfd.readouterr()  # all that reached the terminal: ours, LiteLLM's logging, the workers'
    assert "AuthenticationError" in printed.out and "check the key" in printed.out
    stats = (tmp_path / "records.stats.json").read_text()
    assert server.counts["401"] and "Incorrect API key provided: ***" in printed.out
    for text in (printed.out, printed.err, stats):
        assert "wrong-key-123456789" not in text
    assert json.loads(stats)["settings"]["api_key_env"] == "PUSHBACK_TEST_KEY"
    assert not multiprocessing.active_children()  # a 401 in one worker stops every worker
    assert not out.exists() or not out.read_text().strip()


def test_a_dead_endpoint_stops_the_run_instead_of_failing_every_record_slowly(tmp_path: Path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    config = GenerateConfig(model="openai/local", out=tmp_path / "records.jsonl", n=200, api_base=dead, progress=False,
                            policy=RetryPolicy(max_retries=2, base_delay=0.01, timeout=1))
    report = asyncio.run(Runner(config).run())
    assert report.fatal and "no call has succeeded" in report.fatal and "Connection error" in report.fatal
    assert report.written == 0 and report.failed < 200 and report.meter.retries["connection"]


def test_rerun_counts_existing_records_and_never_repeats_an_id(server, tmp_path: Path):
    out = tmp_path / "records.jsonl"
    start = asyncio.run(Runner(_config(server, out, 12)).run())
    first = {r.id for r in _valid(out)}
    with open(out, "a", encoding="utf-8") as f:
        f.write('{"id": "cut off mid-wri')  # as kill -9 during a write leaves it
    report = asyncio.run(Runner(_config(server, out, 20)).run())
    records = _valid(out)
    assert report.before == 12 and report.written == 8 and len(records) == 20
    assert first <= {r.id for r in records} and len({r.id for r in records}) == 20
    assert len(report.set_aside) == 1 and "truncated" in report.set_aside[0]
    again = asyncio.run(Runner(_config(server, out, 20)).run())
    assert again.written == again.meter.calls == 0  # nothing more asked
    assert server.counts["requests"] == start.meter.calls + report.meter.calls


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_gives_exactly_n_valid_unique_records(tmp_path: Path, capsys):
    out, n = tmp_path / "records.jsonl", 40
    with LocalOpenAIServer(latency=0.03, fault_rate=0.1, faults=("429", "500"), retry_after=0.05) as server:
        arguments = ["generate", "--model", "openai/local", "--api-base", server.url, "--n", str(n), "--out", str(out),
                     "--concurrency", "6", "--workers", "1", "--max-retries", "8", "--timeout", "5"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        victim = subprocess.Popen([sys.executable, "-m", "pushback", *arguments], cwd=REPO, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for_lines(out, 8, timeout=60, process=victim)
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
        assert victim.returncode == -signal.SIGKILL
        killed_at = len(read_records(out).records)
        assert 8 <= killed_at < n
        assert cli(arguments) == EXIT_OK  # the rerun: the same command, here in-process to save a start-up
    printed = capsys.readouterr().out
    assert f"{n}/{n} valid records" in printed and f"{killed_at} before this run" in printed
    records = _valid(out)
    assert len(records) == n and len({r.id for r in records}) == n
    assert json.loads((tmp_path / "records.stats.json").read_text())["records"]["in_file"] == n
