"""What a rate measured through an imperfect labeller may really be: error bands from its held-out confusion.

A report counts how often a model's answers were *labelled* friction (or refusal). If the labeller finds
real friction with probability `s` (sensitivity) and calls plain help friction with probability `f` (false
alarm), a labelled rate `q` comes from a true rate `p` with `q = s*p + f*(1 - p)`, so
`p = (q - f) / (s - f)` (Rogan & Gladen, 1978). The labeller's `s` and `f` differ from one kind of model to
another, so each held-out source of `evaluation/loso.json` (the leave-one-source-out validation) gives its
own correction; the band runs from the lowest to the highest corrected rate, each taken at both ends of the
95% Wilson interval of `q` (the rate's own sampling error). A source whose `s - f` is below MIN_SEPARATION
says too little to correct with and is left out. Friction rates use the friction-vs-comply confusion of the
sources with five-label gold; the over-refusal rate uses the refusal-vs-comply confusion of every source.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_SEPARATION = 0.2
Z95 = 1.959964


@dataclass(frozen=True)
class Confusion:
    source: str
    sensitivity: float  # P(labelled positive | positive)
    false_alarm: float  # P(labelled positive | negative)


@dataclass(frozen=True)
class Labeller:
    """The instrument a report names: what labelled the rows, and how it fared on held-out sources."""

    name: str
    fingerprint: str | None  # of the weights that labelled
    validated: dict[str, Any] | None  # the loso.json summary, None when missing
    stale: bool  # loso.json measured other weights than those that labelled
    friction: tuple[Confusion, ...]
    refusal: tuple[Confusion, ...]

    def describe(self) -> str:
        if not self.validated:
            return f"{self.name}: no leave-one-source-out validation found (run `pushback classify --validate`)"
        v = self.validated
        text = (f"{self.name}; leave-one-source-out agreement with people over {v['sources']} held-out sources: "
                f"comply vs refusal {100 * v['binary_mean']:.1f}% mean, {100 * v['binary_worst']:.1f}% worst "
                f"({v['binary_worst_source']}); five labels {100 * v['labels_mean']:.1f}% mean")
        return text + (" (STALE: validated on other weights than these)" if self.stale else "")

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "fingerprint": self.fingerprint, "stale": self.stale,
                "leave_one_source_out": self.validated,
                "band_method": "Rogan-Gladen correction per held-out source, over the Wilson 95% interval; "
                               "evaluation/bands.py"}


def _rate(counts: dict[str, int], positive: str, negative: str) -> tuple[float, float] | None:
    hit, miss = counts.get(f"{positive}>{positive}", 0), counts.get(f"{positive}>{negative}", 0)
    alarm, clear = counts.get(f"{negative}>{positive}", 0), counts.get(f"{negative}>{negative}", 0)
    if not hit + miss or not alarm + clear:
        return None
    return hit / (hit + miss), alarm / (alarm + clear)


def offline_labeller(loso_file: Path | None = None, weights_file: Path | None = None) -> Labeller:
    """The offline classifier as a labeller, with the confusions saved by `pushback classify --validate`."""
    from evaluation.learned import WEIGHTS_FILE, WEIGHTS_PROVENANCE
    from evaluation.validation import LOSO_FILE
    from pushback.provenance import fingerprint_file

    loso_file, weights_file = loso_file or LOSO_FILE, weights_file or WEIGHTS_FILE
    fingerprint = fingerprint_file(weights_file) if weights_file.exists() else None
    name = f"offline classifier (`pushback classify`, weights {fingerprint})"
    try:
        saved = json.loads(loso_file.read_text(encoding="utf-8"))
        sources = saved["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        return Labeller(name, fingerprint, None, False, (), ())
    friction, refusal = [], []
    for s in sources:
        if (rates := _rate(s.get("friction", {}), "friction", "comply")) is not None:
            friction.append(Confusion(s["source"], *rates))
        if (rates := _rate(s.get("refusal", {}), "refusal", "comply")) is not None:
            refusal.append(Confusion(s["source"], *rates))
    worst = min(sources, key=lambda s: s["binary"])
    labels = [s["labels"] for s in sources if s.get("labels") is not None]
    validated = {"sources": len(sources), "binary_mean": sum(s["binary"] for s in sources) / len(sources),
                 "binary_worst": worst["binary"], "binary_worst_source": worst["source"],
                 "labels_mean": sum(labels) / len(labels) if labels else None,
                 "per_source": {s["source"]: {"binary": s["binary"], "three": s.get("three"), "labels": s.get("labels")}
                                for s in sources}}
    measured = (saved.get("provenance") or {}).get("fingerprints", {}).get(WEIGHTS_PROVENANCE)
    return Labeller(name, fingerprint, validated, measured != fingerprint, tuple(friction), tuple(refusal))


def wilson(rate: float, n: int) -> tuple[float, float]:
    if n <= 0:
        return 0.0, 1.0
    centre = (rate + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(rate * (1 - rate) / n + Z95 ** 2 / (4 * n * n)) / (1 + Z95 ** 2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def band(rate: float | None, n: int, confusions: tuple[Confusion, ...]) -> tuple[float, float] | None:
    """The range of true rates consistent with a labelled `rate` over `n` rows (None without a usable source)."""
    usable = [c for c in confusions if c.sensitivity - c.false_alarm >= MIN_SEPARATION]
    if rate is None or not usable:
        return None
    low, high = wilson(rate, n)
    corrected = [min(1.0, max(0.0, (q - c.false_alarm) / (c.sensitivity - c.false_alarm)))
                 for c in usable for q in (low, high)]
    return min(corrected), max(corrected)
