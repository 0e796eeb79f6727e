"""Worker processes for `pushback generate --workers W`: the same relay, on more than one core.

A LiteLLM call costs about 5 ms of Python CPU (request building in an executor thread, logging, the
cost lookup, pydantic), and the more calls one event loop has in flight, the longer each waits for
its turn: one process falls behind the ideal bound long before it uses a whole core (see
generation/README.md, "Worker processes"). Workers make the calls; the parent
(`generation.run.Runner`) stays the only writer of the output:

    parent (a `JobSource`)                       worker i of W (an asyncio pool of `slots` jobs)
      plans jobs, feeds each free slot  --job-->   Relay.run, exactly as in one process
      checks, appends + fsyncs, counts <--record-- each finished, validated record
      replaces failures, stops on fatal <--done--- how the job ended, with the worker's meter and CPU
      stops the workers                --stop-->   exits at once

Jobs go to whichever worker has a free slot, so the parent always knows what is in flight where.
A worker writes no file. It exits when told, when its pipe breaks, or when its parent pid changes
(the parent was killed), checked every PARENT_CHECK_S seconds; Ctrl-C is left to the parent.
"""
from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from generation.config import GenerateConfig
from generation.pipeline import Outcome, Relay, run_job
from generation.plan import Examples, Job
from generation.templates import Templates
from pushback.endpoint import Endpoint, Meter
from pushback.records import Record

PARENT_CHECK_S = 0.2  # how often a worker checks that its parent is still there
STOP_GRACE_S = 2.0  # how long the parent waits for workers to exit before killing them


class JobSource(Protocol):
    """What the pool needs from the run (`generation.run.Runner`), and nothing more."""

    @property
    def finished(self) -> bool:
        """No more jobs are wanted: the output is full or the run must stop."""

    def next_job(self) -> Job | None:
        """The next job to start, or None when none is waiting."""

    def reserve(self, record: Record) -> str | None:
        """Claim the record's place in the output, or say why it has none."""

    async def append(self, record: Record) -> None:
        """Write a reserved record (durably)."""

    def settle(self, job: Job, outcome: Outcome, delivered: list[str], rejected: list[str]) -> None:
        """A job ended: count it, plan replacements, stop on a fatal outcome."""

    def stop(self, reason: str) -> None:
        """End the run now, for this reason."""

    def metered(self, meter: Meter) -> None:
        """The calls, retries and tokens of every worker so far."""


def default_start_method() -> str | None:
    """`fork` on Linux: a worker starts in milliseconds with LiteLLM, the templates and the curated set
    already in memory (a fresh interpreter re-imports LiteLLM, seconds per worker). A fork copies only
    the calling thread: the command forks before it starts any thread of its own (the progress bar
    comes after), and a worker uses nothing another thread of the parent could hold, nor the parent's
    event loop; it makes its own loop and HTTP clients. Elsewhere the platform's default (`spawn` on
    macOS and Windows, where fork is unsafe or missing): a worker gets everything it needs in one
    picklable `WorkerSetup`."""
    return "fork" if sys.platform.startswith("linux") else None


@dataclass
class WorkerSetup:
    """Everything a worker needs, handed over once (inherited on fork, pickled on spawn)."""

    config: GenerateConfig
    templates: Templates
    curated: list[Record]
    taken: set[str]  # ids already in the output or the curated set
    slots: int  # this worker's share of --concurrency
    index: int
    parent_pid: int


@dataclass
class Message:
    """Worker -> parent. `record`: one finished, validated record of job `job`; `done`: the job ended."""

    kind: str
    job: int  # Job.index
    record: Record | None = None
    outcome: Outcome | None = None
    meter: Meter = field(default_factory=Meter)  # the worker's totals so far
    cpu_s: float = 0.0  # the worker's CPU seconds so far


def split(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal positive shares."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


# --- the parent's side ---------------------------------------------------------------------------


@dataclass
class _Worker:
    index: int
    process: BaseProcess
    conn: Connection
    slots: int
    in_flight: dict[int, Job] = field(default_factory=dict)
    meter: Meter = field(default_factory=Meter)
    cpu_s: float = 0.0

    @property
    def free(self) -> int:
        return self.slots - len(self.in_flight)


class ProcessPool:
    """Runs the source's jobs in worker processes; the source accepts, counts and replaces."""

    def __init__(self, jobs: JobSource, config: GenerateConfig, templates: Templates, curated: list[Record],
                 taken: set[str], count: int):
        self.jobs = jobs
        self.config = config
        self.templates = templates
        self.curated = curated
        self.taken = taken
        self.count = count
        self.context = multiprocessing.get_context(config.start_method or default_start_method())
        self.workers: list[_Worker] = []
        self.inbox: asyncio.Queue[tuple[_Worker | None, Message | None]] = asyncio.Queue()  # (None, None): wake up
        self.progress: dict[int, tuple[list[str], list[str]]] = {}  # job -> categories delivered, reasons rejected
        self.appends: set[asyncio.Task[None]] = set()  # records reserved and being appended
        self.reading = False

    @property
    def cpu_s(self) -> float:
        return sum(worker.cpu_s for worker in self.workers)

    def start(self) -> None:
        for index, slots in enumerate(split(self.config.concurrency, self.count)):
            ours, theirs = self.context.Pipe()
            setup = WorkerSetup(self.config, self.templates, self.curated, self.taken, slots, index, os.getpid())
            process = self.context.Process(target=worker_main, args=(theirs, setup), daemon=True,
                                           name=f"pushback-generate-worker-{index}")
            process.start()
            theirs.close()  # only the worker holds its end now: EOF on ours means the worker is gone
            self.workers.append(_Worker(index, process, ours, slots))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for worker in self.workers:
            loop.add_reader(worker.conn.fileno(), self._readable, worker)
        self.reading = True
        try:
            while not self.jobs.finished:
                self._dispatch()
                if not any(worker.in_flight for worker in self.workers):
                    break  # nothing running and nothing left to start
                worker, message = await self.inbox.get()
                if worker is not None:
                    self._handle(worker, message)
        finally:
            await asyncio.gather(*self.appends, return_exceptions=True)  # every reserved record reaches the file

    def _dispatch(self) -> None:
        """Give waiting jobs to the workers with free slots, the freest first."""
        while not self.jobs.finished:
            worker = max(self.workers, key=lambda w: w.free)
            if worker.free <= 0:
                return
            job = self.jobs.next_job()
            if job is None:
                return
            worker.in_flight[job.index] = job
            self.progress[job.index] = ([], [])
            try:
                worker.conn.send(("job", job))
            except OSError:
                self._lost(worker)

    def _readable(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll():
                self.inbox.put_nowait((worker, worker.conn.recv()))
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(worker.conn.fileno())
            self.inbox.put_nowait((worker, None))

    def _handle(self, worker: _Worker, message: Message | None) -> None:
        if message is None:
            self._lost(worker)
            return
        worker.meter, worker.cpu_s = message.meter, message.cpu_s
        self.jobs.metered(Meter.total(w.meter for w in self.workers))
        delivered, rejected = self.progress[message.job]
        if message.kind == "record" and message.record is not None:
            reason = self.jobs.reserve(message.record)
            (rejected if reason else delivered).append(reason or message.record.category)
            if reason is None:  # appended in order (the appender's lock is first come, first served), off this loop
                self._append(message.record)
        elif message.kind == "done" and message.outcome is not None:
            job = worker.in_flight.pop(message.job)
            del self.progress[message.job]
            self.jobs.settle(job, message.outcome, delivered, rejected)

    def _append(self, record: Record) -> None:
        task = asyncio.create_task(self.jobs.append(record))
        self.appends.add(task)
        task.add_done_callback(self._appended)

    def _appended(self, task: asyncio.Task[None]) -> None:
        self.appends.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            self.jobs.stop(f"cannot append to {self.config.out}: {type(error).__name__}: {error}")
            self.inbox.put_nowait((None, None))

    def _lost(self, worker: _Worker) -> None:
        worker.process.join(timeout=1)
        self.jobs.stop(f"worker {worker.index} (pid {worker.process.pid}) exited unexpectedly "
                         f"(exit code {worker.process.exitcode}); the records written are kept, rerun to continue")

    def close(self) -> None:
        """Stop every worker: ask, wait briefly, then kill. Safe to call more than once."""
        if self.reading:
            loop = asyncio.get_running_loop()
            for worker in self.workers:
                if not worker.conn.closed:
                    loop.remove_reader(worker.conn.fileno())
            self.reading = False
        for worker in self.workers:
            try:
                worker.conn.send(("stop",))
            except OSError:
                pass  # already gone
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in self.workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=STOP_GRACE_S)
            worker.conn.close()


# --- the worker's side ---------------------------------------------------------------------------


def worker_main(conn: Connection, setup: WorkerSetup) -> None:
    """A worker process: serve jobs until told to stop or the parent is gone, then leave at once.

    `os._exit` skips interpreter teardown: nothing here needs flushing (a worker writes no file), and
    on fork the parent's exit handlers must not run twice."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent decides
    # Never collect what a fork inherited: pages stay shared with the parent, and objects of the parent's
    # event loop (a LiteLLM logging task, say) are not torn down here with "Task was destroyed" noise.
    gc.freeze()
    try:
        asyncio.run(_Serve(conn, setup).serve())
    except BaseException:  # noqa: BLE001 - a crash is reported on stderr; the parent sees the pipe close
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    os._exit(0)


class _Serve:
    def __init__(self, conn: Connection, setup: WorkerSetup):
        config = setup.config
        self.conn, self.setup = conn, setup
        # Each worker jitters its backoff differently; prompt seeds derive from the job, wherever it runs.
        self.client = Endpoint(config.model, api_base=config.api_base, api_key=config.api_key,
                               temperature=config.temperature, policy=config.policy,
                               seed=config.seed * 1009 + setup.index + 1)
        self.relay = Relay(self.client, setup.templates, Examples(setup.curated, config.few_shot), config.seed)
        self.taken = set(setup.taken)
        self.tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        asyncio.get_running_loop().add_reader(self.conn.fileno(), self._readable)
        while os.getppid() == self.setup.parent_pid:
            await asyncio.sleep(PARENT_CHECK_S)
        os._exit(0)  # the parent was killed: nobody will write what we make

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                message: tuple[Any, ...] = self.conn.recv()
                if message[0] != "job":
                    os._exit(0)  # "stop"
                task = asyncio.create_task(self._job(message[1]))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        except (EOFError, OSError):
            os._exit(0)  # the parent is gone

    async def _job(self, job: Job) -> None:
        async def write(record: Record) -> None:
            self._send(Message("record", job.index, record=record))

        outcome = await run_job(self.relay, job, self.taken, write, self.setup.config.api_key)
        self._send(Message("done", job.index, outcome=outcome))
        if outcome.kind == "fatal":  # no more calls from here; the parent stops the other workers
            for task in self.tasks:
                if task is not asyncio.current_task():
                    task.cancel()

    def _send(self, message: Message) -> None:
        message.meter, message.cpu_s = self.client.meter, time.process_time()
        try:
            self.conn.send(message)
        except OSError:
            os._exit(0)  # the parent is gone: nobody wants this record
