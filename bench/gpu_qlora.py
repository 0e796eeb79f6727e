"""QLoRA on a 7B-shaped Qwen2 at sequence length 2048: tokens/s and peak GPU memory (needs CUDA).

The model is built from its config (Qwen2.5-7B / DeepSeek-R1-Distill-Qwen-7B shape, random weights,
no download), saved once in bf16, then loaded the way `pushback train` loads a base: 4-bit NF4,
bf16 compute, LoRA r=16 on all linear layers, activation checkpointing. Two variants in one run:

* plain HF stack -- batches padded to the sequence length (what most QLoRA scripts do);
* ours -- padding-free batches (`training.padding_free: true`), everything else the same.

Rows are random token ids with lengths spread over [seq/2, seq] (seeded), identical for both; tokens/s
counts real (non-pad) tokens. For context, Unsloth publishes about 2x the speed of the plain Hugging
Face stack and 40-70% less memory on 7B models (their kernels; this benchmark measures ours).

    python bench/gpu_qlora.py                  # 28 layers, seq 2048, 10 steps; writes bench/results/gpu_qlora.json
    python bench/gpu_qlora.py --layers 4       # a quick check of the setup
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

RESULTS = ROOT / "bench" / "results"


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        print("bench/gpu_qlora.py needs a CUDA GPU and none is visible (torch.cuda.is_available() is False; "
              f"torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}). Nothing was measured.",
              file=sys.stderr)
        sys.exit(2)


def build_7b(directory: Path, layers: int) -> None:
    """A randomly initialised 7B-shaped Qwen2 saved in bf16, with a small tokenizer for the pad id."""
    import torch
    from transformers import AutoModelForCausalLM

    from training.scratch import qwen2_config, train_tokenizer

    tokenizer = train_tokenizer([f"padding tokenizer line {i}" for i in range(200)], vocab_size=300)
    config = qwen2_config(None, "7b", num_hidden_layers=layers, max_position_embeddings=32768,
                          tie_word_embeddings=False)
    config.pad_token_id = tokenizer.pad_token_id
    with torch.device("cuda"):  # built in bf16 directly: 15 GB, not the 30 GB an fp32 build would need
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    del model
    gc.collect()
    torch.cuda.empty_cache()


def rows_for(seq: int, count: int, vocab: int, seed: int = 0) -> list[dict[str, list[int]]]:
    rng = random.Random(seed)
    return [{"input_ids": [rng.randrange(1000, vocab) for _ in range(rng.randint(seq // 2, seq))]}
            for _ in range(count)]


def measure(name: str, base: Path, rows: list, *, padding_free: bool, seq: int, batch: int, steps: int,
            work: Path) -> dict:
    import torch
    from transformers import TrainerCallback

    from training.recipe import load_recipe
    from training.sft import SFTSettings, build_trainer
    from training.qlora import load_base, lora_config

    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    recipe = load_recipe("deepseek-r1-distill-qwen-7b", ["training.activation_checkpointing=true"])
    model, tokenizer = load_base(str(base), recipe)
    marks: list[tuple[float, int]] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            torch.cuda.synchronize()
            marks.append((time.perf_counter(), state.num_input_tokens_seen))

    settings = SFTSettings(output_dir=str(work / name.replace(" ", "_")), max_steps=steps,
                           per_device_train_batch_size=batch, learning_rate=1e-4, warmup_ratio=0.0,
                           logging_steps=steps, eval_steps=None, save_steps=None, early_stopping_patience=None,
                           padding_free=padding_free, activation_checkpointing=True,
                           quiet=True, disable_tqdm=True,
                           extra={} if padding_free else {"pad_to_multiple_of": seq})
    trainer = build_trainer(model, tokenizer, rows, [], settings, peft_config=lora_config(recipe, tokenizer),
                            callbacks=[Clock()])
    trainer.train()
    (t0, tokens0), (t1, tokens1) = marks[0], marks[-1]
    result = {"variant": name, "padding_free": padding_free, "batch_size": batch, "steps": steps,
              "real_tokens_per_second": round((tokens1 - tokens0) / (t1 - t0), 1),
              "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
    del trainer, model
    gc.collect()
    torch.cuda.empty_cache()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq", type=int, default=2048, help="longest sequence (rows span seq/2..seq)")
    parser.add_argument("--layers", type=int, default=28, help="decoder layers (28 is the 7B shape)")
    parser.add_argument("--batch", type=int, default=2, help="sequences per device per step")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per variant (the first is not timed)")
    parser.add_argument("--model-dir", help="reuse a model built by an earlier run (else a temporary one)")
    args = parser.parse_args()
    require_cuda()
    import torch

    from training.scratch import SHAPES

    with tempfile.TemporaryDirectory() as work:
        base = Path(args.model_dir) if args.model_dir else Path(work) / "qwen2-7b-shape"
        if not (base / "config.json").exists():
            print(f"building a 7B-shaped Qwen2 ({args.layers} layers) in {base} ...", flush=True)
            build_7b(base, args.layers)
        rows = rows_for(args.seq, args.batch * args.steps, SHAPES["7b"]["vocab_size"])
        results = []
        for name, padding_free in (("plain HF stack (padded)", False), ("ours (padding-free)", True)):
            result = measure(name, base, rows, padding_free=padding_free, seq=args.seq, batch=args.batch,
                             steps=args.steps, work=Path(work))
            results.append(result)
            print(f"  {name:<26} {result['real_tokens_per_second']:>9.1f} real tok/s   "
                  f"peak {result['peak_gpu_memory_gb']:.1f} GB", flush=True)
    plain, ours = results
    summary = {"gpu": torch.cuda.get_device_name(0), "seq": args.seq, "layers": args.layers, "batch": args.batch,
               "results": results,
               "speedup": round(ours["real_tokens_per_second"] / plain["real_tokens_per_second"], 2),
               "memory_saving": round(1 - ours["peak_gpu_memory_gb"] / plain["peak_gpu_memory_gb"], 3)}
    print(f"on {summary['gpu']}: ours is {summary['speedup']}x the plain stack's real tokens/s, "
          f"with {summary['memory_saving']:.0%} less peak memory "
          "(Unsloth publishes about 2x and 40-70% less on 7B)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gpu_qlora.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {RESULTS / 'gpu_qlora.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
