"""`pushback generate`: records through the persona relay, many at once, resumable, honest under faults.

Steps: open the output (count what is there, set broken lines aside) -> plan the missing records
(the curated mix) -> run jobs in a pool bounded by an `asyncio.Semaphore` (no batches, no sleeps),
appending each record the moment it is done -> summary and `<stem>.stats.json`.

With `--workers W > 1` the jobs run in W worker processes (`generation.workers`), so the client can use
more than one core; this process stays the only writer: it checks, appends and counts every record,
plans replacements for records that failed, and stops the workers. Either way the same `Runner` decides.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from generation.client import ChatClient, Meter, RetryPolicy
from generation.pipeline import CALLS_PER_RECORD, CRITICAL_CALLS, Outcome, Relay, run_job
from generation.plan import Examples, Job, category_weights, plan_jobs, read_curated
from generation.store import Appender, open_output, set_aside_path, stats_path
from generation.templates import TemplateError, load_templates
from generation.workers import ProcessPool, available_cpus
from pushback.records import Record, read_records
from pushback.files import write_atomic

EXIT_OK, EXIT_SHORT, EXIT_FATAL = 0, 1, 2
RECORDS_PER_WORKER = 16  # `--workers auto`: one process per this many records in flight (measured: bench/generation.py)
WORKERS_PER_CPU = 2  # `--workers auto` at most; more only compete for the cores (measured: bench/generation.py)
REPLACEMENT_SHARE = 0.1  # failed records are re-planned up to this share of the run's records (at least 2)


@dataclass
class GenerateConfig:
    model: str
    out: Path
    n: int
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)  # the value; never printed or saved
    api_key_env: str | None = None  # its name, which may be saved
    concurrency: int = 16
    categories: list[str] | None = None
    twins: bool = False
    temperature: float = 0.8
    seed: int = 0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    templates_dir: str | None = None
    few_shot: int = 2
    progress: bool = True
    workers: int | None = None  # worker processes; None: auto (`auto_workers`)
    start_method: str | None = None  # multiprocessing start method; None: `generation.workers.default_start_method`

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers is not None else auto_workers(self.concurrency)

    def public(self) -> dict[str, Any]:
        """Settings fit for a stats file: no key, no credentials in the URL."""
        return {"model": self.model, "api_base": _without_credentials(self.api_base), "api_key_env": self.api_key_env,
                "n": self.n, "out": str(self.out), "concurrency": self.concurrency, "workers": self.worker_count,
                "categories": self.categories,
                "twins": self.twins, "temperature": self.temperature, "seed": self.seed,
                "timeout_s": self.policy.timeout, "max_retries": self.policy.max_retries,
                "templates": self.templates_dir, "few_shot": self.few_shot}


@dataclass
class RunReport:
    before: int = 0  # valid records already in the output
    written: int = 0
    failed: int = 0  # records given up on (retries exhausted, content policy, duplicates)
    replaced: int = 0  # of those, how many were planned again
    failures: Counter[str] = field(default_factory=Counter)
    failure_examples: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)
    fatal: str | None = None
    interrupted: bool = False
    elapsed: float = 0.0
    cpu_s: float = 0.0  # CPU seconds of this process and its workers
    workers: int = 1
    calls_by_worker: list[int] = field(default_factory=list)  # how the calls spread over the workers
    meter: Meter = field(default_factory=Meter)
    categories: Counter[str] = field(default_factory=Counter)  # written this run
    final_count: int = 0

    @property
    def records_per_min(self) -> float:
        return 60 * self.written / self.elapsed if self.elapsed > 0 else 0.0


def _without_credentials(url: str | None) -> str | None:
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username or parts.password:
        parts = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
    return urlunsplit(parts._replace(query=""))


def auto_workers(concurrency: int) -> int:
    """One process per RECORDS_PER_WORKER records in flight, at most WORKERS_PER_CPU per CPU.

    A LiteLLM call costs a few ms of Python CPU, and LiteLLM builds each request in a thread of the
    event loop's executor: the more calls one process has in flight, the longer each waits for its
    turn, long before the process uses a whole core. Several smaller pools per core keep those waits
    short; past about two per core they only compete for the cores."""
    return max(1, min(WORKERS_PER_CPU * available_cpus(), math.ceil(concurrency / RECORDS_PER_WORKER)))


def parse_workers(text: str | int | None) -> int | None:
    """`--workers`: a positive number, or "auto" (None)."""
    if text is None or str(text).strip().lower() == "auto":
        return None
    try:
        workers = int(text)
    except ValueError:
        raise ValueError(f"--workers: expected a number or auto, got {text!r}") from None
    if workers < 1:
        raise ValueError(f"--workers must be at least 1 (got {workers})")
    return workers


class Runner:
    """Plans the jobs, runs them (here, or in worker processes), and is the only writer of the output."""

    def __init__(self, config: GenerateConfig):
        self.config = config
        self.report = RunReport(workers=config.worker_count)
        self.templates = load_templates(config.templates_dir)
        self.curated = read_curated()
        self.weights = category_weights(self.curated, config.categories)
        self.bar: Any = None
        # Also with workers: LiteLLM is imported here, once, and forked workers inherit it.
        self.client = ChatClient(config.model, api_base=config.api_base, api_key=config.api_key,
                                 temperature=config.temperature, policy=config.policy, seed=config.seed)
        self.report.meter = self.client.meter
        self.relay = Relay(self.client, self.templates, Examples(self.curated, config.few_shot), config.seed)
        self.appender = Appender(config.out, on_written=self._written)
        self.started = 0.0
        self.running: set[asyncio.Task[None]] = set()
        self.queue: deque[Job] = deque()  # jobs not started yet; replacements join at the end
        self.in_file: set[str] = set()  # ids in the output, including those being appended
        self.curated_ids = {r.id for r in self.curated}
        self.replacements_left = 0
        self.next_index = 0

    async def run(self) -> RunReport:
        config, report = self.config, self.report
        existing = open_output(config.out)
        report.before = len(existing.records)
        report.set_aside = [str(p) for p in existing.set_aside]
        self.in_file = set(existing.ids)
        taken = existing.ids | self.curated_ids  # never repeat an id, ours or the curated set's
        jobs = plan_jobs(config.n, existing.categories, self.weights, topics=self.templates.topics,
                         twins=config.twins, seed=config.seed)
        self.queue = deque(jobs)
        slots = sum(job.slots for job in jobs)
        self.replacements_left = max(2, math.ceil(REPLACEMENT_SHARE * slots)) if jobs else 0
        self.next_index = jobs[-1].index + 1 if jobs else 0
        self.started, cpu = time.perf_counter(), time.process_time()
        workers = min(config.worker_count, len(jobs))  # a short rerun needs no more processes than jobs
        pool = ProcessPool(self, taken, workers) if workers > 1 else None
        report.workers = max(workers, 1)
        try:
            if pool:
                pool.start()  # before the progress bar starts its monitor thread: a fork copies one thread only
            self.bar = _progress_bar(config, report.before)
            await (pool.run() if pool else self._pool(taken))
        except asyncio.CancelledError:
            report.interrupted = True
            raise
        finally:
            if pool:
                pool.close()
            report.elapsed = time.perf_counter() - self.started
            report.cpu_s = time.process_time() - cpu + (pool.cpu_s if pool else 0.0)
            report.calls_by_worker = [worker.meter.calls for worker in pool.workers] if pool else []
            if self.bar is not None:
                self.bar.close()
            report.final_count = len(read_records(config.out).records) if config.out.exists() else 0
        return report

    # --- running the jobs here --------------------------------------------------------------------

    async def _pool(self, taken: set[str]) -> None:
        """At most `concurrency` jobs in flight; a new one starts the moment any finishes."""
        slots = asyncio.Semaphore(self.config.concurrency)
        running = self.running
        try:
            while not self.report.fatal:
                if not self.queue:  # nothing to start; a job still running may plan a replacement
                    if not running:
                        break
                    await asyncio.wait(set(running), return_when=asyncio.FIRST_COMPLETED)
                    continue
                await slots.acquire()
                if self.report.fatal:
                    slots.release()
                    break
                task = asyncio.create_task(self._job(self.queue.popleft(), taken))
                running.add(task)
                task.add_done_callback(lambda t: (running.discard(t), slots.release()))
            await asyncio.gather(*running, return_exceptions=True)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _job(self, job: Job, taken: set[str]) -> None:
        delivered: list[str] = []
        rejected: list[str] = []

        async def write(record: Record) -> None:
            reason = await self.accept(record)
            (rejected if reason else delivered).append(reason or record.category)

        outcome = await run_job(self.relay, job, taken, write, self.config.api_key)
        self.settle(job, outcome, delivered, rejected)

    # --- what both ways of running share --------------------------------------------------------------

    def reserve(self, record: Record) -> str | None:
        """Claim the record's place in the output, or say why it has none: its id is already written (two
        workers wrote the same prompt), its twin's original is not in the file, or the file is full."""
        if record.id in self.in_file or record.id in self.curated_ids:
            return "duplicate"
        if record.metadata.twin_of and record.metadata.twin_of not in self.in_file:
            return "orphaned_twin"
        if len(self.in_file) >= self.config.n:
            return "full"
        self.in_file.add(record.id)  # now, not after the append: a duplicate arriving meanwhile is caught
        return None

    async def accept(self, record: Record) -> str | None:
        """Reserve and append (fsynced) a finished record; why not, if it was not written."""
        reason = self.reserve(record)
        if reason is None:
            await self.appender.append(record)
        return reason

    def settle(self, job: Job, outcome: Outcome, delivered: list[str], rejected: list[str]) -> None:
        """A job ended: count what it did not deliver, stop on a fatal error, plan replacements."""
        if outcome.kind == "fatal":
            self.stop(outcome.message)
            return
        missing = Counter(job.categories) - Counter(delivered)
        if not missing or "full" in rejected:
            return
        if outcome.kind == "failed":
            cause, message = outcome.cause, outcome.message
        else:
            cause = rejected[0] if rejected else "lost"
            message = {"duplicate": "its prompt had just been written by another worker",
                       "orphaned_twin": "its original was not written"}.get(cause, "a record went missing")
        self._failed(sum(missing.values()), cause, f"{job.category}: {message}")
        if not self.report.meter.succeeded:  # nothing has ever worked: a wrong URL or a server that is down
            self.stop(f"no call has succeeded yet; is the endpoint up and --api-base right? Last: {message}")
            return
        self._replace(job, missing)

    def _replace(self, job: Job, missing: Counter[str]) -> None:
        """Plan the records a job did not deliver again, within the run's budget (a provider that blocks a
        whole category must not keep the run going forever)."""
        count = sum(missing.values())
        if self.report.fatal or count > self.replacements_left:
            return
        self.replacements_left -= count
        self.report.replaced += count
        if job.twin and missing == Counter(job.categories):
            replacements = [(job.category, True)]
        else:
            replacements = [(category, False) for category in sorted(missing.elements())]
        for category, twin in replacements:
            self.queue.append(Job(self.next_index, category, job.topic, twin))
            self.next_index += 1

    def _written(self, record: Record) -> None:
        self.report.written += 1
        self.report.categories[record.category] += 1
        self._tick()

    def stop(self, reason: str) -> None:
        """Record the first fatal reason and cancel every record in flight, now rather than after retries."""
        if self.report.fatal:
            return
        self.report.fatal = reason
        for task in self.running:
            if task is not asyncio.current_task():
                task.cancel()

    def _failed(self, count: int, cause: str, message: str) -> None:
        self.report.failed += count
        self.report.failures[cause] += count
        if len(self.report.failure_examples) < 20:
            self.report.failure_examples.append(message)
        if self.bar is not None:
            self.bar.write(f"record failed ({cause}): {message[:240]}", file=sys.stderr)
        self._tick(advance=0)

    def _tick(self, advance: int = 1) -> None:
        if self.bar is None:
            return
        meter = self.report.meter
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        cost = f"${meter.cost:.4f}" if meter.priced_calls else "$ n/a"
        self.bar.set_postfix_str(f"{60 * self.report.written / elapsed:.0f} rec/min, {meter.calls} calls, "
                                 f"{meter.tokens:,} tok, {cost}, {self.report.failed} failed", refresh=False)
        self.bar.update(advance)


def _progress_bar(config: GenerateConfig, before: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=config.n, initial=min(before, config.n), unit="rec", desc="generate", file=sys.stderr,
                disable=not config.progress, dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 10)


def check_config(config: GenerateConfig) -> None:
    if config.n < 1 or config.concurrency < 1:
        raise ValueError(f"--n and --concurrency must be at least 1 (got {config.n} and {config.concurrency})")
    if config.workers is not None and not 1 <= config.workers <= config.concurrency:
        raise ValueError(f"--workers must be between 1 and --concurrency ({config.concurrency}): each worker needs "
                         f"at least one record in flight (got {config.workers})")


async def generate(config: GenerateConfig) -> RunReport:
    """Bring `config.out` to `config.n` valid records; see the module docstring."""
    check_config(config)
    return await Runner(config).run()


# --- the command ---------------------------------------------------------------------------------


def summary(config: GenerateConfig, report: RunReport) -> str:
    meter = report.meter
    retries = ", ".join(f"{cause} x{count}" for cause, count in meter.retries.most_common()) or "none"
    if meter.cost_known:
        cost = f"${meter.cost:.4f}"
    elif meter.priced_calls:
        cost = f"${meter.cost:.4f} (partial: {meter.priced_calls}/{meter.calls} calls priced)"
    else:
        cost = f"unknown (LiteLLM has no price for {config.model})"
    lines = [
        (f"{report.final_count}/{config.n} valid records in {config.out} "
         f"({report.before} before this run, {report.written} written, {report.failed} failed) "
         f"in {report.elapsed:.1f} s: {report.records_per_min:.0f} records/min at concurrency {config.concurrency}"
         + (f" in {report.workers} worker processes" if report.workers > 1 else "")),
        f"calls: {meter.calls} ({CRITICAL_CALLS} sequential per record, {CALLS_PER_RECORD} in all); retries: {retries}",
        f"tokens: {meter.tokens:,} ({meter.prompt_tokens:,} in, {meter.completion_tokens:,} out); cost: {cost}",
    ]
    if report.categories:
        lines.append("written: " + ", ".join(f"{c} {n}" for c, n in sorted(report.categories.items())))
    if report.set_aside:
        lines.append(f"set aside {len(report.set_aside)} broken line(s) from an earlier run "
                     f"(kept in {set_aside_path(config.out)}):")
        lines += [f"  {p}" for p in report.set_aside[:10]]
    if report.failed:
        replaced = f", {report.replaced} planned again" if report.replaced else ""
        gap = "; rerun the same command to fill the gap" if report.final_count < config.n else ""
        lines.append(f"failed: {dict(report.failures)}{replaced}{gap}. First failures:")
        lines += [f"  {m[:300]}" for m in report.failure_examples[:5]]
    if report.fatal:
        lines.append(f"stopped: {report.fatal}")
    return "\n".join(lines)


def stats(config: GenerateConfig, report: RunReport, started_at: str) -> dict[str, Any]:
    return {
        "settings": config.public(),
        "started_at": started_at,
        "elapsed_s": round(report.elapsed, 3),
        "records": {"wanted": config.n, "in_file": report.final_count, "before": report.before,
                    "written": report.written, "failed": report.failed, "replaced": report.replaced,
                    "failures": dict(report.failures),
                    "written_by_category": dict(report.categories)},
        "records_per_min": round(report.records_per_min, 2),
        "cpu_s": round(report.cpu_s, 3),
        "calls_by_worker": report.calls_by_worker,
        "calls_per_record": {"sequential": CRITICAL_CALLS, "total": CALLS_PER_RECORD},
        "usage": report.meter.as_dict(),
        "set_aside": report.set_aside,
        "failure_examples": report.failure_examples,
        "stopped": report.fatal,
        "interrupted": report.interrupted,
    }


def config_from_args(args: argparse.Namespace) -> GenerateConfig:
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ValueError(f"--api-key-env: environment variable {args.api_key_env} is not set or empty")
    return GenerateConfig(
        model=args.model, out=Path(args.out), n=args.n, api_base=args.api_base, api_key=api_key,
        api_key_env=args.api_key_env, concurrency=args.concurrency, categories=args.categories, twins=args.twins,
        temperature=args.temperature, seed=args.seed,
        policy=RetryPolicy(max_retries=args.max_retries, timeout=args.timeout),
        templates_dir=args.templates, few_shot=args.few_shot, workers=parse_workers(args.workers))


def add_parser(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument("--model", required=True, help="LiteLLM model, e.g. openai/gpt-4o-mini or ollama_chat/qwen2.5")
    p.add_argument("--api-base", help="endpoint URL (Ollama, vLLM, any OpenAI-compatible server)")
    p.add_argument("--api-key-env", help="name of the environment variable holding the API key")
    p.add_argument("--n", type=int, required=True, help="number of valid records wanted in --out")
    p.add_argument("--out", required=True, help="JSONL file; appended to and resumed")
    p.add_argument("--concurrency", type=int, default=16, help="records in flight at once")
    p.add_argument("--workers", default="auto", metavar="W|auto",
                   help="processes making the calls, sharing --concurrency (auto: one per 16 records in flight, "
                        "at most two per CPU)")
    p.add_argument("--categories", nargs="+", help="limit to these categories (default: the curated mix)")
    p.add_argument("--twins", action="store_true", help="also write a benign look-alike for friction prompts")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per call attempt")
    p.add_argument("--max-retries", type=int, default=6, help="retries per call for transient errors")
    p.add_argument("--templates", help="directory of persona templates to use instead of the built-in ones")
    p.add_argument("--few-shot", type=int, default=2, help="curated examples shown per prompt (0 for none)")


def main(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        check_config(config)
        runner = Runner(config)
    except (ValueError, TemplateError) as error:
        print(f"pushback generate: {error}", file=sys.stderr)
        return EXIT_FATAL
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        report = asyncio.run(runner.run())
    finally:  # written even when interrupted: what ran, what it cost
        write_atomic(stats_path(config.out), json.dumps(stats(config, runner.report, started_at), indent=2) + "\n")
    print(summary(config, report))
    print(f"stats: {stats_path(config.out)}")
    if report.fatal:
        return EXIT_FATAL
    return EXIT_OK if report.final_count >= config.n else EXIT_SHORT
