"""Classifier throughput on one core: the offline classifier vs the 1,000 responses/s target, its cost with
and without the learned layer, and the first-word phrase index vs the plain scan it replaces (every
alternative tried at every word), all in one run.

Texts: every labelled response the classifier is validated on (XSTest gpt4, llama2new, llama2orig,
ChatGPT, the curated final and baseline answers, the five-label development set) -- real responses of
real lengths. The five-label test set is left out (it is read once, to score).

    python bench/classify.py            # prints a table; writes bench/results/classify.json
    python bench/classify.py --quick    # fewer repeats
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: keep package imports unambiguous

from evaluation import classify as C  # noqa: E402
from evaluation.learned import weights_fingerprint  # noqa: E402
from evaluation.matcher import scan_plain  # noqa: E402
from evaluation.sources import SOURCES, load  # noqa: E402
from pushback.files import write_json  # noqa: E402
from pushback.provenance import describe_hardware, hardware, provenance  # noqa: E402

TARGET = 1000.0  # responses per second on one core


def texts() -> list[tuple[str, str]]:
    return [(e.prompt, e.response) for source in SOURCES for e in load(source)]


def rate(work, items, repeats: int) -> float:
    """Best-of-`repeats` items per second (the least disturbed run)."""
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        for item in items:
            work(item)
        best = min(best, time.perf_counter() - began)
    return len(items) / best


def plain_reading(item: tuple[str, str]) -> None:
    answer = item[1].translate(C._QUOTES)
    starts = [0] + [m.end() for m in C._SENTENCE_BREAK.finditer(answer)]
    scan_plain(C._FAMILIES, answer, starts)


def indexed_reading(item: tuple[str, str]) -> None:
    answer = item[1].translate(C._QUOTES)
    starts = [0] + [m.end() for m in C._SENTENCE_BREAK.finditer(answer)]
    C.ANSWER_LEXICON.scan(answer, starts)


def plot(result: dict, path: Path, machine: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["classify()", "rules alone", "phrase reading\n(index)", "phrase reading\n(plain scan)"]
    values = [result[k] for k in ("classify_per_s", "rules_alone_per_s", "phrase_reading_indexed_per_s",
                                  "phrase_reading_plain_per_s")]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bars = ax.bar(names, values, color=["tab:blue", "tab:gray", "tab:green", "tab:red"])
    ax.axhline(TARGET, linestyle=":", color="black", label="target 1,000/s")
    for bar, v in zip(bars, values):
        ax.annotate(f"{v:,.0f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    ax.set(ylabel="responses per second", title=f"Classifier throughput, one core of a {machine}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    # The machine as it is, before this process is pinned to one of its cores.
    machine = describe_hardware(hardware())
    about = provenance(weights_fingerprint())
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    items = texts()
    repeats = 2 if args.quick else 5
    sample = items[:: max(1, len(items) // 150)]  # the plain scan is slow; a spread-out sample
    for item in items[:50]:
        C.classify(item[1], item[0])  # warm up caches
    full = rate(lambda item: C.classify(item[1], item[0]), items, repeats)
    rules = rate(lambda item: C.classify(item[1], item[0], use_learned=False), items, repeats)
    indexed = rate(indexed_reading, sample, repeats)
    plain = rate(plain_reading, sample, max(1, repeats // 2))
    chars = statistics.mean(len(t) for _, t in items)
    result = {
        "python": platform.python_version(), "cores_used": 1,
        "responses": len(items), "mean_chars": round(chars), "classify_per_s": round(full),
        "rules_alone_per_s": round(rules),
        "target_per_s": TARGET, "vs_target": round(full / TARGET, 2),
        "phrase_reading_indexed_per_s": round(indexed), "phrase_reading_plain_per_s": round(plain),
        "index_speedup": round(indexed / plain, 1), "sample": len(sample),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "provenance": about,
    }
    result["readme"] = [{"what": "behaviour classifier speed (labels, XSTest classes, monologue plan), one core",
                         "figure": f"{full:,.0f} responses/s ({full / TARGET:.1f}x the 1,000/s target) over "
                                   f"{len(items):,} real labelled responses of {chars:.0f} characters on average"}]
    print(f"{len(items)} real responses, {chars:.0f} characters on average, one core of a {machine} "
          f"(Python {result['python']}, load average {result['load_average']})")
    print(f"{'':40}{'responses/s':>14}{'ratio':>10}")
    print(f"{'classify() (labels, monologue, all)':40}{full:>14,.0f}{full / TARGET:>9.1f}x  of the 1,000/s target")
    print(f"{'classify(use_learned=False): rules alone':40}{rules:>14,.0f}{rules / TARGET:>9.1f}x  "
          f"(the learned layer costs {100 * (rules / full - 1):.0f}% more time)")
    print(f"{'phrase reading, first-word index':40}{indexed:>14,.0f}{indexed / plain:>9.1f}x  vs plain scan")
    print(f"{'phrase reading, plain scan':40}{plain:>14,.0f}{1:>9.1f}x")
    out = ROOT / "bench" / "results" / "classify.json"
    write_json(out, result)
    plot(result, out.with_suffix(".png"), machine)
    print(f"written: {out.relative_to(ROOT)}, {out.with_suffix('.png').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
