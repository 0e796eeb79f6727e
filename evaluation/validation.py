"""Agreement with people, measured the only honest way for an instrument meant for unseen models: leave
one source out.

For each labelled source of `evaluation.sources` (three XSTest model families, ChatGPT, the curated
set, the hand-written development set): fit the learned layer on the others, label the held-out one,
compare with its people. Reported per source: comply vs refusal (every source), XSTest's three
classes (where the source has them), the five labels (where it has them), and XSTest's own string match
on the same rows. The layer's settings were chosen by the MEAN of these held-out figures
(`python -m evaluation.fit_learned --select`), never by one source's errors.

`pushback classify --validate` prints the table and saves it, with each source's confusion, as
`evaluation/loso.json`: the error bands of `pushback eval` reports are computed from it
(`evaluation.bands`). `pushback classify --validate --test-set` scores the shipped classifier on the
five-label test sets (`evaluation.sources.TEST_SETS`) and saves the same shape as
`evaluation/test_sets.json`.
"""
from __future__ import annotations

import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evaluation.sources import SOURCES, TEST_SETS, Example
from evaluation.xstest import COMPLIANCE, string_match
from pushback.records import FRICTION_BEHAVIOURS

LOSO_FILE = Path(__file__).with_name("loso.json")
TEST_SETS_FILE = Path(__file__).with_name("test_sets.json")  # the shipped classifier on the test sets


@dataclass(frozen=True)
class Agreement:
    source: str
    n: int
    binary: float  # comply vs refusal
    three: float | None  # XSTest's three classes
    labels: float | None  # five labels (on rows that have them)
    string_match: float  # XSTest's string match, comply vs refusal, same rows
    string_match_three: float | None
    refusal: dict[str, int]  # "gold>predicted" (refusal / comply) counts
    friction: dict[str, int]  # the same for friction vs comply, on rows with five-label gold
    confusion: dict[str, int]  # "gold>predicted" on the source's richest gold (labels, else XSTest classes)

    @property
    def headline(self) -> float:
        """The figure settings are chosen by: the mean of this source's available agreements."""
        figures = [f for f in (self.binary, self.three, self.labels) if f is not None]
        return sum(figures) / len(figures)


def agreement(source: str, examples: list[Example], predicted: list[tuple[str, str]]) -> Agreement:
    n = len(examples)
    said_refusal = [(x != COMPLIANCE) if e.xstest else (label == "refuse") for e, (label, x) in zip(examples, predicted)]
    binary = sum(e.refusal == r for e, r in zip(examples, said_refusal)) / n
    matched = [string_match(e.response) for e in examples]
    string_binary = sum(e.refusal == (m != COMPLIANCE) for e, m in zip(examples, matched)) / n
    xstest = [(e, x, m) for e, (_, x), m in zip(examples, predicted, matched) if e.xstest]
    three = string_three = None
    if xstest and any(e.source.startswith("xstest_") for e, _, _ in xstest):
        three = sum(e.xstest == x for e, x, _ in xstest) / len(xstest)
        string_three = sum(e.xstest == m for e, _, m in xstest) / len(xstest)
    labelled = [(e, label) for e, (label, _) in zip(examples, predicted) if e.label]
    labels = sum(e.label == label for e, label in labelled) / len(labelled) if labelled else None

    def side(refusal: bool) -> str:
        return "refusal" if refusal else "comply"

    refusal = Counter(f"{side(e.refusal)}>{side(r)}" for e, r in zip(examples, said_refusal))
    friction = Counter(f"{_friction(e.label)}>{_friction(label)}" for e, label in labelled)
    confusion = Counter(f"{e.label}>{label}" for e, label in labelled) if labelled else \
        Counter(f"{e.xstest}>{x}" for e, x, _ in xstest)
    return Agreement(source, n, binary, three, labels, string_binary, string_three, dict(sorted(refusal.items())),
                     dict(sorted(friction.items())), dict(sorted(confusion.items())))


def _friction(label: str) -> str:
    return "friction" if label in FRICTION_BEHAVIOURS else "comply"


def leave_one_source_out(settings: Any = None, sources: tuple[str, ...] = SOURCES,
                         progress: bool = False) -> list[Agreement]:
    """Fit on all sources but one, score that one; once per source."""
    from evaluation.fitting import SETTINGS, fit, fit_partial, fitting_rows, predict, rows_of, scoring_rows

    results = []
    for held_out in sources:
        if progress:
            print(f"  fitting without {held_out} ...", file=sys.stderr, flush=True)
        fitting = fitting_rows([s for s in sources if s != held_out])
        model = fit(fitting, settings or SETTINGS)
        partial = fit_partial(fitting, settings or SETTINGS)
        items = scoring_rows(held_out)
        examples = [rows_of(s)[i].example for s, i in items]
        results.append(agreement(held_out, examples, predict(model, items, partial)))
    return results


def shipped_agreement(source: str) -> Agreement:
    """The shipped classifier on one source (for the five-label test set, which no fit ever sees)."""
    from evaluation.classify import classify
    from evaluation.sources import load

    examples = [e for e in load(source) if e.score]
    verdicts = [classify(e.response, e.prompt) for e in examples]
    return agreement(source, examples, [(v.label, v.xstest_label) for v in verdicts])


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def summary(results: list[Agreement]) -> str:
    xstest = [r for r in results if r.source.startswith("xstest_")]
    parts = [f"mean {100 * _mean([r.headline for r in results]):.2f}",
             f"comply-vs-refusal mean {100 * _mean([r.binary for r in results]):.1f} worst "
             f"{100 * min(r.binary for r in results):.1f}"]
    if xstest:
        parts.append(f"XSTest {100 * _mean([r.binary for r in xstest]):.1f}/{100 * _mean([r.three for r in xstest]):.1f}")
    parts.append(" ".join(f"{r.source}={100 * r.binary:.1f}/{_pct(r.three)}/{_pct(r.labels)}" for r in results))
    return "; ".join(parts)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def format_table(results: list[Agreement]) -> str:
    head = ["held-out source", "n", "comply vs refusal", "string match", "three classes", "string match (3)",
            "five labels"]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.source} | {r.n} | {_pct(r.binary)} | {_pct(r.string_match)} | {_pct(r.three)} | "
                     f"{_pct(r.string_match_three)} | {_pct(r.labels)} |")
    worst = min(results, key=lambda r: r.binary)
    lines.append(f"| **worst** ({worst.source}) | | {_pct(worst.binary)} | {_pct(worst.string_match)} | | | |")
    groups = [("mean, all sources", results), ("mean, XSTest sources", [r for r in results if r.three is not None])]
    for name, group in groups:
        if group:
            lines.append(f"| **{name}** | {sum(r.n for r in group)} | {_pct(_mean([r.binary for r in group]))} | "
                         f"{_pct(_mean([r.string_match for r in group]))} | {_pct(_mean([r.three for r in group]))} | "
                         f"{_pct(_mean([r.string_match_three for r in group]))} | {_pct(_mean([r.labels for r in group]))} |")
    return "\n".join(lines)


def format_confusion(result: Agreement) -> str:
    cells = ", ".join(f"{k.replace('>', ' as ')} {v}" for k, v in result.confusion.items() if k.split(">")[0] != k.split(">")[1])
    return f"{result.source}: errors (gold as predicted): {cells or 'none'}"


def save(results: list[Agreement], path: Path = LOSO_FILE) -> None:
    from evaluation.learned import weights_fingerprint
    from pushback.files import write_json
    from pushback.provenance import provenance

    write_json(path, {"sources": [asdict(r) for r in results], "readme": readme_rows(results),
                      "provenance": provenance(weights_fingerprint())})


def readme_rows(results: list[Agreement]) -> list[dict[str, str]]:
    """README rows: agreement with people on each source the classifier was NOT fitted on (leave one source
    out, string match beside it), and on the five-label test sets (the shipped classifier, never tuned on)."""
    rows = []
    held_out = [r for r in results if r.source not in TEST_SETS]
    if held_out:
        xstest = [r for r in held_out if r.three is not None]
        worst = min(held_out, key=lambda r: r.binary)
        cells = [f"{r.source} {_pct(r.binary)} (string match {_pct(r.string_match)})" for r in held_out]
        figure = "; ".join(cells) + f"; worst {worst.source}"
        if xstest:
            figure += (f"; XSTest mean {_pct(_mean([r.binary for r in xstest]))} comply vs refusal, "
                       f"{_pct(_mean([r.three for r in xstest]))} three classes (string match "
                       f"{_pct(_mean([r.string_match_three for r in xstest]))})")
        labelled = [r for r in held_out if r.labels is not None]
        if labelled:
            figure += f"; five labels, mean of {len(labelled)} sources {_pct(_mean([r.labels for r in labelled]))}"
        rows.append({"what": f"behaviour classifier vs people, leave one labelled source out ({len(held_out)} "
                             "sources: fitted on the others, scored on it), comply vs refusal", "figure": figure})
    tests = [r for r in results if r.source in TEST_SETS]
    if tests:
        rows.append({"what": "behaviour classifier vs people on the hand-written five-label test sets (the shipped "
                             "classifier; never fitted or tuned on), five labels",
                     "figure": "; ".join(f"{r.source} ({r.n}) {_pct(r.labels)} (comply vs refusal {_pct(r.binary)}, "
                                         f"string match {_pct(r.string_match)})" for r in tests)})
    return rows


def main_validate(test_set: bool = False) -> int:
    """`pushback classify --validate [--test-set]`."""
    from pushback.files import FileProblem

    try:
        if test_set:
            results = [shipped_agreement(name) for name in TEST_SETS]
            print("five-label test sets (never fitted or tuned on; the shipped classifier):")
        else:
            print(f"leave one source out over {len(SOURCES)} sources (fitting {len(SOURCES)} times) ...",
                  file=sys.stderr)
            results = leave_one_source_out(progress=True)
    except (OSError, FileProblem, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_table(results))
    print()
    print("\n".join(format_confusion(r) for r in results))
    path = TEST_SETS_FILE if test_set else LOSO_FILE
    try:
        save(results, path)
    except OSError as e:
        print(f"error: cannot save {path} ({e.strerror})", file=sys.stderr)
        return 1
    print(f"\nsaved: {path}", file=sys.stderr)
    return 0
