"""`pushback generate`: records through the persona relay, many at once, resumable, honest under faults.

Steps: check the output can be written and lock it (a second run on it stops at once) -> read what it
holds (a file that is not ours is refused, nothing changed) -> plan the missing records (the curated
mix) -> run jobs in a pool bounded by an `asyncio.Semaphore` (no batches, no sleeps), appending each
record the moment it is done -> `<stem>.stats.json` and a summary.

With `--workers W > 1` the jobs run in W worker processes (`generation.workers`), so the client can use
more than one core; this process stays the only writer: it checks, appends and counts every record,
plans replacements for records that failed, and stops the workers. Either way the same `Runner` decides.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from generation.config import GenerateConfig, check_config, config_from_args
from generation.pipeline import CALLS_PER_RECORD, CRITICAL_CALLS, Outcome, Relay, run_job
from generation.plan import Examples, Job, category_weights, plan_jobs, read_curated
from generation.store import (
    Appender,
    Existing,
    OutputError,
    OutputLock,
    check_writable,
    read_output,
    set_aside_path,
    stats_path,
)
from generation.templates import TemplateError, load_templates
from generation.workers import ProcessPool
from pushback.endpoint import Endpoint, Meter
from pushback.files import write_atomic
from pushback.records import Record, read_records
from pushback.redaction import redact

EXIT_OK, EXIT_SHORT, EXIT_FATAL = 0, 1, 2
REPLACEMENT_SHARE = 0.1  # failed records are re-planned up to this share of the run's records (at least 2)


@dataclass
class RunReport:
    before: int = 0  # valid records already in the output
    written: int = 0
    failed: int = 0  # records given up on (retries exhausted, content policy, duplicates)
    replaced: int = 0  # of those, how many were planned again
    failures: Counter[str] = field(default_factory=Counter)
    failure_examples: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # lines of an earlier run that are not valid records
    set_aside: list[str] = field(default_factory=list)  # of those, moved to the set-aside file (at the first append)
    fatal: str | None = None
    interrupted: bool = False
    started_at: str = ""
    elapsed: float = 0.0
    cpu_s: float = 0.0  # CPU seconds of this process and its workers
    workers: int = 1
    calls_by_worker: list[int] = field(default_factory=list)  # how the calls spread over the workers
    meter: Meter = field(default_factory=Meter)
    categories: Counter[str] = field(default_factory=Counter)  # written this run
    final_count: int = 0
    stats_error: str | None = None

    @property
    def records_per_min(self) -> float:
        return 60 * self.written / self.elapsed if self.elapsed > 0 else 0.0


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
        self.client = Endpoint(config.model, api_base=config.api_base, api_key=config.api_key,
                               temperature=config.temperature, policy=config.policy, seed=config.seed)
        self.report.meter = self.client.meter
        self.relay = Relay(self.client, self.templates, Examples(self.curated, config.few_shot), config.seed)
        self.appender = Appender(config.out, on_written=self._written, on_repaired=self._repaired)
        self.started = 0.0
        self.running: set[asyncio.Task[None]] = set()
        self.queue: deque[Job] = deque()  # jobs not started yet; replacements join at the end
        self.in_file: set[str] = set()  # ids in the output, including those being appended
        self.curated_ids = {r.id for r in self.curated}
        self.replacements_left = 0
        self.next_index = 0

    async def run(self) -> RunReport:
        """Bring the output to `n` records; `OutputError` (nothing changed, no call made) if it cannot be used."""
        config = self.config
        check_writable(config.out)
        with OutputLock(config.out):
            existing = read_output(config.out)
            self.report.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            try:
                await self._run(existing)
            finally:  # written even when interrupted: what ran, what it cost
                self._write_stats()
        return self.report

    async def _run(self, existing: Existing) -> None:
        config, report = self.config, self.report
        report.before = len(existing.records)
        report.broken = [str(p) for p in existing.set_aside]
        self.appender.existing = existing
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
        pool = ProcessPool(self, config, self.templates, self.curated, taken, workers) if workers > 1 else None
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

    def _write_stats(self) -> None:
        """The stats file; a failure to write it is reported, never allowed to hide the run's own outcome."""
        path = stats_path(self.config.out)
        try:
            write_atomic(path, json.dumps(stats(self.config, self.report), indent=2) + "\n")
        except OSError as e:
            self.report.stats_error = f"cannot write {path} ({e.strerror or e})"

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
                job = self.next_job()
                if job is None:  # the run was stopped meanwhile
                    slots.release()
                    break
                task = asyncio.create_task(self._job(job, taken))
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

    # --- what both ways of running share (the worker pool's `JobSource`) -------------------------------

    @property
    def finished(self) -> bool:
        return bool(self.report.fatal) or len(self.in_file) >= self.config.n

    def next_job(self) -> Job | None:
        return self.queue.popleft() if self.queue and not self.report.fatal else None

    async def append(self, record: Record) -> None:
        await self.appender.append(record)

    def metered(self, meter: Meter) -> None:
        self.report.meter = meter

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
            await self.append(record)
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

    def _repaired(self, existing: Existing) -> None:
        self.report.set_aside = [str(p) for p in existing.set_aside]

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
        (f"calls: {meter.calls} ({CRITICAL_CALLS} sequential per record, {CALLS_PER_RECORD} in all, "
         f"{CALLS_PER_RECORD + 1} for a benign one); retries: {retries}"),
        f"tokens: {meter.tokens:,} ({meter.prompt_tokens:,} in, {meter.completion_tokens:,} out); cost: {cost}",
    ]
    if report.categories:
        lines.append("written: " + ", ".join(f"{c} {n}" for c, n in sorted(report.categories.items())))
    if report.set_aside:
        lines.append(f"set aside {len(report.set_aside)} broken line(s) from an earlier run "
                     f"(kept in {set_aside_path(config.out)}):")
        lines += [f"  {p}" for p in report.set_aside[:10]]
    elif report.broken:
        lines.append(f"found {len(report.broken)} broken line(s) from an earlier run, left in place as nothing was "
                     f"written (they move to {set_aside_path(config.out)} when the first record is):")
        lines += [f"  {p}" for p in report.broken[:10]]
    if report.failed:
        replaced = f", {report.replaced} planned again" if report.replaced else ""
        gap = "; rerun the same command to fill the gap" if report.final_count < config.n else ""
        lines.append(f"failed: {dict(report.failures)}{replaced}{gap}. First failures:")
        lines += [f"  {m[:300]}" for m in report.failure_examples[:5]]
    if report.fatal:
        lines.append(f"stopped: {report.fatal}")
    if report.stats_error:
        lines.append(f"stats: {report.stats_error}")
    return "\n".join(lines)


def stats(config: GenerateConfig, report: RunReport) -> dict[str, Any]:
    return {
        "settings": config.public(),
        "started_at": report.started_at,
        "elapsed_s": round(report.elapsed, 3),
        "records": {"wanted": config.n, "in_file": report.final_count, "before": report.before,
                    "written": report.written, "failed": report.failed, "replaced": report.replaced,
                    "failures": dict(report.failures),
                    "written_by_category": dict(report.categories)},
        "records_per_min": round(report.records_per_min, 2),
        "cpu_s": round(report.cpu_s, 3),
        "calls_by_worker": report.calls_by_worker,
        "calls_per_record": {"sequential": CRITICAL_CALLS, "total": CALLS_PER_RECORD, "benign": CALLS_PER_RECORD + 1},
        "usage": report.meter.as_dict(),
        "set_aside": report.set_aside,
        "broken_left_in_place": report.broken if not report.set_aside else [],
        "failure_examples": report.failure_examples,
        "stopped": report.fatal,
        "interrupted": report.interrupted,
    }


def add_parser(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument("--model", required=True, help="LiteLLM model, e.g. openai/gpt-4o-mini or ollama_chat/qwen2.5")
    p.add_argument("--api-base", help="endpoint URL (Ollama, vLLM, any OpenAI-compatible server)")
    p.add_argument("--api-key-env", help="name of the environment variable holding the API key")
    p.add_argument("--n", type=int, required=True, help="number of valid records wanted in --out")
    p.add_argument("--out", required=True,
                   help="JSONL file, new or written by this command; appended to and resumed (locked while a run "
                        "writes it)")
    p.add_argument("--concurrency", type=int, default=16, help="records in flight at once")
    p.add_argument("--workers", default="auto", metavar="W|auto",
                   help="processes making the calls, sharing --concurrency (auto: one per 16 records in flight, "
                        "at most two per CPU)")
    p.add_argument("--categories", nargs="+", help="limit to these categories (default: the curated mix)")
    p.add_argument("--twins", action="store_true", help="also write a benign look-alike for friction prompts")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds per call attempt, above 0 (there is no 'no limit': a hung call must end)")
    p.add_argument("--max-retries", type=int, default=6,
                   help="retries per call for transient errors, 0 or more (0: one attempt per call)")
    p.add_argument("--templates", help="directory of persona templates to use instead of the built-in ones")
    p.add_argument("--few-shot", type=int, default=2, help="curated examples shown per prompt, 0 or more (0 for none)")


def main(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        check_config(config)
        runner = Runner(config)
        report = asyncio.run(runner.run())
    except (OutputError, ValueError, TemplateError) as error:  # nothing written, no call made
        print(f"pushback generate: {redact(str(error))}", file=sys.stderr)
        return EXIT_FATAL
    print(summary(config, report))
    print(f"stats: {stats_path(config.out)}")
    if report.fatal or report.stats_error:
        return EXIT_FATAL
    return EXIT_OK if report.final_count >= config.n else EXIT_SHORT
