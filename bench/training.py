"""Training throughput on CPU: real (non-pad) tokens per second of each batch layout, in one run.

Same base model (4-bit NF4 + LoRA on all linear layers, as `pushback train` loads it), same records,
same steps; only the batch layout differs (`run.batch_layout` of the recipe, training/layout.py):

* original: pad to 4096 -- every example padded to 4096 tokens (what the original project's trainer did);
* pad to longest -- TRL's default: each batch padded to its longest example, random order;
* length-grouped -- rows of similar length batched together, padded to the longest (the CUDA choice with sdpa);
* ours, padding-free -- examples laid end to end, no pad tokens (the CPU choice);
* ours, CPU recipe -- one sequence per pass (nothing to pad), as training/recipes/pocket.yaml does.

Real tokens/s counts only non-pad tokens (the Trainer's `non_padding` count), timed from the end of the
first step to the end of the last one (so loading and the first step's warm-up are left out).

    python bench/training.py                      # the pocket baseline (built if missing); writes bench/results/training.{json,png}
    python bench/training.py --base DIR --steps 8 --records 32
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: this file's own name would shadow the `training` package
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pushback.files import write_atomic  # noqa: E402
from pushback.paths import curated_files  # noqa: E402
from pushback.provenance import fingerprint_file, provenance  # noqa: E402
from pushback.records import load_records  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ORIGINAL_LENGTH = 4096

# name -> (run.batch_layout, per-device batch size)
VARIANTS = {
    "original: pad to 4096": ("pad_to_max", 2),
    "pad to longest (TRL default)": ("pad_to_longest", 2),
    "length-grouped, padded to longest": ("group_by_length", 2),
    "ours: padding-free": ("padding_free", 2),
    "ours: CPU recipe (1 per pass, no padding)": ("auto", 1),
}


def measure(name: str, base: str, records: list, steps: int, work: Path) -> dict:
    from transformers import TrainerCallback

    from training.data import Rows, rows_for
    from training.layout import choose_layout
    from training.recipe import load_recipe
    from training.train import build_trainer, load_model, load_tokenizer

    layout_name, batch = VARIANTS[name]
    recipe = load_recipe("pocket", [f"model.base={base}", f"run.batch_layout={layout_name}",
                                    f"training.per_device_train_batch_size={batch}",
                                    "training.gradient_accumulation_steps=1", f"training.max_steps={steps}",
                                    "training.learning_rate=1e-4", "training.warmup_steps=0",
                                    f"training.logging_steps={steps}", "training.eval_strategy=no",
                                    "training.save_strategy=no", "training.load_best_model_at_end=false",
                                    "run.early_stopping_patience=null", "training.disable_tqdm=true",
                                    f"data.max_length={ORIGINAL_LENGTH}"])
    layout = choose_layout(recipe, cuda=False)
    tokenizer = load_tokenizer(base, recipe)
    rows = rows_for("sft", records, tokenizer, mode="pushback", system="plain", max_length=ORIGINAL_LENGTH)
    model, peft_config = load_model(base, recipe, layout)
    marks: list[tuple[float, int]] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append((time.perf_counter(), state.num_input_tokens_seen))

    trainer = build_trainer(recipe, layout, model, tokenizer, rows, Rows([]), peft_config,
                            checkpoints=work / name.replace(" ", "_").replace(":", "").replace(",", ""),
                            quiet=True, callbacks=[Clock()])
    padded_total = []
    collate = trainer.data_collator

    def counting_collator(examples):  # what the model is fed, pads included
        batch_out = collate(examples)
        padded_total.append(int(batch_out["input_ids"].numel()))
        return batch_out

    trainer.data_collator = counting_collator
    trainer.train()
    (t0, tokens0), (t1, tokens1) = marks[0], marks[-1]
    real = tokens1 - tokens0
    fed = sum(padded_total[1:steps])  # the same steps as the timing window
    return {"variant": name, "batch_layout": layout.name, "batch_size": batch, "steps": steps,
            "seconds": round(t1 - t0, 3), "real_tokens": real, "fed_tokens": fed,
            "real_tokens_per_second": round(real / (t1 - t0), 1),
            "pad_share": round(1 - real / fed, 3) if fed else None}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.6))
    names = [r["variant"] for r in results]
    values = [r["real_tokens_per_second"] for r in results]
    bars = ax.barh(names, values, color=["#bbbbbb", "#999999", "#7bccc4", "#2b8cbe", "#08589e"][: len(names)])
    for bar, r in zip(bars, results):
        ax.annotate(f"{r['real_tokens_per_second']:.0f} tok/s  ({r['speedup']:.1f}x)",
                    (bar.get_width(), bar.get_y() + bar.get_height() / 2), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("real (non-pad) tokens per second, higher is better")
    ax.set_title("QLoRA SFT on CPU, same model and data: real tokens/s (speed-up vs padding to 4096)", fontsize=10)
    ax.set_xlim(0, max(values) * 1.35)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def base_fingerprint(spec: str) -> dict[str, str]:
    """The pocket baseline is measured as the pocket plan builds it; another base is named, not hashed."""
    if spec == "pocket:baseline":
        from training.pocket import plan_fingerprint

        return {"training.pocket:plan_fingerprint": plan_fingerprint()}
    return {}


def readme_rows(results: list[dict], records: int) -> list[dict[str, str]]:
    by = {r["variant"]: r for r in results}
    original = by["original: pad to 4096"]
    cells = [f"{name} {r['real_tokens_per_second']:,.0f}" + ("" if r is original else f" ({r['speedup']:.0f}x)")
             for name, r in by.items()]
    return [{"what": f"QLoRA training throughput on the pocket baseline, real tokens/s by batch layout "
                     f"({records} curated records)",
             "figure": "; ".join(cells)}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="pocket:baseline", help="model spec or directory (default: pocket:baseline)")
    parser.add_argument("--records", type=int, default=40, help="training records (curated set, friction format)")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadier on a shared machine)")
    parser.add_argument("--name", default="training", help="results file name under bench/results/")
    args = parser.parse_args()

    import torch

    from pushback.specs import parse_spec
    from training.train import resolve_base

    torch.set_num_threads(args.threads)
    base = resolve_base(parse_spec(args.base))
    records = load_records(curated_files())[: args.records]
    print(f"base {args.base} ({base}); {len(records)} records, {args.steps} steps per variant; "
          f"torch threads {args.threads}; {os.cpu_count()} cores", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as work:
        for name in VARIANTS:
            result = measure(name, base, records, args.steps, Path(work))
            results.append(result)
            print(f"  {name:<45} {result['real_tokens_per_second']:>9.1f} real tok/s   "
                  f"pad share {result['pad_share']:.0%}   ({result['seconds']:.1f} s)", flush=True)
    original = results[0]["real_tokens_per_second"]
    for r in results:
        r["speedup"] = round(r["real_tokens_per_second"] / original, 2)
    print("\nspeed-up over padding every example to 4096:")
    for r in results:
        print(f"  {r['variant']:<45} {r['speedup']:>6.2f}x")
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {"base": args.base, "records": len(records), "steps": args.steps, "threads": args.threads,
               "cuda": torch.cuda.is_available(), "results": results,
               "readme": readme_rows(results, len(records)),
               "bench_sha": fingerprint_file(__file__),
               "provenance": provenance({**base_fingerprint(args.base),
                                         "file:training/layout.py": fingerprint_file(ROOT / "training" / "layout.py"),
                                         "file:training/recipes/pocket.yaml":
                                             fingerprint_file(ROOT / "training" / "recipes" / "pocket.yaml")})}
    write_atomic(RESULTS / f"{args.name}.json", json.dumps(summary, indent=2) + "\n")
    plot(results, RESULTS / f"{args.name}.png")
    print(f"\nwrote {RESULTS / (args.name + '.json')} and {RESULTS / (args.name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
