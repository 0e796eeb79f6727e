"""`pushback validate FILE...`: counts and length statistics, or every problem with file and line."""
from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from collections.abc import Sequence

from pushback.chat import rejected_text
from pushback.records import CATEGORIES, Record, read_collection


def _words(text: str) -> int:
    return len(text.split())


def _stats_line(name: str, values: list[int]) -> str:
    if not values:
        return f"  {name:<19} -"
    q = statistics.quantiles(values, n=10) if len(values) > 1 else [values[0]] * 9
    return f"  {name:<19} min {min(values):>5}  median {int(statistics.median(values)):>5}  p90 {int(q[8]):>5}  max {max(values):>5}"


def summary(records: list[Record]) -> str:
    n = len(records)
    lines = [f"{n} valid records"]

    def table(title: str, counts: Counter, order: Sequence[str] | None = None) -> None:
        lines.append(f"{title}:")
        for key in order or sorted(counts):
            lines.append(f"  {key:<16} {counts[key]:>5}  {100 * counts[key] / max(n, 1):5.1f}%")

    table("category", Counter(r.category for r in records), CATEGORIES)
    table("expected", Counter(r.expected for r in records))
    table("source", Counter(r.metadata.source for r in records))
    twinned = {r.metadata.twin_of for r in records if r.metadata.twin_of}
    lines.append(f"benign twins: {len(twinned)} friction records have a benign look-alike")
    paired = Counter("benign" if r.category == "benign" else "friction" for r in records if rejected_text(r))
    lacking = sum(1 for r in records if r.category == "benign" and not r.overcautious_answer)
    lines.append(f"preference pairs: {sum(paired.values())} ({paired['friction']} friction: final vs baseline answer; "
                 f"{paired['benign']} benign: final vs overcautious answer; "
                 f"{lacking} benign record(s) without an overcautious_answer)")
    lines.append("length (words):")
    lines.append(_stats_line("user_input", [_words(r.user_input) for r in records]))
    lines.append(_stats_line("monologue", [_words(r.monologue) for r in records]))
    lines.append(_stats_line("final_answer", [_words(r.final_answer) for r in records]))
    lines.append(_stats_line("baseline_answer", [_words(r.baseline_answer) for r in records]))
    lines.append(_stats_line("overcautious_answer", [_words(r.overcautious_answer) for r in records
                                                     if r.overcautious_answer]))
    lines.append(_stats_line("thoughts/record", [len(r.agents) for r in records]))
    return "\n".join(lines)


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="JSONL record files")


def main(args: argparse.Namespace) -> int:
    records, problems = read_collection(args.files)
    if records:
        print(summary(records))
    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0
