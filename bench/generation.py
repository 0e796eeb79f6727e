"""Generation throughput: the concurrent relay vs its ideal bound vs the original schedule, in one run.

Against one local OpenAI-compatible server (tests/openai_server.py, its own process) at latency L:

* ours at concurrency 1, 8, 32, 64 (`generation.run.Runner`, the code `pushback generate` runs) with
  `--workers auto`, and with one process where auto chose more, for comparison;
* the ideal bound 60*c/(k*L) records/min, k = sequential calls per record on the critical path;
* the client's CPU ceiling: 60 / (CPU seconds per record) x the cores its processes can use, and
  "cores busy", the CPU the client (parent and workers) actually got (other load shows here);
* the original schedule: batches of 10 records, 8 sequential calls each, the batch written when all
  of it is done, then a 1 s pause (reimplemented here only, with the same client and templates).

    python bench/generation.py                  # prints a table; writes bench/results/generation.{json,png}
    python bench/generation.py --quick          # fewer records, for a smoke run
    python bench/generation.py --latency 2 --name generation-L2   # where the client's CPU is no limit
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: this file's own name would shadow the `generation` package

from generation.client import ChatClient, RetryPolicy
from generation.pipeline import CALLS_PER_RECORD, CRITICAL_CALLS, Relay
from generation.plan import Examples, Job, category_weights, plan_jobs, read_curated
from generation.run import GenerateConfig, Runner, auto_workers
from generation.templates import load_templates
from generation.workers import available_cpus

RESULTS = ROOT / "bench" / "results"
MODEL = "openai/bench"


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "openai_server.py"), "--latency", str(latency)],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    if "listening on" not in line:
        server.kill()
        raise RuntimeError(f"the local server did not start: {line!r}")
    return server, line.split()[-1]


async def ours(url: str, concurrency: int, workers: int, records: int, out_dir: Path) -> dict[str, float]:
    config = GenerateConfig(model=MODEL, out=out_dir / f"ours-c{concurrency}-w{workers}.jsonl", n=records,
                            api_base=url, concurrency=concurrency, workers=workers, progress=False,
                            policy=RetryPolicy(timeout=30))
    report = await Runner(config).run()
    if report.written != records or report.failed:
        raise RuntimeError(f"c={concurrency}, w={workers}: wrote {report.written}/{records}, {report.failed} failed")
    return {"concurrency": concurrency, "workers": workers, "records": report.written, "seconds": report.elapsed,
            "records_per_min": report.records_per_min, "calls": report.meter.calls,
            "cpu_ms_per_call": 1000 * report.cpu_s / report.meter.calls,
            "cores_busy": report.cpu_s / report.elapsed}  # CPU of the parent and its workers; 1.0 = one whole core


async def original_schedule(url: str, records: int, out_dir: Path, batch: int = 10,
                            pause: float = 1.0) -> dict[str, float]:
    """The original generator's schedule: 10 records at a time, each a strictly sequential chain of
    8 calls (question, six personas, synthesis); the batch is written only when all of it is done;
    then a fixed 1 s pause before the next batch."""
    templates, curated = load_templates(), read_curated()
    client = ChatClient(MODEL, api_base=url, policy=RetryPolicy(timeout=30))
    relay = Relay(client, templates, Examples(curated))
    jobs = plan_jobs(records, Counter(), category_weights(curated), topics=templates.topics)
    taken: set[str] = set()
    out = out_dir / "original.jsonl"

    async def one(job: Job) -> dict[str, object]:
        question = await relay.write_prompt(job, taken)
        thoughts = await relay.relay(question, job.category)
        answer = await relay.synthesize(question, job.category, thoughts, random.Random(job.index))
        return {"question": question, "agent_responses": thoughts, "final_answer": answer}

    start = time.perf_counter()
    done = 0
    for first in range(0, len(jobs), batch):
        rows = await asyncio.gather(*(one(job) for job in jobs[first:first + batch]))
        with open(out, "a", encoding="utf-8") as f:  # noqa: ASYNC230 - the original's blocking write of the whole batch
            f.writelines(json.dumps(row) + "\n" for row in rows)
        done += len(rows)
        if first + batch < len(jobs):
            await asyncio.sleep(pause)
    seconds = time.perf_counter() - start
    return {"records": done, "seconds": seconds, "records_per_min": 60 * done / seconds, "calls": client.meter.calls}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["ours"]
    cs = [r["concurrency"] for r in rows]
    single = [r for r in results["one_process"] if r["workers"] == 1]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(cs, [r["bound"] for r in rows], "k--", marker="o", label=f"ideal bound 60·c/(k·L), k={results['k']}")
    ax.plot(cs, [r["cpu_ceiling"] for r in rows], ":", color="tab:red", marker="x",
            label=f"client CPU ceiling ({results['cpus']} cores)")
    if single:
        ax.plot([r["concurrency"] for r in single], [r["records_per_min"] for r in single], "-", color="tab:orange",
                marker="s", label="measured, --workers 1")
    ax.plot(cs, [r["records_per_min"] for r in rows], "-", color="tab:blue", marker="o",
            label="measured, --workers auto (" + ", ".join(f"c={r['concurrency']}: {r['workers']}" for r in rows) + ")")
    ax.axhline(results["original"]["records_per_min"], color="tab:gray",
               label="original schedule (batches of 10, 1 s pause)")
    for r in rows:
        ax.annotate(f"{100 * r['of_bound']:.0f}%", (r["concurrency"], r["records_per_min"]), textcoords="offset points",
                    xytext=(4, -12), fontsize=8, color="tab:blue")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(cs, [str(c) for c in cs])
    ax.set_xlabel("records in flight (--concurrency)")
    ax.set_ylabel("records / min")
    ax.set_title(f"Generation throughput, local server at L = {results['latency_s']} s per call")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


async def bench(latency: float, concurrencies: list[int], waves: int, original_records: int,
                compare: bool = True) -> dict:
    load_before = os.getloadavg()[0]  # other work on the machine competes with the client for CPU
    server, url = start_server(latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out_dir = Path(tmp)
            (out_dir / "warmup").mkdir()
            await ours(url, 4, 1, 8, out_dir / "warmup")  # connections, imports and caches warm before timing
            rows, one_process = [], []
            for c in concurrencies:
                for workers in dict.fromkeys([auto_workers(c), 1] if compare else [auto_workers(c)]):
                    row = await ours(url, c, workers, waves * c, out_dir)
                    row["bound"] = 60 * c / (CRITICAL_CALLS * latency)
                    row["of_bound"] = row["records_per_min"] / row["bound"]
                    cores = min(workers, available_cpus())
                    row["cpu_ceiling"] = cores * 60_000 / (row["cpu_ms_per_call"] * CALLS_PER_RECORD)
                    (rows if workers == auto_workers(c) else one_process).append(row)
                    print(f"  concurrency {c:>3}, {workers} worker(s): {row['records_per_min']:7.0f} records/min "
                          f"({100 * row['of_bound']:.0f}% of the bound)", flush=True)
            original = await original_schedule(url, original_records, out_dir)
            print(f"  original schedule: {original['records_per_min']:7.0f} records/min", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)
    for row in rows + one_process:
        row["vs_original"] = row["records_per_min"] / original["records_per_min"]
    return {"latency_s": latency, "k": CRITICAL_CALLS, "calls_per_record": CALLS_PER_RECORD, "ours": rows,
            "one_process": one_process, "original": original, "cpus": available_cpus(),
            "load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0]}


def table(results: dict) -> str:
    lines = [(f"latency L = {results['latency_s']} s/call; k = {results['k']} sequential calls per record "
              f"({results['calls_per_record']} in all, the baseline beside the relay); {results['cpus']} CPUs, "
              f"load {results['load_avg_1m_before']:.2f} before, {results['load_avg_1m_after']:.2f} after"),
             (f"{'concurrency':>11} {'workers':>7} {'records':>7} {'rec/min':>8} {'bound':>7} {'of bound':>8} "
              f"{'CPU ceil':>8} {'ms CPU/call':>11} {'cores busy':>10} {'vs original':>11}")]
    rows = sorted(results["ours"] + results["one_process"], key=lambda r: (r["concurrency"], -r["workers"]))
    for r in rows:
        lines.append(f"{r['concurrency']:>11} {r['workers']:>7} {r['records']:>7} {r['records_per_min']:>8.0f} "
                     f"{r['bound']:>7.0f} {100 * r['of_bound']:>7.1f}% {r['cpu_ceiling']:>8.0f} "
                     f"{r['cpu_ms_per_call']:>11.2f} {r['cores_busy']:>10.2f} {r['vs_original']:>10.1f}x")
    o = results["original"]
    lines.append(f"{'original':>11} {o['records']:>7} {o['records_per_min']:>8.0f}"
                 "   (batches of 10, 8 sequential calls, 1 s pause)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--waves", type=int, default=6, help="records per run = waves x concurrency")
    parser.add_argument("--no-compare", action="store_true", help="skip the --workers 1 runs where auto chose more")
    parser.add_argument("--original-records", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="2 waves, 20 records on the original schedule")
    parser.add_argument("--name", default="generation", help="results file stem under bench/results/")
    args = parser.parse_args()
    if args.quick:
        args.waves, args.original_records = 2, 20
    results = asyncio.run(bench(args.latency, args.concurrency, args.waves, args.original_records,
                                compare=not args.no_compare))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, RESULTS / f"{args.name}.png")
    print(table(results))
    print(f"saved {RESULTS / (args.name + '.json')} and {RESULTS / (args.name + '.png')}")


if __name__ == "__main__":
    main()
