"""Write the learned layer's weights (`evaluation.learned`), fitted on every labelled source pooled, and
compare settings by leave-one-source-out agreement.

    python -m evaluation.fit_learned --fit      # refit deterministically, rewrite learned_weights.json
    python -m evaluation.fit_learned --check    # refit and compare with the shipped file
    python -m evaluation.fit_learned --select   # leave-one-source-out means for a grid of settings
    python -m evaluation.fit_learned --show     # the heaviest weights of each label, by name

The fitting itself lives in `evaluation.fitting` (validation fits through it too).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace
from typing import Any

from evaluation import learned
from evaluation.fitting import SETTINGS, FitSettings, fit, fit_partial, fitted_sources, fitting_rows
from evaluation.sources import SOURCES


def refit(settings: FitSettings = SETTINGS) -> tuple[dict[str, Any], learned.Model]:
    """The weights file's content refitted on every source it learns from, and the model itself."""
    sources = fitted_sources(SOURCES, settings)
    fitting = fitting_rows(sources)
    model = fit(fitting, settings)
    about = {"fitted_on": f"{len(fitting)} labelled answers of {', '.join(sources)}",
             "fit": {k: v for k, v in asdict(settings).items() if k not in ("reading", "partial_l2")},
             "refit": "python -m evaluation.fit_learned --fit"}
    saved = learned.model_to_dict(model, about)
    return saved, learned.model_from_dict(saved)


def differences(a: learned.Model, b: learned.Model) -> list[str]:
    """How two models differ beyond rounding: biases or feature weights further apart than TOLERANCE (a
    feature one file leaves out weighs zero there)."""
    import numpy as np

    found = [f"bias of {c}" for c, x, y in zip(a.classes, a.bias, b.bias) if abs(x - y) > learned.TOLERANCE]
    zero = np.zeros(len(a.classes))
    for name in sorted(set(a.index) | set(b.index)):
        row_a = a.weights[a.index[name]] if name in a.index else zero
        row_b = b.weights[b.index[name]] if name in b.index else zero
        if np.abs(row_a - row_b).max() > learned.TOLERANCE:
            found.append(name)
    return found


def _grid() -> list[FitSettings]:
    """The settings `--select` compares, each one change away from SETTINGS (evaluation/README.md lists
    what each scored)."""
    base = SETTINGS
    return [base,
            replace(base, source_weights=()),  # the curated set fitted on too
            replace(base, source_weights=(("curated", 0.25),)),
            replace(base, l2=1e-3, l2_ngrams=1e-3), replace(base, l2=1e-4, l2_ngrams=1e-4),  # beside 3e-4
            replace(base, min_sources=3),
            replace(base, min_answers=10 ** 9),  # no n-grams: the cue features alone
            replace(base, reading=replace(base.reading, rules_decline=False)),
            replace(base, reading=replace(base.reading, refuse_at=None)),  # the most probable label
            replace(base, reading=replace(base.reading, refuse_at=0.5)),
            replace(base, reading=replace(base.reading, whole=False)),
            replace(base, reading=replace(base.reading, opening_tokens=12))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.fit_learned", description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--fit", action="store_true", help=f"refit and write {learned.WEIGHTS_FILE.name}")
    action.add_argument("--check", action="store_true", help="refit and compare with the shipped weights")
    action.add_argument("--select", action="store_true", help="leave-one-source-out means for a grid of settings")
    action.add_argument("--show", action="store_true", help="the heaviest weights of each label, by name")
    args = parser.parse_args(argv)
    if args.select:
        from evaluation.validation import leave_one_source_out, summary

        for settings in _grid():
            print(summary(leave_one_source_out(settings)), "|", {k: v for k, v in asdict(settings).items()}, flush=True)
        return 0
    if args.show:
        model = learned.load_model()
        for c, label in enumerate(model.classes):
            ranked = sorted(model.index, key=lambda name: -abs(model.weights[model.index[name]][c]))
            print(f"{label}: " + ", ".join(f"{n} {model.weights[model.index[n]][c]:+.2f}" for n in ranked[:12]))
        return 0
    saved, model = refit()
    if args.fit:
        from pushback.files import write_atomic, write_json

        write_atomic(learned.WEIGHTS_FILE, learned.dumps(saved))
        fitting = fitting_rows(fitted_sources(SOURCES, SETTINGS))
        write_json(learned.PARTIAL_FILE, learned.partial_to_dict(fit_partial(fitting), {
            "fitted_on": "the refusals (full or partial) of the XSTest sources the weights were fitted on",
            "partial_l2": SETTINGS.partial_l2,
            "refit": "python -m evaluation.fit_learned --fit"}))
        print(f"{learned.WEIGHTS_FILE}: {len(saved['weights'])} features, {learned.WEIGHTS_FILE.stat().st_size:,} bytes")
        return 0
    try:
        shipped = learned.load_model()
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    found = differences(model, shipped)
    print(f"{learned.WEIGHTS_FILE.name}: " + ("matches a refit" if not found else
                                              f"DIFFERS from a refit: {', '.join(found[:5])}"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
