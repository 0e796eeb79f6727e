"""The learned layer's fitting core: labelled rows read once, a sparse design over every source, and a
deterministic multinomial logistic regression on partial labels.

Gold that names fewer than five labels is used as what it says: an XSTest full compliance rules out only
`refuse` (it may be a correction or a caveat), an XSTest refusal (full or partial) means `refuse`. The loss
is the likelihood of the allowed set ("partial labels"), each source weighing the same.

Both the command that writes the weights (`evaluation.fit_learned`) and leave-one-source-out validation
(`evaluation.validation`) fit through here; this module imports neither.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from evaluation import learned
from evaluation.classify import evidence_of
from evaluation.sources import SOURCES, Example, load
from evaluation.xstest import COMPLIANCE, PARTIAL_REFUSAL, REFUSAL_CLASSES
from pushback.records import BEHAVIOURS

CLASSES = BEHAVIOURS


@dataclass(frozen=True)
class FitSettings:
    """Fit-time choices, made by the mean agreement over held-out sources (`--select`)."""

    # Round 5 (eleven sources): 3e-3 / 1e-3 / 3e-4 / 1e-4 / 3e-5 read 91.32 / 91.50 / 91.64 / 91.68 / 91.65;
    # 3e-4 .. 3e-5 tie (under a tenth), and the strongest of the tie is kept (evaluation/README.md, Round 5).
    l2: float = 3e-4  # on cue features
    l2_ngrams: float = 3e-4  # on n-grams
    min_answers: int = 3  # an n-gram is kept when it occurs in at least this many fitting answers ...
    min_sources: int = 2  # ... of at least this many sources (one source's style is not a general cue)
    balance: bool = True  # every source weighs the same in the loss, whatever its size ...
    # ... times this factor (absent: 1). A source weighted 0 is still scored when held out, never fitted on:
    # the curated set (one generator's style, baseline answers labelled `comply` by construction) lowered
    # every other held-out source when fitted on (evaluation/README.md).
    source_weights: tuple[tuple[str, float], ...] = (("curated", 0.0),)
    iterations: int = 150
    partial_l2: float = 1e-2  # the partial-refusal model (`fit_partial`): 3e-3 / 1e-2 / 3e-2 read 90.95 / 90.98 / 90.91 (round 4)
    reading: learned.Settings = field(default_factory=learned.Settings)


SETTINGS = FitSettings()


@dataclass(frozen=True)
class Row:
    """One labelled answer, read once."""

    example: Example
    evidence: learned.Evidence | None  # None: no answer at all (always `refuse`)
    cues: dict[str, float]
    allowed: tuple[int, ...]  # indices into CLASSES the gold allows


def allowed_labels(example: Example) -> tuple[int, ...]:
    if example.label:
        return (CLASSES.index(example.label),)
    if example.xstest == COMPLIANCE:
        return tuple(i for i, c in enumerate(CLASSES) if c != "refuse")
    return (CLASSES.index("refuse"),)


@lru_cache(maxsize=None)
def rows_of(source: str) -> tuple[Row, ...]:
    out = []
    for example in load(source):
        evidence = evidence_of(example.response, example.prompt)
        cues = learned.cue_features(evidence) if evidence else {}
        out.append(Row(example, evidence, cues, allowed_labels(example)))
    return tuple(out)


@dataclass(frozen=True)
class _Design:
    """Every labelled answer as a sparse row over one global feature list (cue features first, then every
    n-gram any answer has); a fit keeps the n-grams its own fitting rows support."""

    names: list[str]
    rows: dict[str, tuple[Any, Any, Any]]  # source -> CSR (indptr, global columns, values)


@lru_cache(maxsize=4)
def _design(reading: learned.Settings) -> _Design:
    import numpy as np

    names = list(learned.CUE_FEATURES)
    index = {name: i for i, name in enumerate(names)}
    rows = {}
    for source in SOURCES:
        indptr, columns, values = [0], [], []
        for row in rows_of(source):
            # In column order: the prompt's cues come from a set, whose order changes from run to run, and a
            # different order of the same sums would give a (slightly) different fit.
            for name, value in sorted(row.cues.items(), key=lambda item: index[item[0]]):
                columns.append(index[name])
                values.append(value)
            grams = learned.ngrams(row.evidence.answer, row.evidence.prompt, reading) if row.evidence else ()
            for gram in sorted(grams):
                if gram not in index:
                    index[gram] = len(names)
                    names.append(gram)
                columns.append(index[gram])
                values.append(1.0)
            indptr.append(len(columns))
        rows[source] = (np.asarray(indptr), np.asarray(columns, dtype=np.int64), np.asarray(values))
    return _Design(names, rows)


def _gather(design: _Design, items: Sequence[tuple[str, int]], keep: Any):
    """CSR parts of `items` with global columns mapped through `keep` (-1: dropped)."""
    import numpy as np

    indptr, columns, values = [0], [], []
    for source, i in items:
        ptr, cols, vals = design.rows[source]
        mapped = keep[cols[ptr[i]:ptr[i + 1]]]
        kept = mapped >= 0
        columns.append(mapped[kept])
        values.append(vals[ptr[i]:ptr[i + 1]][kept])
        indptr.append(indptr[-1] + int(kept.sum()))
    return (np.asarray(indptr), np.concatenate(columns) if columns else np.zeros(0, dtype=np.int64),
            np.concatenate(values) if values else np.zeros(0))


def _kept_columns(design: _Design, fitting: Sequence[tuple[str, int]], settings: FitSettings):
    """Global column -> fitted column (-1 for n-grams too rare in the fitting rows, or seen in too few sources)."""
    import numpy as np

    width = len(design.names)
    answers = np.zeros(width, dtype=np.int64)
    sources = np.zeros(width, dtype=np.int64)
    by_source: dict[str, list[int]] = {}
    for source, i in fitting:
        by_source.setdefault(source, []).append(i)
    for source, members in by_source.items():
        ptr, cols, _ = design.rows[source]
        present = np.concatenate([cols[ptr[i]:ptr[i + 1]] for i in members])
        counts = np.bincount(present, minlength=width)
        answers += counts
        sources += counts > 0
    cue = np.arange(width) < len(learned.CUE_FEATURES)
    keep = cue | ((answers >= settings.min_answers) & (sources >= settings.min_sources))
    return np.where(keep, np.cumsum(keep) - 1, -1)


def _scores(parts, weights, bias):
    import numpy as np

    indptr, columns, values = parts
    out = np.tile(bias, (len(indptr) - 1, 1))
    contributions = values[:, None] * weights[columns]
    nonempty = indptr[:-1] < indptr[1:]
    if contributions.size:
        sums = np.add.reduceat(contributions, np.minimum(indptr[:-1], len(columns) - 1))
        out[nonempty] += sums[nonempty]
    return out


def fit(fitting: Sequence[tuple[str, int]], settings: FitSettings = SETTINGS) -> learned.Model:
    """Multinomial logistic regression on partial labels: weighted mean -log P(allowed set) + l2/2 |W|^2 (n-gram
    rows l2_ngrams; bias not penalised), by L-BFGS from zero with a fixed budget: the same rows give the same
    weights."""
    import numpy as np

    factor = dict(settings.source_weights)
    kept = set(fitted_sources([source for source, _ in fitting], settings))
    fitting = [(source, i) for source, i in fitting if source in kept]
    design = _design(settings.reading)
    keep = _kept_columns(design, fitting, settings)
    names = [name for name, k in zip(design.names, keep) if k >= 0]
    parts = _gather(design, fitting, keep)
    indptr, columns, values = parts
    n, width, k = len(fitting), len(names), len(CLASSES)
    mask = np.zeros((n, k))
    for r, (source, i) in enumerate(fitting):
        mask[r, list(rows_of(source)[i].allowed)] = 1.0
    counts: dict[str, int] = {}
    for source, _ in fitting:
        counts[source] = counts.get(source, 0) + 1
    weight = np.asarray([(1.0 / counts[s] if settings.balance else 1.0) * factor.get(s, 1.0) for s, _ in fitting])
    weight /= weight.sum()
    row_of = np.repeat(np.arange(n), np.diff(indptr))
    penalty = np.full((width, 1), settings.l2_ngrams)
    penalty[:len(learned.CUE_FEATURES)] = settings.l2

    def loss_and_gradient(theta):
        w, b = theta[:-k].reshape(width, k), theta[-k:]
        logits = _scores(parts, w, b)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        kept = (p * mask).sum(axis=1)
        loss = -np.sum(weight * np.log(kept + 1e-12)) + 0.5 * np.sum(penalty * w * w)
        d = weight[:, None] * (p - p * mask / (kept[:, None] + 1e-12))
        grad_w = np.stack([np.bincount(columns, weights=values * d[row_of, c], minlength=width) for c in range(k)], axis=1)
        return loss, np.concatenate([(grad_w + penalty * w).ravel(), d.sum(axis=0)])

    theta = _lbfgs(loss_and_gradient, np.zeros(width * k + k), settings.iterations)
    return learned.Model(CLASSES, settings.reading, {name: i for i, name in enumerate(names)},
                         theta[:-k].reshape(width, k), theta[-k:])


def fit_partial(fitting: Sequence[tuple[str, int]], settings: FitSettings = SETTINGS) -> learned.PartialModel:
    """Partial vs full refusal, on the refusals of the fitting rows whose people told the two apart (the XSTest
    sources; other sources' refusals carry no such gold): logistic regression, mean log-loss + partial_l2/2 |w|^2
    (bias not penalised), L-BFGS from zero with the same fixed budget."""
    import numpy as np

    items = [(s, i) for s, i in fitting if s.startswith("xstest_") and rows_of(s)[i].evidence
             and rows_of(s)[i].example.xstest in REFUSAL_CLASSES]
    if not items:  # no people told partial from full: every refusal reads as full
        return learned.PartialModel(settings.reading, {}, np.zeros(0), -50.0)
    target = np.asarray([float(rows_of(s)[i].example.xstest == PARTIAL_REFUSAL) for s, i in items])
    design = _design(settings.reading)
    keep = _kept_columns(design, items, settings)
    names = [name for name, k in zip(design.names, keep) if k >= 0]
    indptr, columns, values = _gather(design, items, keep)
    n, width, l2 = len(items), len(names), settings.partial_l2
    row_of = np.repeat(np.arange(n), np.diff(indptr))

    def loss_and_gradient(theta):
        w, b = theta[:-1], theta[-1]
        p = 1.0 / (1.0 + np.exp(-(np.bincount(row_of, weights=values * w[columns], minlength=n) + b)))
        loss = -np.mean(target * np.log(p + 1e-12) + (1 - target) * np.log(1 - p + 1e-12)) + 0.5 * l2 * np.sum(w * w)
        d = (p - target) / n
        return loss, np.concatenate([np.bincount(columns, weights=values * d[row_of], minlength=width) + l2 * w,
                                     [d.sum()]])

    theta = _lbfgs(loss_and_gradient, np.zeros(width + 1), settings.iterations)
    return learned.PartialModel(settings.reading, {name: i for i, name in enumerate(names)}, theta[:-1], float(theta[-1]))


def _lbfgs(function, theta, iterations: int, memory: int = 10):
    """Plain L-BFGS with a backtracking (Armijo) line search; deterministic: its dot products are numpy's
    pairwise sums, not BLAS calls whose threads may add in another order on another run."""
    import numpy as np

    def dot(a, b) -> float:
        return float(np.sum(a * b))

    loss, grad = function(theta)
    history: list[tuple[Any, Any, float]] = []
    for _ in range(iterations):
        direction = -grad
        alphas = []
        for s, y, rho in reversed(history):
            alpha = rho * dot(s, direction)
            direction = direction - alpha * y
            alphas.append(alpha)
        if history:
            s, y, _ = history[-1]
            direction = direction * (dot(s, y) / dot(y, y))
        for (s, y, rho), alpha in zip(history, reversed(alphas)):
            direction = direction + s * (alpha - rho * dot(y, direction))
        slope = dot(grad, direction)
        if slope >= 0:  # not a descent direction: start again from the gradient
            history, direction, slope = [], -grad, -dot(grad, grad)
        step = 1.0 if history else 1.0 / max(1.0, float(np.abs(grad).max()))
        while True:
            candidate = theta + step * direction
            new_loss, new_grad = function(candidate)
            if new_loss <= loss + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s, y = candidate - theta, new_grad - grad
        if dot(s, y) > 1e-12:
            history = (history + [(s, y, 1.0 / dot(s, y))])[-memory:]
        theta, loss, grad = candidate, new_loss, new_grad
        if np.abs(grad).max() < 1e-7:
            break
    return theta


def fitted_sources(sources: Sequence[str], settings: FitSettings = SETTINGS) -> list[str]:
    """The sources a fit learns from: those not weighted 0."""
    factor = dict(settings.source_weights)
    return list(dict.fromkeys(s for s in sources if factor.get(s, 1.0) > 0))


def fitting_rows(sources: Sequence[str]) -> list[tuple[str, int]]:
    return [(s, i) for s in sources for i, r in enumerate(rows_of(s)) if r.example.fit]


def scoring_rows(source: str) -> list[tuple[str, int]]:
    return [(source, i) for i, r in enumerate(rows_of(source)) if r.example.score]


def predict(model: learned.Model, items: Sequence[tuple[str, int]],
            partial: learned.PartialModel | None = None) -> list[tuple[str, str]]:
    """(label, xstest_label) of each item, as `evaluation.classify` would give them."""
    from evaluation.classify import decide

    out = []
    for source, i in items:
        row = rows_of(source)[i]
        out.append(decide(row.evidence, model, partial) if row.evidence else ("refuse", "2_full_refusal"))
    return out
