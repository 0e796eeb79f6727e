"""Refit the learned layer (`evaluation.learned`) from the tuning data, deterministically.

    python -m evaluation.fit_learned --fit     # refit, rewrite learned_weights.json
    python -m evaluation.fit_learned --check   # refit and compare with the shipped file
    python -m evaluation.fit_learned --cv      # grouped 5-fold cross-validation on the tuning data
    python -m evaluation.fit_learned --show    # the heaviest weights, by name

Fitting reads the rules' evidence (`evaluation.classify`) and the tuning data (`evaluation.validation`);
scoring at run time needs only `evaluation.learned` and its weights file.
"""
from __future__ import annotations

import argparse
import json
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evaluation.classify import evidence_of
from evaluation.learned import (
    CLASSES,
    FEATURES,
    ITERATIONS,
    L2,
    LENGTH_FLOOR,
    Model,
    OPENING_SENTENCES,
    PLAIN_REQUEST_TYPES,
    TOLERANCE,
    WEIGHTS_FILE,
    dumps,
    features,
    load_model,
    model_from_dict,
    model_to_dict,
)
from evaluation.validation import TUNING_FAMILY, XSTEST_DIR, read_completions


@dataclass(frozen=True)
class Example:
    group: str  # twin group: a record and its benign look-alikes share one, so folds never split them
    kind: str  # "final:hedge", "baseline:comply"
    target: str
    values: dict[int, float]


def tuning_examples() -> list[Example]:
    """The tuning data as examples: the curated TRAIN split (final answers and their openings -> `expected`,
    baseline answers -> `comply`) and the `gpt4` XSTest completions labelled full compliance on plain
    requests (-> `comply`).
    Answers the rules read as a decline are left out (the layer is never asked about them), and so are
    final answers whose `expected` is `refuse` (not one of this layer's labels)."""
    from pushback.splits import curated_split, twin_groups

    train, _ = curated_split()
    group_of = {r.id: group[0].id for group in twin_groups(train) for r in group}
    rows = []  # (group, kind, target, answer, prompt)
    for r in train:
        rows.append((group_of[r.id], f"final:{r.expected}", r.expected, r.final_answer, r.user_input))
        rows.append((group_of[r.id], "baseline:comply", "comply", r.baseline_answer, r.user_input))
        opening = _opening(r.final_answer, r.user_input)
        if opening:
            rows.append((group_of[r.id], f"opening:{r.expected}", r.expected, opening, r.user_input))
    for c in read_completions(XSTEST_DIR / f"xstest_v2_completions_{TUNING_FAMILY}.csv"):
        if c.human == "1_full_compliance" and c.type in PLAIN_REQUEST_TYPES:
            rows.append((f"xstest:{c.id}", f"{TUNING_FAMILY}:comply", "comply", c.completion, c.prompt))
    return [example for row in rows if (example := _example(*row)) is not None]


def _opening(answer: str, prompt: str) -> str | None:
    """The answer up to its OPENING_SENTENCES-th substantive sentence (None when that is all of it)."""
    evidence = evidence_of(answer, prompt)
    substantive = evidence.reading.substantive() if evidence else []
    if len(substantive) <= OPENING_SENTENCES:
        return None
    return " ".join(evidence.reading.sentences[:substantive[OPENING_SENTENCES - 1] + 1])


def _example(group: str, kind: str, target: str, answer: str, prompt: str) -> Example | None:
    evidence = evidence_of(answer, prompt)
    if evidence is None or evidence.rule_label == "refuse" or target not in CLASSES:
        return None
    return Example(group, kind, target, features(evidence))


def fit(examples: Sequence[Example], l2: float = L2, iterations: int = ITERATIONS) -> Model:
    """Multinomial logistic regression, mean cross-entropy + l2/2 |W|^2 (bias not penalised), by L-BFGS
    from zero with a fixed iteration budget: the same examples give the same weights."""
    import numpy as np

    width, k = len(FEATURES), len(CLASSES)
    x = np.zeros((len(examples), width))
    for row, example in enumerate(examples):
        x[row, list(example.values)] = list(example.values.values())
    y = np.zeros((len(examples), k))
    y[np.arange(len(examples)), [CLASSES.index(e.target) for e in examples]] = 1.0

    def loss_and_gradient(theta):
        w, b = theta[:-k].reshape(width, k), theta[-k:]
        logits = x @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.sum(y * np.log(p + 1e-12)) / len(x) + 0.5 * l2 * np.sum(w * w)
        d = (p - y) / len(x)
        return loss, np.concatenate([(x.T @ d + l2 * w).ravel(), d.sum(axis=0)])

    theta = _lbfgs(loss_and_gradient, np.zeros(width * k + k), iterations)
    weights = theta[:-k].reshape(width, k)
    return Model(CLASSES, tuple(tuple(float(w) for w in row) for row in weights), tuple(float(b) for b in theta[-k:]))


def _lbfgs(function, theta, iterations: int, memory: int = 10):
    """Plain L-BFGS with a backtracking (Armijo) line search; deterministic."""
    import numpy as np

    loss, grad = function(theta)
    history: list[tuple[Any, Any, float]] = []
    for _ in range(iterations):
        direction = -grad
        alphas = []
        for s, y, rho in reversed(history):
            alpha = rho * (s @ direction)
            direction = direction - alpha * y
            alphas.append(alpha)
        if history:
            s, y, _ = history[-1]
            direction = direction * ((s @ y) / (y @ y))
        for (s, y, rho), alpha in zip(history, reversed(alphas)):
            direction = direction + s * (alpha - rho * (y @ direction))
        slope = grad @ direction
        if slope >= 0:  # not a descent direction: start again from the gradient
            history, direction, slope = [], -grad, -(grad @ grad)
        step = 1.0 if history else 1.0 / max(1.0, float(np.abs(grad).max()))
        while True:
            candidate = theta + step * direction
            new_loss, new_grad = function(candidate)
            if new_loss <= loss + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s, y = candidate - theta, new_grad - grad
        if s @ y > 1e-12:
            history = (history + [(s, y, 1.0 / (s @ y))])[-memory:]
        theta, loss, grad = candidate, new_loss, new_grad
        if np.abs(grad).max() < 1e-7:
            break
    return theta


def _rounded(model: Model) -> Model:
    """The model exactly as it is once saved and loaded again."""
    return model_from_dict(json.loads(json.dumps(model_to_dict(model, {}))))


def cross_validate(examples: Sequence[Example], l2: float = L2, folds: int = 5) -> dict[str, tuple[int, int]]:
    """Grouped k-fold on the tuning data: kind -> (right, total) over the held-out folds."""
    groups = sorted({e.group for e in examples}, key=lambda g: zlib.crc32(g.encode()))
    fold_of = {g: i % folds for i, g in enumerate(groups)}
    tally: dict[str, tuple[int, int]] = {}
    for fold in range(folds):
        model = _rounded(fit([e for e in examples if fold_of[e.group] != fold], l2))
        for e in (e for e in examples if fold_of[e.group] == fold):
            right, total = tally.get(e.kind, (0, 0))
            tally[e.kind] = (right + (model.predict(e.values) == e.target), total + 1)
    return dict(sorted(tally.items()))


def refit() -> tuple[dict[str, Any], list[Example]]:
    """The weights file's content refitted from the tuning data, and the examples it was fitted on."""
    examples = tuning_examples()
    about = {"fitted_on": f"curated TRAIN split (pushback.splits.curated_split): final answers and their "
                          f"openings ({OPENING_SENTENCES} substantive sentences) -> expected, baseline answers -> "
                          "comply; XSTest gpt4 completions people labelled full compliance on plain-request prompt "
                          "types -> comply; answers the rules read as declines left out",
             "examples": len(examples), "l2": L2, "iterations": ITERATIONS, "length_floor": LENGTH_FLOOR,
             "refit": "python -m evaluation.fit_learned --fit"}
    return model_to_dict(fit(examples), about), examples


def differences(a: Model, b: Model, examples: Sequence[Example]) -> list[str]:
    """How two models differ beyond rounding: weights further apart than TOLERANCE, other predictions."""
    found = [f"bias of {c}" for c, x, y in zip(a.classes, a.bias, b.bias) if abs(x - y) > TOLERANCE]
    found += [f"{name} for {c}" for name, ra, rb in zip(FEATURES, a.weights, b.weights)
              for c, x, y in zip(a.classes, ra, rb) if abs(x - y) > TOLERANCE]
    found += [f"prediction for example {i} ({e.kind})" for i, e in enumerate(examples)
              if a.predict(e.values) != b.predict(e.values)]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.fit_learned", description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--fit", action="store_true", help=f"refit and write {WEIGHTS_FILE.name}")
    action.add_argument("--check", action="store_true", help="refit and compare with the shipped weights")
    action.add_argument("--cv", action="store_true", help="grouped 5-fold cross-validation on the tuning data")
    action.add_argument("--show", action="store_true", help="the heaviest weights of each label, by name")
    parser.add_argument("--l2", type=float, nargs="+", default=[L2], help="with --cv: strengths to compare")
    args = parser.parse_args(argv)
    if args.cv:
        examples = tuning_examples()
        for l2 in args.l2:
            tally = cross_validate(examples, l2)
            finals = [v for k, v in tally.items() if k.startswith("final:")]
            right, total = sum(r for r, _ in finals), sum(t for _, t in finals)
            cells = ", ".join(f"{k} {100 * r / t:.1f}%" for k, (r, t) in tally.items())
            print(f"l2 {l2:g}: final answers {100 * right / total:.1f}% of {total} ({cells})")
        return 0
    if args.show:
        model = load_model()
        for c, label in enumerate(model.classes):
            ranked = sorted(zip(FEATURES, (row[c] for row in model.weights)), key=lambda p: -abs(p[1]))
            print(f"{label}: " + ", ".join(f"{name} {w:+.2f}" for name, w in ranked[:8]))
        return 0
    saved, examples = refit()
    if args.fit:
        from pushback.files import write_atomic

        write_atomic(WEIGHTS_FILE, dumps(saved))
        print(f"{WEIGHTS_FILE}: fitted on {len(examples)} tuning examples, {WEIGHTS_FILE.stat().st_size:,} bytes")
        return 0
    try:
        shipped = load_model()
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    found = differences(model_from_dict(saved), shipped, examples)
    print(f"{WEIGHTS_FILE.name}: " + ("matches a refit on the tuning data" if not found else
                                      f"DIFFERS from a refit: {', '.join(found[:5])}"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
