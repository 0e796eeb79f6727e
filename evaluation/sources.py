"""Responses labelled by people: what the classifier is fitted on and validated against.

Every source is one model family or one author (so leaving one out measures how the classifier holds on
a family it has not seen):

| source | rows | gold |
|---|---|---|
| `xstest_gpt4`, `xstest_llama2new`, `xstest_llama2orig` | 450 each | XSTest's three classes (`final_label`) |
| `chatgpt` | 721 | a tone, mapped: complied/disclaimed -> comply, rejected/redirected -> refuse, contradicted -> push_back |
| `curated` | train split for fitting, test split for scoring | final answer -> `expected`, baseline answer -> comply |
| `five_labels_dev` ... `five_labels_dev4` | 250 each | five labels, hand-written, each set by its own hand and brief (`data/labelled/`) |
| `five_labels_dev5`, `five_labels_dev6` | 200 each | the same, most prompts asking for a verdict or a view (round 5) |

The test sets (`TEST_SETS`: `five_labels_test`, `five_labels_test2`) are loaded only to be scored by the
shipped classifier, never to fit or choose anything.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from evaluation.xstest import COMPLIANCE, XSTEST_LABELS
from pushback.files import FileProblem, iter_jsonl
from pushback.paths import DATA_DIR, SUITES_DIR
from pushback.records import BEHAVIOURS

XSTEST_DIR = SUITES_DIR / "xstest"
CHATGPT_DIR = SUITES_DIR / "chatgpt_refusals"
LABELLED_DIR = DATA_DIR / "labelled"
XSTEST_FAMILIES = ("gpt4", "llama2new", "llama2orig")
DEV_SETS = ("five_labels_dev", "five_labels_dev2", "five_labels_dev3", "five_labels_dev4", "five_labels_dev5",
            "five_labels_dev6")
SOURCES = (*(f"xstest_{f}" for f in XSTEST_FAMILIES), "chatgpt", "curated", *DEV_SETS)
# Scored only with the shipped classifier, never fitted or chosen on (read at the end of rounds 3 and 5);
# `five_labels_test` was also read in the classifier's first round, `five_labels_test2` was written after it
# and is the held-out five-label figure.
TEST_SETS = ("five_labels_test", "five_labels_test2")
# Reuter & Schulze's tones in the records' taxonomy (a disclaimer that still delivers is compliance;
# redirecting to alternatives without doing what was asked is a refusal, as XSTest defines it).
TONES = {"complied": "comply", "disclaimed": "comply", "rejected": "refuse", "redirected": "refuse",
         "contradicted": "push_back"}


@dataclass(frozen=True)
class Example:
    source: str
    id: str
    prompt: str
    response: str
    label: str | None  # one of BEHAVIOURS, where the source has five-label gold
    xstest: str | None  # one of XSTEST_LABELS, where the source has XSTest gold
    fit: bool = True  # used for fitting when its source is not the one held out
    score: bool = True  # scored when its source is held out

    @property
    def refusal(self) -> bool:
        """Comply vs refusal, in the source's own terms (XSTest classes where it has them)."""
        return self.xstest != COMPLIANCE if self.xstest else self.label == "refuse"


def read_xstest(family: str, path: Path | None = None) -> list[Example]:
    path = path or XSTEST_DIR / f"xstest_v2_completions_{family}.csv"
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        for number, row in enumerate(csv.DictReader(f), start=2):
            label = (row.get("final_label") or "").strip()
            if label not in XSTEST_LABELS:
                raise FileProblem(f"{path}:{number}: final_label: {label!r} is not one of {', '.join(XSTEST_LABELS)}")
            rows.append(Example(f"xstest_{family}", row["id"], row["prompt"], row["completion"] or "", None, label))
    return rows


def read_chatgpt(folder: Path = CHATGPT_DIR) -> list[Example]:
    rows = []
    for name in ("political_figures", "nyp"):
        path = folder / f"{name}.json"
        for i, item in enumerate(json.loads(path.read_text(encoding="utf-8"))):
            label = TONES.get(item.get("tone"))
            if label is None:
                raise FileProblem(f"{path}: item {i}: tone: {item.get('tone')!r} is not one of {', '.join(TONES)}")
            xstest = {"comply": COMPLIANCE, "refuse": XSTEST_LABELS[1]}.get(label)
            rows.append(Example("chatgpt", f"{name}-{i}", item["prompt"], item["response"], label, xstest))
    return rows


def read_curated() -> list[Example]:
    """Train split for fitting, test split for scoring (the split every stage uses)."""
    from pushback.splits import curated_split

    train, test = curated_split()
    rows = []
    for records, fit in ((train, True), (test, False)):
        for r in records:
            rows.append(Example("curated", f"{r.id}:final", r.user_input, r.final_answer, r.expected, None, fit, not fit))
            rows.append(Example("curated", f"{r.id}:baseline", r.user_input, r.baseline_answer, "comply", None, fit,
                                not fit))
    return rows


def read_five_labels(name: str, path: Path | None = None) -> list[Example]:
    path = path or LABELLED_DIR / f"{name}.jsonl"
    rows = []
    for number, row in enumerate(iter_jsonl(path), start=1):
        if row.get("label") not in BEHAVIOURS:
            raise FileProblem(f"{path}:{number}: label: {row.get('label')!r} is not one of {', '.join(BEHAVIOURS)}")
        rows.append(Example(name, str(row.get("id", number)), row.get("prompt") or "", row["response"], row["label"], None))
    return rows


@lru_cache(maxsize=None)
def load(source: str) -> tuple[Example, ...]:
    if source.startswith("xstest_"):
        return tuple(read_xstest(source.removeprefix("xstest_")))
    if source == "chatgpt":
        return tuple(read_chatgpt())
    if source == "curated":
        return tuple(read_curated())
    if source in DEV_SETS + TEST_SETS:
        return tuple(read_five_labels(source))
    raise ValueError(f"unknown labelled source {source!r}; known: {', '.join(SOURCES + TEST_SETS)}")
