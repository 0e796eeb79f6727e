"""Helpers the generation tests share: fast retry settings, a run configured against the loopback
server, and waiting on a growing output file."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

from pushback.endpoint import RetryPolicy
from generation.run import GenerateConfig
from pushback.records import read_collection
from support.openai_server import LocalOpenAIServer

REPO = Path(__file__).resolve().parent.parent
# A hang (the server's fault) must time out quickly; a loaded shared machine must not make an answer do so.
FAST = RetryPolicy(max_retries=8, base_delay=0.02, max_delay=0.2, timeout=1.0)


def run_config(server: LocalOpenAIServer, out: Path, n: int, **kw) -> GenerateConfig:
    kw.setdefault("policy", FAST)
    kw.setdefault("concurrency", 16)
    return GenerateConfig(model="openai/local", out=out, n=n, api_base=server.url, progress=False, **kw)


def valid_records(out: Path) -> list:
    records, problems = read_collection([out])
    assert not problems, problems
    return records


def wait_for_lines(path: Path, lines: int, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= lines:
            return
        if process.poll() is not None:
            raise AssertionError(f"generate exited early: {process.stderr.read() if process.stderr else ''}")
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {lines} lines in {timeout} s")
