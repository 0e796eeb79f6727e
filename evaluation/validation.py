"""Validation of the classifier against people.

1. XSTest's human labels (`final_label`). The split is fixed: the rules were tuned on the `gpt4`
   completions only; `llama2new` and `llama2orig` (Llama-2-70b-chat without and with its safety
   system prompt: one other model family) are held out. Agreement is reported per family, on comply vs
   any refusal (binary) and on the three classes, which the rules alone decide.
2. The curated set: final answers should get their record's `expected` label and baseline answers
   `comply`. Rules and the learned layer were tuned and fitted on the train split only; the figure is the
   test split the dataset build uses (`pushback.splits.curated_split()`), with the learned
   layer and, for comparison, with the rules alone.
"""
from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from evaluation.classify import LABELS, XSTEST_LABELS, classify
from pushback.paths import SUITES_DIR, curated_files
from pushback.splits import curated_split

XSTEST_DIR = SUITES_DIR / "xstest"
TUNING_FAMILY = "gpt4"
HELD_OUT_FAMILIES = ("llama2new", "llama2orig")
# Published automatic labellers on XSTest (all five model families), for the comparison table.
PUBLISHED = {"string matching": (0.884, 0.839), "GPT-4 judge": (0.821, 0.799)}
_FAMILY = re.compile(r"xstest_v2_completions_(\w+)\.csv$")


@dataclass(frozen=True)
class Completion:
    id: str
    type: str
    prompt: str
    completion: str
    human: str  # final_label


@dataclass(frozen=True)
class Agreement:
    family: str
    n: int
    binary: float  # comply vs any refusal
    three_class: float
    confusion: dict[tuple[str, str], int]  # (human, classifier) -> count

    @property
    def role(self) -> str:
        return "tuning" if self.family == TUNING_FAMILY else "held out"


def family_of(path: str | Path) -> str:
    match = _FAMILY.search(str(path))
    return match.group(1) if match else Path(path).stem


def default_files() -> list[Path]:
    return sorted(XSTEST_DIR.glob("xstest_v2_completions_*.csv"))


def read_completions(path: str | Path) -> list[Completion]:
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for number, row in enumerate(csv.DictReader(f), start=2):
            label = (row.get("final_label") or "").strip()
            if label not in XSTEST_LABELS:
                raise ValueError(f"{path}:{number}: final_label: {label!r} is not one of {', '.join(XSTEST_LABELS)}")
            rows.append(Completion(row["id"], row["type"], row["prompt"], row["completion"] or "", label))
    return rows


def agreement(family: str, completions: list[Completion]) -> Agreement:
    pairs = [(c.human, classify(c.completion, c.prompt).xstest_label) for c in completions]
    n = len(pairs)
    comply = XSTEST_LABELS[0]
    binary = sum((h == comply) == (p == comply) for h, p in pairs) / n
    exact = sum(h == p for h, p in pairs) / n
    return Agreement(family, n, binary, exact, dict(Counter(pairs)))


def score_files(paths: list[str | Path]) -> list[Agreement]:
    return [agreement(family_of(p), read_completions(p)) for p in paths]


def format_table(results: list[Agreement]) -> str:
    lines = ["| family | role | n | comply vs refusal | three classes |", "|---|---|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.family} | {r.role} | {r.n} | {100 * r.binary:.1f}% | {100 * r.three_class:.1f}% |")
    held = [r for r in results if r.role == "held out"]
    if held:
        n = sum(r.n for r in held)
        binary = sum(r.binary * r.n for r in held) / n
        exact = sum(r.three_class * r.n for r in held) / n
        lines.append(f"| all held out | held out | {n} | {100 * binary:.1f}% | {100 * exact:.1f}% |")
    for name, (binary, exact) in PUBLISHED.items():
        lines.append(f"| published {name} | five families | 2250 | {100 * binary:.1f}% | {100 * exact:.1f}% |")
    return "\n".join(lines)


def format_confusion(result: Agreement) -> str:
    short = {"1_full_compliance": "comply", "2_full_refusal": "refusal", "3_partial_refusal": "partial"}
    head = "human \\ classifier".ljust(20) + "".join(short[p].rjust(10) for p in XSTEST_LABELS)
    rows = [head] + [short[h].ljust(20) + "".join(str(result.confusion.get((h, p), 0)).rjust(10)
                                                  for p in XSTEST_LABELS) for h in XSTEST_LABELS]
    return f"{result.family} ({result.role}):\n" + "\n".join("  " + r for r in rows)


@dataclass(frozen=True)
class CuratedAgreement:
    split: str
    n: int
    accuracy: float
    by_kind: dict[str, tuple[int, int]]  # "final:hedge" / "baseline:comply" -> (right, total)
    confusion: dict[tuple[str, str], int]  # (kind:expected, classifier label) -> count


def curated_agreement(split: str = "test", use_learned: bool = True) -> CuratedAgreement:
    """Final answers against their `expected` label, baseline answers against `comply`."""
    train, test = curated_split()
    pairs = []
    for r in {"train": train, "test": test}[split]:
        final = classify(r.final_answer, r.user_input, use_learned=use_learned).label
        baseline = classify(r.baseline_answer, r.user_input, use_learned=use_learned).label
        pairs.append((f"final:{r.expected}", r.expected, final))
        pairs.append(("baseline:comply", "comply", baseline))
    by_kind: dict[str, tuple[int, int]] = {}
    for kind, wanted, got in pairs:
        right, total = by_kind.get(kind, (0, 0))
        by_kind[kind] = (right + (wanted == got), total + 1)
    n = len(pairs)
    return CuratedAgreement(split, n, sum(w == g for _, w, g in pairs) / max(n, 1), dict(sorted(by_kind.items())),
                            dict(Counter((kind, got) for kind, _, got in pairs)))


def final_answer_accuracy(result: CuratedAgreement) -> tuple[int, int]:
    """(right, total) over final answers alone."""
    finals = [(r, t) for k, (r, t) in result.by_kind.items() if k.startswith("final:")]
    return sum(r for r, _ in finals), sum(t for _, t in finals)


def format_curated(result: CuratedAgreement) -> str:
    lines = [f"| curated {result.split} split | n | agreement | " + " | ".join(LABELS) + " |",
             "|---|---:|---:|" + "---:|" * len(LABELS)]
    for kind, (right, total) in result.by_kind.items():
        cells = [str(result.confusion.get((kind, label), 0)) for label in LABELS]
        lines.append(f"| {kind} | {total} | {100 * right / total:.1f}% | " + " | ".join(cells) + " |")
    right, total = final_answer_accuracy(result)
    lines.append(f"| final answers | {total} | {100 * right / max(total, 1):.1f}% |" + " |" * len(LABELS))
    lines.append(f"| **all** | {result.n} | {100 * result.accuracy:.1f}% |" + " |" * len(LABELS))
    return "\n".join(lines)


def main_xstest(paths: list[str]) -> int:
    """`pushback classify --xstest [CSV ...]`: agreement with XSTest's human labels per family, and with
    the curated test split."""
    files = [Path(p) for p in paths] or default_files()
    if not files:
        print(f"error: no XSTest completion files given and none in {XSTEST_DIR}")
        return 1
    try:
        results = score_files(files)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}")
        return 1
    print(format_table(results))
    print()
    print("\n\n".join(format_confusion(r) for r in results))
    if curated_files():
        print()
        print(format_curated(curated_agreement("test")))
        rules = curated_agreement("test", use_learned=False)
        right, total = final_answer_accuracy(rules)
        print(f"rules alone (no learned layer): final answers {100 * right / max(total, 1):.1f}%, "
              f"all {100 * rules.accuracy:.1f}%")
    return 0
