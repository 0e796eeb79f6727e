"""The pocket pair, built and evaluated over several seeds: build time and peak memory, the quality check,
and its friction figures on the curated test split and CoCoNot, as mean and spread.

The pocket models are tiny by design (a few hundred thousand parameters trained on 594 records): their
friction figures show the format and the mechanics, not quality. Each seed is built in a child process (a
fresh interpreter, as a user runs `pushback pocket`), so its peak memory is its own, then evaluated with
`pushback eval`, exactly as a user would.

    python bench/pocket.py                    # seeds 0 1 2, full pair (about 5 minutes of CPU a seed)
    python bench/pocket.py --seeds 0 --tiny   # the seconds-long variant the tests use
    python bench/pocket.py --keep .pocket-bench   # keep the builds and replies: run it again after the
                                                  # classifier changed and only the labelling is redone
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from evaluation.learned import weights_fingerprint  # noqa: E402
from pushback.files import iter_jsonl, write_json  # noqa: E402
from pushback.provenance import provenance  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SUITES = ("curated", "coconot", "pressure")  # pressure: two turns, the model's answer then a push back
EVAL_LIMIT = 50  # prompts per suite (CoCoNot: drawn from both parts)
FIGURES = ("balanced_accuracy", "warranted_friction", "unwarranted_friction", "over_refusal", "expected_behaviour",
           "well_formed")


def child(command: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Run a `pushback` command in a child process: (wall s, CPU s, peak RSS MB) of that child alone."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "pushback", *command], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"pushback {' '.join(command)} failed ({process.returncode}):\n{output[-3000:]}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def measured_once(path: Path, plan: str, measure: Callable[[], tuple]) -> tuple:
    """The figures of the first run for this plan: kept in `path` (under --keep), so a later run that reuses
    the builds and replies reports how long they took to make, not how long it took to find them."""
    kept = json.loads(path.read_text()) if path.exists() else {}
    if kept.get("plan") == plan:
        return tuple(kept["measured"])
    measured = measure()
    write_json(path, {"plan": plan, "measured": measured})
    return measured


def one_seed(seed: int, tiny: bool, work: Path, plan: str) -> dict:
    from evaluation.metrics import grouped
    from evaluation.pressure import SUITE as PRESSURE
    from evaluation.pressure import pressure_metrics

    cache = work / f"seed-{seed}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PUSHBACK_CACHE": str(cache), "CUDA_VISIBLE_DEVICES": ""}
    build = ["pocket", "--seed", str(seed), "--force"] + (["--tiny"] if tiny else [])
    wall, cpu, peak = measured_once(cache / "build-measured.json", plan, lambda: child(build, env))
    manifest = json.loads((cache / "pocket" / "pocket.json").read_text())
    out = work / f"eval-{seed}"
    evaluate = ["eval", "--model", "baseline=pocket:baseline", "--model", "friction=pocket:friction",
                *(a for s in SUITES for a in ("--suite", s)), "--limit", str(EVAL_LIMIT), "--out", str(out)]
    # Replies kept from an earlier run are reused and labelled again by the current classifier.
    eval_this_run = child(evaluate, env)
    eval_wall = measured_once(out / "eval-measured.json", plan, lambda: eval_this_run)[0]
    everything = list(iter_jsonl(out / "results.jsonl"))
    rows = [r for r in everything if r["suite"] != PRESSURE]
    pressure = {model: pressure_metrics([r for r in everything if r["suite"] == PRESSURE and r["model"] == model])
                for model in ("baseline", "friction")}
    metrics = {f"{model}/{suite}": {f: getattr(m, f) for f in FIGURES}
               for (model, suite), m in grouped(rows, "model", "suite").items()}
    benign_curated = {model: m.unwarranted_friction for (model, suite, category), m in
                      grouped(rows, "model", "suite", "category").items() if suite == "curated" and category == "benign"}
    return {"seed": seed, "build": {"wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
                                    "peak_rss_mb": round(peak, 1), "stages": manifest["timings"]},
            "quality": {k: manifest["quality"][k] for k in ("prompts", "friction_well_formed", "baseline_well_formed")},
            "fingerprint": manifest["fingerprint"], "eval_seconds": round(eval_wall, 1), "metrics": metrics,
            "friction_on_benign_curated": benign_curated, "pressure": pressure}


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarise(seeds: list[dict]) -> dict:
    keys = {"build_wall_seconds": [s["build"]["wall_seconds"] for s in seeds],
            "build_peak_rss_mb": [s["build"]["peak_rss_mb"] for s in seeds],
            "friction_well_formed": [s["quality"]["friction_well_formed"] for s in seeds],
            "baseline_well_formed": [s["quality"]["baseline_well_formed"] for s in seeds]}
    for cell in seeds[0]["metrics"]:
        for figure in FIGURES:
            values = [s["metrics"][cell][figure] for s in seeds if s["metrics"][cell][figure] is not None]
            if values:
                keys[f"{cell}/{figure}"] = values
    for model in seeds[0]["friction_on_benign_curated"]:
        keys[f"{model}/benign_curated_friction"] = [s["friction_on_benign_curated"][model] for s in seeds]
    for model in seeds[0]["pressure"]:
        for figure in ("caved", "caved_to_wrong_claim", "first_right"):
            values = [s["pressure"][model][figure] for s in seeds if s["pressure"][model][figure] is not None]
            if values:
                keys[f"{model}/pressure/{figure}"] = values
    return {key: spread(values) for key, values in keys.items()}


def pct(s: dict[str, float]) -> str:
    return f"{100 * s['mean']:.0f}% ({100 * s['min']:.0f}-{100 * s['max']:.0f})"


def readme_rows(summary: dict, n: int, tiny: bool) -> list[dict[str, str]]:
    variant = "tiny" if tiny else "full"
    s = summary
    return [
        {"what": f"pocket pair build ({variant}), {n} seeds",
         "figure": f"{s['build_wall_seconds']['mean']:.0f} s wall ({s['build_wall_seconds']['min']:.0f}-"
                   f"{s['build_wall_seconds']['max']:.0f}), peak {s['build_peak_rss_mb']['mean']:.0f} MB; replies with "
                   f"a well-formed `<think>` block: friction {pct(s['friction_well_formed'])}, baseline "
                   f"{pct(s['baseline_well_formed'])}"},
        {"what": f"pocket pair behaviour ({variant}; tiny models: format and mechanics, not quality), mean "
                 f"(min-max) over {n} seeds, {EVAL_LIMIT} prompts a suite",
         "figure": f"friction balanced accuracy: friction {pct(s['friction/curated/balanced_accuracy'])} curated, "
                   f"{pct(s['friction/coconot/balanced_accuracy'])} CoCoNot (baseline "
                   f"{pct(s['baseline/curated/balanced_accuracy'])}, {pct(s['baseline/coconot/balanced_accuracy'])}); "
                   f"friction on benign curated prompts: friction {pct(s['friction/benign_curated_friction'])} vs "
                   f"baseline {pct(s['baseline/benign_curated_friction'])}"},
        {"what": f"pocket pair under pressure ({variant}; a second turn pushes back), mean (min-max) over {n} seeds, "
                 f"{EVAL_LIMIT} two-turn items",
         "figure": f"caved: baseline {pct(s['baseline/pressure/caved'])}, friction {pct(s['friction/pressure/caved'])}; "
                   f"caved to a wrong claim: baseline {pct(s['baseline/pressure/caved_to_wrong_claim'])}, friction "
                   f"{pct(s['friction/pressure/caved_to_wrong_claim'])}; right first answer: baseline "
                   f"{pct(s['baseline/pressure/first_right'])}, friction {pct(s['friction/pressure/first_right'])}"},
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tiny", action="store_true", help="the seconds-long test variant")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep builds and replies in DIR; a later run reuses them and only labels again")
    args = parser.parse_args()
    from tqdm import tqdm

    from training.pocket import plan_fingerprint

    plan = plan_fingerprint(args.tiny)
    seeds = []
    with tempfile.TemporaryDirectory() as scratch:
        work = args.keep or Path(scratch)
        for seed in tqdm(args.seeds, desc="pocket seeds", unit="seed", file=sys.stderr):
            seeds.append(one_seed(seed, args.tiny, work, plan))
            print(json.dumps({k: seeds[-1][k] for k in ("seed", "build", "quality")}), file=sys.stderr)
    summary = summarise(seeds)
    name = "pocket-tiny" if args.tiny else "pocket"
    result = {"variant": "tiny" if args.tiny else "full", "seeds": seeds, "summary": summary,
              "readme": readme_rows(summary, len(seeds), args.tiny),
              "provenance": provenance({"training.pocket:plan_fingerprint": plan, **weights_fingerprint()})}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / f"{name}.json", result)
    plot(seeds, summary, RESULTS / f"{name}.png")
    for row in result["readme"]:
        print(f"{row['what']}: {row['figure']}")
    print(f"wrote {RESULTS / (name + '.json')} and {RESULTS / (name + '.png')}")
    return 0


def plot(seeds: list[dict], summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [("balanced_accuracy", "balanced acc."), ("unwarranted_friction", "friction on benign"),
             ("over_refusal", "over-refusal")]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), sharey=True)
    single_turn = [s for s in SUITES if s != "pressure"]
    for ax, suite in zip(axes, single_turn):
        for offset, model in ((-0.18, "baseline"), (0.18, "friction")):
            for x, (figure, _) in enumerate(cells):
                key = f"{model}/{suite}/{figure}"
                if key not in summary:
                    continue
                values = [s["metrics"][f"{model}/{suite}"][figure] for s in seeds]
                ax.bar(x + offset, summary[key]["mean"], width=0.34, color="tab:red" if model == "friction" else "tab:gray",
                       label=model if x == 0 else None)
                ax.scatter([x + offset] * len(values), values, color="black", s=10, zorder=3)
        ax.set_xticks(range(len(cells)), [label for _, label in cells])
        ax.set_title(f"{suite} ({len(seeds)} seeds: bars mean, dots seeds)")
        ax.set_ylim(0, 1)
        ax.legend()
    ax = axes[-1]
    figures = [("caved", "caved"), ("caved_to_wrong_claim", "caved to a\nwrong claim"), ("first_right", "right first\nanswer")]
    for offset, model in ((-0.18, "baseline"), (0.18, "friction")):
        for x, (figure, _) in enumerate(figures):
            key = f"{model}/pressure/{figure}"
            if key in summary:
                values = [s["pressure"][model][figure] for s in seeds if s["pressure"][model][figure] is not None]
                ax.bar(x + offset, summary[key]["mean"], width=0.34,
                       color="tab:red" if model == "friction" else "tab:gray", label=model if x == 0 else None)
                ax.scatter([x + offset] * len(values), values, color="black", s=10, zorder=3)
    ax.set_xticks(range(len(figures)), [label for _, label in figures])
    ax.set_title("pressure (two turns)")
    ax.legend()
    fig.suptitle("pocket pair (tiny models: format and mechanics, not quality)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
