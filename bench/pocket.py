"""`pushback pocket` build time and peak memory on this machine, with the quality check it prints.

The build runs in a child process (a fresh interpreter, as a user would run it), so its peak resident
memory is its own. Wall time and CPU time are both reported: on a shared machine the difference is
time spent waiting for a core, and the CPU time is what the build itself costs.

    python bench/pocket.py            # the full pair (target: under 5 minutes on 2 cores)
    python bench/pocket.py --tiny     # the seconds-long variant the tests use
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from pushback.files import write_atomic  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_SECONDS = {False: 300, True: 60}


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run_build(out: Path, tiny: bool, seed: int) -> dict:
    command = [sys.executable, "-m", "pushback", "pocket", "--out", str(out), "--seed", str(seed), "--force"]
    if tiny:
        command.append("--tiny")
    load_before = load_average()
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, text=True, capture_output=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise RuntimeError(f"pushback pocket failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    manifest = json.loads((out / "pocket.json").read_text())
    return {
        "variant": "tiny" if tiny else "full",
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux reports kilobytes
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "stages": manifest["timings"],
        "records": manifest["records"],
        "quality": {k: manifest["quality"][k] for k in ("prompts", "friction_well_formed", "baseline_well_formed")},
        "output": completed.stdout.strip().splitlines()[-6:],
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = result["stages"]
    fig, ax = plt.subplots(figsize=(7, 2.8))
    left = 0.0
    for name, seconds in stages.items():
        ax.barh([0], [seconds], left=left, label=f"{name} {seconds:.0f} s")
        left += seconds
    target = TARGET_SECONDS[result["variant"] == "tiny"]
    ax.axvline(target, color="red", linestyle=":", label=f"target {target} s")
    ax.set_yticks([])
    ax.set_xlabel("seconds (wall)")
    ax.set_title(f"pushback pocket ({result['variant']}): {result['wall_seconds']:.0f} s wall, "
                 f"{result['cpu_seconds']:.0f} s CPU, peak {result['peak_rss_mb']:.0f} MB")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the seconds-long test variant")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    name = "pocket-tiny" if args.tiny else "pocket"
    with tempfile.TemporaryDirectory() as work:
        result = run_build(Path(work) / "pocket", args.tiny, args.seed)
    target = TARGET_SECONDS[args.tiny]
    print(f"pushback pocket{' --tiny' if args.tiny else ''} on {os.cpu_count()} cores "
          f"(load average {result['load_average_before']} before, {result['load_average_after']} after):")
    print(f"  wall {result['wall_seconds']} s (target under {target} s: "
          f"{'met' if result['wall_seconds'] < target else 'NOT met'}), CPU {result['cpu_seconds']} s, "
          f"peak memory {result['peak_rss_mb']} MB")
    print("  stages: " + ", ".join(f"{k} {v} s" for k, v in result["stages"].items()))
    q = result["quality"]
    print(f"  quality on {q['prompts']} held-out prompts: friction well-formed {q['friction_well_formed']:.0%} "
          f"(target >= 90%), baseline {q['baseline_well_formed']:.0%} (target <= 5%)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_atomic(RESULTS / f"{name}.json", json.dumps(result, indent=2) + "\n")
    plot(result, RESULTS / f"{name}.png")
    print(f"wrote {RESULTS / (name + '.json')} and {RESULTS / (name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
