"""Training throughput: real (non-pad) tokens per second of our trainer vs the original's padding, in one run.

Same base model (4-bit NF4 + LoRA on all linear layers, as `pushback train` loads it), same records,
same steps; only the batching differs:

* original -- every example padded to 4096 tokens (what the original project's trainer did);
* pad to longest -- the transformers default: pad each batch to its longest example;
* ours, padding-free -- examples laid end to end, no pad tokens (`training.padding_free: true`);
* ours, CPU recipe -- one sequence per pass (nothing to pad), as training/recipes/pocket.yaml does on CPU.

Real tokens/s counts only non-pad tokens (the Trainer's `non_padding` count), timed from the end of the
first step to the end of the last one (so loading and the first step's warm-up are left out).

    python bench/training.py                      # the pocket baseline (built if missing); writes bench/results/training.{json,png}
    python bench/training.py --base DIR --steps 8 --records 32
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: this file's own name would shadow the `training` package
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pushback.paths import curated_files  # noqa: E402
from pushback.files import write_atomic  # noqa: E402
from pushback.records import load_records  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ORIGINAL_LENGTH = 4096

# name -> (padding_free, per-device batch size, pad_to_multiple_of)
VARIANTS = {
    "original: pad to 4096": (False, 2, ORIGINAL_LENGTH),
    "pad to longest": (False, 2, None),
    "ours: padding-free": (True, 2, None),
    "ours: CPU recipe (1 per pass, no padding)": (True, 1, None),
}


def measure(name: str, base: str, rows: list, steps: int, work: Path) -> dict:
    from transformers import TrainerCallback

    from training.recipe import load_recipe
    from training.sft import SFTSettings, build_trainer
    from training.qlora import load_base, lora_config

    padding_free, batch, pad_to = VARIANTS[name]
    recipe = load_recipe("pocket")
    model, tokenizer = load_base(base, recipe)
    marks: list[tuple[float, int]] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append((time.perf_counter(), state.num_input_tokens_seen))

    settings = SFTSettings(output_dir=str(work / name.replace(" ", "_").replace(":", "")), max_steps=steps,
                           per_device_train_batch_size=batch, learning_rate=1e-4, warmup_ratio=0.0,
                           logging_steps=steps, eval_steps=None, save_steps=None, early_stopping_patience=None,
                           padding_free=padding_free, quiet=True, disable_tqdm=True,
                           extra={"pad_to_multiple_of": pad_to} if pad_to else {})
    trainer = build_trainer(model, tokenizer, rows, [], settings, peft_config=lora_config(recipe, tokenizer),
                            callbacks=[Clock()])
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
    return {"variant": name, "padding_free": padding_free, "batch_size": batch, "pad_to": pad_to, "steps": steps,
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
    bars = ax.barh(names, values, color=["#bbbbbb", "#999999", "#2b8cbe", "#08589e"][: len(names)])
    for bar, r in zip(bars, results):
        ax.annotate(f"{r['real_tokens_per_second']:.0f} tok/s  ({r['speedup']:.1f}x)",
                    (bar.get_width(), bar.get_y() + bar.get_height() / 2), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("real (non-pad) tokens per second, higher is better")
    ax.set_title("QLoRA SFT, same model and data: real tokens/s (speed-up vs padding to 4096)", fontsize=10)
    ax.set_xlim(0, max(values) * 1.35)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="pocket:baseline", help="model spec or directory (default: pocket:baseline)")
    parser.add_argument("--records", type=int, default=40, help="training records (curated set, friction format)")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadier on a shared machine)")
    parser.add_argument("--name", default="training", help="results file name under bench/results/")
    args = parser.parse_args()

    import torch

    from training.sft import chat_rows
    from training.qlora import resolve_base

    torch.set_num_threads(args.threads)
    base = resolve_base(args.base)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    rows = chat_rows(load_records(curated_files())[: args.records], tokenizer)
    print(f"base {args.base} ({base}); {len(rows)} records, {args.steps} steps per variant; "
          f"torch threads {args.threads}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    results = []
    with tempfile.TemporaryDirectory() as work:
        for name in VARIANTS:
            result = measure(name, base, rows, args.steps, Path(work))
            results.append(result)
            print(f"  {name:<45} {result['real_tokens_per_second']:>9.1f} real tok/s   "
                  f"pad share {result['pad_share']:.0%}   ({result['seconds']:.1f} s)", flush=True)
    original = results[0]["real_tokens_per_second"]
    for r in results:
        r["speedup"] = round(r["real_tokens_per_second"] / original, 2)
    print("\nspeed-up over padding every example to 4096 (target >= 3x for ours):")
    for r in results:
        print(f"  {r['variant']:<45} {r['speedup']:>6.2f}x")
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {"base": args.base, "records": len(rows), "steps": args.steps, "threads": args.threads,
               "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available(), "results": results}
    write_atomic(RESULTS / f"{args.name}.json", json.dumps(summary, indent=2) + "\n")
    plot(results, RESULTS / f"{args.name}.png")
    print(f"\nwrote {RESULTS / (args.name + '.json')} and {RESULTS / (args.name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
