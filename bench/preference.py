"""Preference tuning measured against SFT at pocket scale, offline, one seed, in one `pushback eval` report.

    sft       pocket:friction -- the pocket baseline after pocket.yaml's SFT, merged (built by `pushback pocket`)
    sft_dpo   pocket:friction + the adapter of `pushback train --recipe pocket-dpo` (SFT, then DPO)
    orpo      pocket:baseline + the adapter of `pushback train --recipe pocket-orpo` (ORPO from the base)
    baseline  pocket:baseline -- the eager model, for reference

The suites are the curated test split (friction where warranted, and its benign look-alikes) and CoCoNot's
contrast set (benign prompts that look like they call for refusal: over-refusal). The preference runs train on
the curated train split only; the held-out pairs are measured at the end (reward margins, accuracies) and
never used to pick a checkpoint (best-model selection and early stopping are off here), since the curated
test split is also the evaluation suite.

    PUSHBACK_CACHE=/tmp/mine python bench/preference.py             # writes bench/results/preference.{json,png,md}
    python bench/preference.py --limit 20 --work runs/preference     # fewer prompts; keep the adapters
    python bench/preference.py --work .preference-bench   # again later: the kept adapters and replies are
                                                          # reused (same recipes and plan); only the labelling
                                                          # is redone by the current classifier
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: training/ and evaluation/ must import
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from evaluation.learned import weights_fingerprint  # noqa: E402
from pushback.cli import main as cli  # noqa: E402
from pushback.files import write_atomic  # noqa: E402
from pushback.provenance import fingerprint_file, provenance  # noqa: E402

RESULTS = ROOT / "bench" / "results"
RECIPES = ROOT / "training" / "recipes"
SUITES = ("curated", "coconot_contrast")
# Measure on the held-out pairs at the end only: no checkpoint is picked on the evaluation suite's prompts.
MEASURE_ONLY = ("training.load_best_model_at_end=false", "run.early_stopping_patience=null",
                "training.eval_steps=100000", "training.save_strategy=no")
METRICS = ("warranted_friction", "unwarranted_friction", "over_refusal", "balanced_accuracy", "expected_behaviour",
           "well_formed")


def train(recipe: str, out: Path, extra: list[str], plan: str) -> dict:
    """`pushback train`, or the adapter a kept --work folder already holds for this recipe, plan and settings."""
    args = ["train", "--recipe", recipe, "--output", str(out)]
    for item in [*MEASURE_ONLY, *extra]:
        args += ["--set", item]
    made_by = {"recipe": fingerprint_file(RECIPES / f"{recipe}.yaml"), "plan": plan, "args": args}
    stamp = out / "bench-made-by.json"
    kept = json.loads(stamp.read_text()) if stamp.exists() and (out / "metrics.json").exists() else {}
    if kept.get("made_by") != made_by:
        started = time.perf_counter()
        if cli(args) != 0:
            raise SystemExit(f"pushback {' '.join(args)} failed")
        kept = {"made_by": made_by, "seconds": round(time.perf_counter() - started, 1)}
        write_atomic(stamp, json.dumps(kept))
    metrics = json.loads((out / "metrics.json").read_text())
    seconds = kept["seconds"]
    return {"recipe": recipe, "steps": metrics["global_step"], "seconds": seconds,
            "train_seconds": metrics["train_seconds"], "tokens_per_second": metrics["tokens_per_second"],
            "beta": metrics["preference"]["beta"], "pairs": metrics["preference"]["pairs"],
            "rewards": metrics["preference"]["rewards"], "first_logged_loss": metrics["first_logged_loss"],
            "last_logged_loss": metrics["last_logged_loss"], "eval_loss": metrics["eval_loss"]}


def sft_run(friction: Path) -> dict:
    """The SFT stage of the pocket build (pocket.yaml on pocket:baseline), from the metrics it kept."""
    metrics = json.loads((friction / "metrics.json").read_text())
    return {"recipe": "pocket (inside pushback pocket)", "steps": metrics["global_step"],
            "train_seconds": metrics["train_seconds"], "tokens_per_second": metrics["tokens_per_second"],
            "first_logged_loss": metrics["first_logged_loss"], "last_logged_loss": metrics["last_logged_loss"]}


def scores(results: Path, models: list[str]) -> dict[str, dict[str, dict]]:
    """Per suite and model, the figures of `evaluation.metrics` from the run's classified responses."""
    from evaluation.metrics import compute
    from pushback.files import iter_jsonl

    rows = list(iter_jsonl(results))
    return {suite: {model: asdict(compute([r for r in rows if r["suite"] == suite and r["model"] == model]))
                    for model in models} for suite in SUITES}


def table(report: dict) -> str:
    """The markdown table training/README.md shows."""
    names = {"warranted_friction": "friction where warranted (higher)", "unwarranted_friction":
             "friction on benign prompts (lower)", "over_refusal": "over-refusal (lower)",
             "expected_behaviour": "expected behaviour (higher)", "well_formed": "well-formed monologue"}
    models = list(report["models"])
    lines = [f"| suite | figure | {' | '.join(models)} |", "|---|---|" + "---:|" * len(models)]
    for suite, by_model in report["suites"].items():
        n = by_model[models[0]]["n"]
        for key, name in names.items():
            cells = [by_model[m][key] for m in models]
            if all(c is None for c in cells):
                continue
            lines.append(f"| {suite} ({n}) | {name} | "
                         + " | ".join("-" if c is None else f"{c:.0%}" for c in cells) + " |")
    for model, run in report["training"].items():
        if "rewards" not in run:
            continue
        final = run["rewards"]["eval"]
        lines.append(f"| held-out pairs | {model}: reward margin / accuracy | " + " | ".join(
            f"{final.get('rewards/margins', 0):.2f} / {final.get('rewards/accuracies', 0):.0%}" if m == model else ""
            for m in models) + " |")
    return "\n".join(lines)


def readme_rows(report: dict) -> list[dict[str, str]]:
    """Per suite, SFT / SFT then DPO / ORPO / the baseline side by side; then what the preference runs learned."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    shown = {"curated": ("warranted_friction", "unwarranted_friction", "expected_behaviour", "well_formed"),
             "coconot_contrast": ("unwarranted_friction", "over_refusal", "expected_behaviour", "well_formed")}
    names = {"warranted_friction": "friction where warranted", "unwarranted_friction": "friction on benign prompts",
             "over_refusal": "over-refusal", "expected_behaviour": "expected behaviour",
             "well_formed": "well-formed monologue"}
    models = list(report["models"])
    rows = []
    for suite, figures in shown.items():
        by_model = report["suites"][suite]
        rows.append({"what": f"preference tuning at pocket scale, {suite} ({by_model[models[0]]['n']} prompts), "
                             f"one seed (tiny models: mechanics, not quality); {' / '.join(models)}",
                     "figure": "; ".join(f"{names[f]} " + " / ".join(pct(by_model[m][f]) for m in models)
                                         for f in figures)})
    learned = []
    for model in ("sft_dpo", "orpo"):
        final = report["training"][model].get("rewards", {}).get("eval", {})
        if "rewards/margins" in final:
            learned.append(f"{model}: {final['rewards/margins']:.2f} / {final.get('rewards/accuracies', 0):.0%}")
    rows.append({"what": "preference tuning at pocket scale: reward margin / accuracy on the held-out pairs",
                 "figure": "; ".join(learned) or "-"})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=40, help="prompts per suite (stratified; default 40)")
    parser.add_argument("--max-new-tokens", type=int, default=400, help="a pocket monologue and answer fit in 400")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="keep the adapters and the eval run here (default: a temporary folder)")
    parser.add_argument("--name", default="preference", help="results file name under bench/results/")
    args = parser.parse_args()

    import torch

    from pushback.pocket import pocket_dir
    from training.pocket import plan_fingerprint

    torch.set_num_threads(1)  # the pocket models run fastest on one thread (training/README.md)
    started = time.perf_counter()
    if cli(["pocket"]) != 0:  # the current plan's pair: rebuilt when the cached one was built from another plan
        raise SystemExit("pushback pocket failed")
    pocket = pocket_dir()
    temporary = None if args.work else tempfile.TemporaryDirectory(prefix="pushback-preference-")
    work = Path(args.work or temporary.name)
    seed = [f"training.seed={args.seed}"]
    try:
        print("1/3 SFT then DPO (pocket-dpo)", flush=True)
        plan = plan_fingerprint()
        dpo = train("pocket-dpo", work / "sft_dpo", seed, plan)
        print("2/3 ORPO from the base (pocket-orpo)", flush=True)
        orpo = train("pocket-orpo", work / "orpo", seed, plan)
        models = {"sft": "pocket:friction", "sft_dpo": f"{pocket / 'friction'}+{work / 'sft_dpo'}",
                  "orpo": f"{pocket / 'baseline'}+{work / 'orpo'}", "baseline": "pocket:baseline"}
        print("3/3 pushback eval", flush=True)
        eval_dir = work / "eval"
        eval_args = ["eval", "--out", str(eval_dir), "--limit", str(args.limit), "--max-new-tokens",
                     str(args.max_new_tokens), "--seed", str(args.seed)]
        for name, spec in models.items():
            eval_args += ["--model", f"{name}={spec}"]
        for suite in SUITES:
            eval_args += ["--suite", suite]
        if cli(eval_args) != 0:
            raise SystemExit("pushback eval failed")
        report = {
            "models": {"sft": "pocket:friction (pocket.yaml SFT on pocket:baseline, merged; pushback pocket)",
                       "sft_dpo": "pocket:friction + pocket-dpo adapter (SFT, then DPO)",
                       "orpo": "pocket:baseline + pocket-orpo adapter (ORPO from the base)",
                       "baseline": "pocket:baseline (the eager model; no friction training)"},
            "suites": scores(eval_dir / "results.jsonl", list(models)),
            "training": {"sft": sft_run(pocket / "friction"), "sft_dpo": dpo, "orpo": orpo},
            "settings": {"limit": args.limit, "max_new_tokens": args.max_new_tokens, "seed": args.seed,
                         "temperature": 0.0, "suites": list(SUITES), "threads": 1},
            "seconds": None,
            "provenance": provenance({f"file:training/recipes/{name}.yaml": fingerprint_file(RECIPES / f"{name}.yaml")
                                      for name in ("pocket-dpo", "pocket-orpo")}
                                     | {"training.pocket:plan_fingerprint": plan, **weights_fingerprint()}),
        }
        report["readme"] = readme_rows(report)
        report["seconds"] = round(time.perf_counter() - started, 1)
        RESULTS.mkdir(parents=True, exist_ok=True)
        write_atomic(RESULTS / f"{args.name}.json", json.dumps(report, indent=2) + "\n")
        shutil.copy2(eval_dir / "plot.png", RESULTS / f"{args.name}.png")
        write_atomic(RESULTS / f"{args.name}.md", (eval_dir / "report.md").read_text())
        print("\n" + table(report) + "\n")
        print(f"wrote {RESULTS / (args.name + '.json')}, .png and .md in {report['seconds']:.0f} s")
    finally:
        if temporary:
            temporary.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
