"""Generation throughput: the concurrent relay vs its ideal bound vs the original schedule, in one run.

Against one local OpenAI-compatible server (support/openai_server.py, its own process) at latency L:

* ours at concurrency 1, 8, 32, 64 (`generation.run.Runner`, the code `pushback generate` runs) with
  `--workers auto`, and with one process where auto chose more, for comparison;
* the ideal bound 60*c/(k*L) records/min, k = sequential calls per record on the critical path;
* the client's CPU ceiling: 60 / (CPU seconds per record) x the cores its processes can use;
  "cores busy", the CPU the client (parent and workers) actually got (other load shows here), and
  "cores@bound", the CPU the client would need to run at the bound (calls/s there x CPU per call);
* the original schedule: batches of 10 records, 8 sequential calls each, the batch written when all
  of it is done, then a 1 s pause (reimplemented here only, with the same client and templates).

    python bench/generation.py                  # prints a table; writes bench/results/generation.{json,png}
    python bench/generation.py --quick          # fewer records, for a smoke run
    python bench/generation.py --concurrency 32 64 --workers 1 2 3 4 6 8 --name generation-workers
                                                # the sweep behind `--workers auto`
    python bench/generation.py --latency 2 --concurrency 8 64 --waves 2 --original-records 10 --name generation-L2
                                                # where the client's CPU is no limit
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

from generation.config import GenerateConfig, auto_workers, available_cpus
from generation.pipeline import CALLS_PER_RECORD, CRITICAL_CALLS, Relay
from generation.plan import Examples, Job, category_weights, plan_jobs, read_curated
from generation.run import Runner
from generation.templates import load_templates
from pushback.endpoint import Endpoint, RetryPolicy
from pushback.files import write_json
from pushback.provenance import provenance

RESULTS = ROOT / "bench" / "results"
MODEL = "openai/bench"


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen([sys.executable, "-m", "support.openai_server", "--latency", str(latency)], cwd=ROOT,
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
    if report.written != records or report.failed or report.fatal:
        raise RuntimeError(f"c={concurrency}, w={workers}: wrote {report.written}/{records}, {report.failed} failed, "
                           f"stopped: {report.fatal}")
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
    client = Endpoint(MODEL, api_base=url, policy=RetryPolicy(timeout=30))
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


def plot_sweep(results: dict, path: Path) -> None:
    """Records/min against the number of workers, one line per concurrency, each next to its bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for colour, c in zip(["tab:blue", "tab:orange", "tab:green", "tab:purple"],
                         sorted({r["concurrency"] for r in results["runs"]})):
        rows = sorted((r for r in results["runs"] if r["concurrency"] == c), key=lambda r: r["workers"])
        ax.axhline(rows[0]["bound"], color=colour, linestyle="--", linewidth=1, label=f"ideal bound at c={c}")
        ax.plot([r["workers"] for r in rows], [r["records_per_min"] for r in rows], "-", color=colour, marker="o",
                label=f"measured at c={c} (auto: {next((r['workers'] for r in rows if r['auto']), '-')})")
        for r in rows:
            ax.annotate(f"{100 * r['of_bound']:.0f}%", (r["workers"], r["records_per_min"]), textcoords="offset points",
                        xytext=(0, -13), ha="center", fontsize=8, color=colour)
    ax.set_xlabel(f"worker processes (--workers) on {results['cpus']} CPUs")
    ax.set_ylabel("records / min")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Worker count sweep, local server at L = {results['latency_s']} s per call")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot(results: dict, path: Path) -> None:
    if results["worker_sweep"]:
        plot_sweep(results, path)
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    cs = sorted({r["concurrency"] for r in runs})
    at = {c: [r for r in runs if r["concurrency"] == c] for c in cs}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(cs, [at[c][0]["bound"] for c in cs], "k--", marker="o", label=f"ideal bound 60·c/(k·L), k={results['k']}")
    ax.plot(cs, [max(r["cpu_ceiling"] for r in at[c]) for c in cs], ":", color="tab:red", marker="x",
            label=f"client CPU ceiling ({results['cpus']} cores)")
    fixed = sorted({r["workers"] for r in runs if not r["auto"]})
    for colour, workers in zip(["tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive"], fixed):
        chosen = [r for r in runs if r["workers"] == workers]
        ax.plot([r["concurrency"] for r in chosen], [r["records_per_min"] for r in chosen], "-", color=colour,
                marker="s", markersize=4, label=f"measured, --workers {workers}")
    auto = [r for r in runs if r["auto"]]
    ax.plot([r["concurrency"] for r in auto], [r["records_per_min"] for r in auto], "-", color="tab:blue", marker="o",
            label="measured, --workers auto (" + ", ".join(f"c={r['concurrency']}: {r['workers']}" for r in auto) + ")")
    ax.axhline(results["original"]["records_per_min"], color="tab:gray",
               label="original schedule (batches of 10, 1 s pause)")
    for r in auto:
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
                worker_counts: list[int] | None = None, compare: bool = True) -> dict:
    """Each concurrency with `--workers auto` and, unless `compare` is off, one process; or with each of
    `worker_counts` (a sweep, to choose the auto rule)."""
    load_before = os.getloadavg()[0]  # other work on the machine competes with the client for CPU
    server, url = start_server(latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out_dir = Path(tmp)
            (out_dir / "warmup").mkdir()
            await ours(url, 4, 1, 8, out_dir / "warmup")  # connections, imports and caches warm before timing
            runs = []
            for c in concurrencies:
                counts = worker_counts or ([auto_workers(c), 1] if compare else [auto_workers(c)])
                for workers in dict.fromkeys(counts):
                    row = await ours(url, c, workers, waves * c, out_dir)
                    row["auto"] = workers == auto_workers(c)
                    row["bound"] = 60 * c / (CRITICAL_CALLS * latency)
                    row["of_bound"] = row["records_per_min"] / row["bound"]
                    cores = min(workers, available_cpus())
                    calls_per_record = row["calls"] / row["records"]  # 9, or 10 for a benign record
                    row["cpu_ceiling"] = cores * 60_000 / (row["cpu_ms_per_call"] * calls_per_record)
                    # CPU the client would need to run at the bound: calls/s at the bound x CPU per call
                    row["cores_for_bound"] = row["bound"] * calls_per_record / 60 * row["cpu_ms_per_call"] / 1000
                    runs.append(row)
                    print(f"  concurrency {c:>3}, {workers} worker(s): {row['records_per_min']:7.0f} records/min "
                          f"({100 * row['of_bound']:.0f}% of the bound)", flush=True)
            original = await original_schedule(url, original_records, out_dir)
            print(f"  original schedule: {original['records_per_min']:7.0f} records/min", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)
    for row in runs:
        row["vs_original"] = row["records_per_min"] / original["records_per_min"]
    return {"latency_s": latency, "k": CRITICAL_CALLS, "calls_per_record": CALLS_PER_RECORD, "runs": runs,
            "worker_sweep": bool(worker_counts), "original": original, "cpus": available_cpus(),
            "load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0]}


def table(results: dict) -> str:
    lines = [(f"latency L = {results['latency_s']} s/call; k = {results['k']} sequential calls per record "
              f"({results['calls_per_record']} in all, the baseline beside the relay, one more for a benign "
              f"record); {results['cpus']} CPUs, "
              f"load {results['load_avg_1m_before']:.2f} before, {results['load_avg_1m_after']:.2f} after"),
             (f"{'concurrency':>11} {'workers':>9} {'records':>7} {'rec/min':>8} {'bound':>7} {'of bound':>8} "
              f"{'CPU ceil':>8} {'ms CPU/call':>11} {'cores busy':>10} {'cores@bound':>11} {'vs original':>11}")]
    for r in sorted(results["runs"], key=lambda r: (r["concurrency"], r["workers"])):
        workers = f"{r['workers']}{' auto' if r['auto'] else ''}"
        lines.append(f"{r['concurrency']:>11} {workers:>9} {r['records']:>7} {r['records_per_min']:>8.0f} "
                     f"{r['bound']:>7.0f} {100 * r['of_bound']:>7.1f}% {r['cpu_ceiling']:>8.0f} "
                     f"{r['cpu_ms_per_call']:>11.2f} {r['cores_busy']:>10.2f} {r['cores_for_bound']:>11.2f} "
                     f"{r['vs_original']:>10.1f}x")
    o = results["original"]
    lines.append(f"{'original':>11} {'':>9} {o['records']:>7} {o['records_per_min']:>8.0f}"
                 "   (batches of 10, 8 sequential calls, 1 s pause)")
    return "\n".join(lines)


def readme_rows(results: dict) -> list[dict[str, str]]:
    """The fastest run against the ideal bound (every call at the endpoint's latency, fully overlapped) and
    against the original project's schedule, measured in the same run."""
    if not results.get("runs"):
        return []
    best = max(results["runs"], key=lambda r: r["records_per_min"])
    original = results["original"]["records_per_min"]
    return [{"what": f"record generation against a loopback endpoint at {results['latency_s']:g} s per call "
                     f"({results['calls_per_record']} calls a record)",
             "figure": f"{best['records_per_min']:,.0f} records/min at concurrency {best['concurrency']} with "
                       f"{best['workers']} worker process(es): {best['of_bound']:.0%} of the ideal bound, "
                       f"{best['records_per_min'] / original:.1f}x the original project's schedule "
                       f"({original:,.0f}/min)"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--waves", type=int, default=6, help="records per run = waves x concurrency")
    parser.add_argument("--no-compare", action="store_true", help="skip the --workers 1 runs where auto chose more")
    parser.add_argument("--workers", type=int, nargs="+", help="run each of these worker counts instead (a sweep)")
    parser.add_argument("--original-records", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="2 waves, 20 records on the original schedule")
    parser.add_argument("--name", default="generation", help="results file stem under bench/results/")
    args = parser.parse_args()
    if args.quick:
        args.waves, args.original_records = 2, 20
    results = asyncio.run(bench(args.latency, args.concurrency, args.waves, args.original_records,
                                worker_counts=args.workers, compare=not args.no_compare))
    RESULTS.mkdir(parents=True, exist_ok=True)
    results["readme"] = readme_rows(results)
    results["provenance"] = provenance()  # a loopback endpoint and the generator's code: the commit says which
    write_json(RESULTS / f"{args.name}.json", results)
    plot(results, RESULTS / f"{args.name}.png")
    print(table(results))
    print(f"saved {RESULTS / (args.name + '.json')} and {RESULTS / (args.name + '.png')}")


if __name__ == "__main__":
    main()
