"""QLoRA on a 7B-shaped Qwen2: the batch layouts side by side, on the same rows, in one run.

The model is built from its config (Qwen2.5-7B / DeepSeek-R1-Distill-Qwen-7B shape, random weights, no
download), saved once in bf16, then loaded for each variant the way `pushback train` loads a base (4-bit NF4,
bf16 compute, LoRA r=16 on all linear layers) with the 7B recipe (training/recipes/deepseek-r1-distill-qwen-7b.yaml:
activation checkpointing, 4 x 4 = 16 rows per optimizer step). Rows are random token ids with lengths spread
over [seq/2, seq] (seeded), identical for every variant. The variants:

* TRL default   -- batches padded to their longest row, random order, no Liger (the recipe's micro-batch);
* pad to max    -- every row padded to the maximum length (the original project's way);
* ours          -- what `pushback train` picks on this machine (training/layout.py: the batch layout for its
                   attention, Liger when installed, the largest micro-batch that fits the same effective batch);
* ours, same micro-batch -- ours at TRL default's micro-batch, to compare memory at equal batch (full run only);
* ours, no checkpointing -- ours at that micro-batch without activation checkpointing (only with --variants).

Each reports real (non-pad) tokens/s and step time, timed from the end of the first optimizer step to the end
of the last, peak GPU memory, and model-FLOPs utilisation: (4N + 6·L·d·s) FLOPs per real token -- forward
2N and the backward's input gradients 2N through the frozen weights (LoRA's own weight gradients are
negligible; recomputation under activation checkpointing is not model work), plus causal attention -- over
the GPU's dense bf16 peak. A variant that runs out of memory is recorded as such; the JSON is rewritten
after every variant, so a run cut short still leaves what it measured.

    python bench/gpu_qlora.py                          # full: 28 layers, seq 2048 (< 6 min on one H100/H200)
    python bench/gpu_qlora.py --quick                  # 4 layers, seq 1024 (< 90 s)
    python bench/gpu_qlora.py --shape tiny --device cpu   # the same code at toy scale on a CPU (a test runs it)
    bash bench/gpu_run.sh                              # on a lent GPU: installs the carried wheels, then the above
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
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: this file's own name would shadow nothing, but training/ must import
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

RESULTS = ROOT / "bench" / "results"
RECIPE = ROOT / "training" / "recipes" / "deepseek-r1-distill-qwen-7b.yaml"
NEEDED = ("torch", "transformers", "trl", "peft", "bitsandbytes", "datasets", "accelerate", "pydantic", "yaml")
# Dense bf16 peak of the GPU (vendor figures), for model-FLOPs utilisation; unknown GPUs report none.
PEAK_BF16 = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12}


def say(text: str) -> None:
    print(text, flush=True)


def fail(text: str) -> None:
    print(f"error: {text}", file=sys.stderr, flush=True)
    sys.exit(2)


def check_setup(device: str) -> None:
    """Fail fast, in one line each, on what would otherwise break minutes in."""
    import importlib.util

    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        fail(f"missing Python packages: {', '.join(missing)} (on a lent GPU run bench/gpu_run.sh, which installs "
             "the carried wheels)")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            fail(f"--device cuda but no CUDA GPU is visible (torch {torch.__version__}, CUDA build "
                 f"{torch.version.cuda or 'none'}); use --shape tiny --device cpu for the CPU check")


def peak_flops(gpu: str | None) -> float | None:
    return next((flops for name, flops in PEAK_BF16.items() if gpu and name in gpu), None)


# --- the model and the rows -----------------------------------------------------------------------


def build_model(directory: Path, shape: str, layers: int | None, device: str) -> None:
    """A randomly initialised Qwen2 of the shape, saved in bf16 (fp32 on CPU), with a small tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    from training.from_scratch import qwen2_config, train_tokenizer

    tokenizer = train_tokenizer([f"padding tokenizer line {i}" for i in range(200)], vocab_size=300)
    overrides = {"num_hidden_layers": layers} if layers else {}
    if shape == "7b":
        overrides.update(max_position_embeddings=32768, tie_word_embeddings=False)
    config = qwen2_config(tokenizer if shape != "7b" else None, shape, **overrides)
    config.pad_token_id = tokenizer.pad_token_id
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):  # built in bf16 on the GPU directly: 15 GB, not an fp32 copy of 30 GB
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def make_rows(seq: int, count: int, vocab: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        ids = [rng.randrange(300, vocab) for _ in range(rng.randint(seq // 2, seq))]
        rows.append({"input_ids": ids, "length": len(ids)})
    return rows


# --- one variant ----------------------------------------------------------------------------------


def variant_recipe(name: str, args: argparse.Namespace, liger_off: bool = False) -> Any:
    from training.recipe import load_recipe

    sets = [f"model.base={args.base}", f"data.max_length={args.seq}", "run.early_stopping_patience=null",
            "training.eval_strategy=no", "training.save_strategy=no", "training.load_best_model_at_end=false",
            f"training.max_steps={args.steps}", "training.logging_steps=1000", "training.learning_rate=1e-4",
            "training.disable_tqdm=true",
            f"training.per_device_train_batch_size={args.micro}",
            f"training.gradient_accumulation_steps={args.effective // args.micro}",
            f"run.device={'cpu' if args.device == 'cpu' else 'auto'}"]
    sets += {"TRL default": ["run.batch_layout=pad_to_longest", "run.liger=off", "run.auto_batch_size=false"],
             "pad to max": ["run.batch_layout=pad_to_max", "run.liger=off", "run.auto_batch_size=false"],
             "ours": [],
             "ours, same micro-batch": ["run.auto_batch_size=false"],
             # Not in the default run: recompute nothing, at the recipe's micro-batch (Liger keeps the logits small).
             "ours, no checkpointing": ["run.auto_batch_size=false", "training.activation_checkpointing=false"]}[name]
    return load_recipe(RECIPE, sets + (["run.liger=off"] if liger_off else []))


def flops_per_token(config: Any, mean_length: float) -> float:
    """4N (forward, and input gradients through frozen weights) + causal attention, per real token."""
    d, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    kv = config.num_key_value_heads * (d // config.num_attention_heads)
    per_layer = d * d * 2 + d * kv * 2 + 3 * d * inter  # q, o; k, v; gate, up, down
    n = layers * per_layer + d * config.vocab_size  # the output head counts; the embedding lookup does not
    return 4 * n + 6 * layers * d * mean_length


def measure(name: str, args: argparse.Namespace, rows: list[dict[str, Any]], work: Path,
            liger_off: bool = False) -> dict[str, Any]:
    import torch
    from transformers import TrainerCallback

    from training.data import Rows
    from training.layout import choose_layout
    from training.train import build_trainer, fit_micro_batch, load_model, load_tokenizer

    cuda = args.device == "cuda"
    recipe = variant_recipe(name, args, liger_off)
    layout = choose_layout(recipe, cuda=cuda)
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model, peft_config = load_model(args.base, recipe, layout)
    tokenizer = load_tokenizer(args.base, recipe)
    marks: list[tuple[float, int]] = []

    class Clock(TrainerCallback):
        def on_step_end(self, _args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            marks.append((time.perf_counter(), state.num_input_tokens_seen))

    trainer = build_trainer(recipe, layout, model, tokenizer, Rows(rows), Rows([]), peft_config,
                            checkpoints=work / name.replace(" ", "_").replace(",", ""), quiet=True,
                            callbacks=[Clock()])
    if cuda and recipe.run.auto_batch_size:
        fit_micro_batch(trainer, [row["length"] for row in rows], log=lambda line: say(f"    {line}"))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    (t0, tokens0), (t1, tokens1) = marks[0], marks[-1]
    steps = len(marks) - 1
    real = tokens1 - tokens0
    result = {"variant": name, "batch_layout": layout.name, "liger": layout.liger, "layout_reason": layout.reason,
              "micro_batch": trainer.args.per_device_train_batch_size,
              "gradient_accumulation_steps": trainer.args.gradient_accumulation_steps,
              "timed_steps": steps, "real_tokens": real, "seconds": round(t1 - t0, 3),
              "real_tokens_per_second": round(real / (t1 - t0), 1),
              "step_seconds": round((t1 - t0) / steps, 3),
              "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}
    gpu = torch.cuda.get_device_name(0) if cuda else None
    peak = peak_flops(gpu)
    mean_length = sum(r["length"] for r in rows) / len(rows)
    result["mfu"] = (round(flops_per_token(model.config, mean_length) * result["real_tokens_per_second"] / peak, 4)
                     if peak else None)
    del trainer, model
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return result


def is_oom(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


# --- results --------------------------------------------------------------------------------------


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    by = {r["variant"]: r for r in results if "real_tokens_per_second" in r}
    default, ours = by.get("TRL default"), by.get("ours") or by.get("ours (liger off after an error)")
    out: dict[str, Any] = {"goal": "ours >= 2x TRL default's real tokens/s at <= 60% of its peak memory"}
    if default and ours:
        out["speedup_vs_trl_default"] = round(ours["real_tokens_per_second"] / default["real_tokens_per_second"], 2)
        if default["peak_memory_gb"]:
            out["memory_vs_trl_default"] = round(ours["peak_memory_gb"] / default["peak_memory_gb"], 2)
            out["goal_met"] = out["speedup_vs_trl_default"] >= 2 and out["memory_vs_trl_default"] <= 0.6
    same = by.get("ours, same micro-batch")
    if default and same and default["peak_memory_gb"]:
        out["same_micro_batch"] = {
            "speedup_vs_trl_default": round(same["real_tokens_per_second"] / default["real_tokens_per_second"], 2),
            "memory_vs_trl_default": round(same["peak_memory_gb"] / default["peak_memory_gb"], 2)}
    return out


def readme_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """The README's rows for a GPU run: every measured variant against TRL's default, on the same rows."""
    by = {r["variant"]: r for r in report["results"] if "real_tokens_per_second" in r}
    default = by.get("TRL default")
    if not default or not report.get("gpu"):
        return []  # CPU smoke runs and runs without the reference stay out of the README

    def cell(name: str, r: dict[str, Any]) -> str:
        setup = f"{r['batch_layout']}, Liger {'on' if r['liger'] else 'off'}, micro-batch {r['micro_batch']} x " \
                f"{r['gradient_accumulation_steps']}"
        ratio = "" if r is default else (f": {r['real_tokens_per_second'] / default['real_tokens_per_second']:.2f}x "
                                         f"at {r['peak_memory_gb'] / default['peak_memory_gb']:.2f}x memory")
        return f"{name} ({setup}) {r['real_tokens_per_second']:,.0f} tok/s, {r['peak_memory_gb']:.1f} GB{ratio}"

    shape = (f"7B-shaped Qwen2, {report['layers']} layers, 4-bit NF4, LoRA r=16, rows <= {report['seq']} tokens, "
             f"{report['effective_batch']} rows a step")
    return [{"what": f"QLoRA training throughput, real tokens/s ({shape})",
             "figure": "; ".join(cell(name, r) for name, r in by.items())}]


def write(path: Path, report: dict[str, Any]) -> None:
    from pushback.files import write_atomic

    write_atomic(path, json.dumps(report, indent=2) + "\n")


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in report["results"] if "real_tokens_per_second" in r]
    if not done:
        return
    names = [r["variant"] for r in done]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    colours = ["#999999", "#bbbbbb", "#2b8cbe", "#7bccc4"][: len(done)]
    axes[0].barh(names, [r["real_tokens_per_second"] for r in done], color=colours)
    axes[0].set_xlabel("real (non-pad) tokens/s, higher is better")
    if all(r["peak_memory_gb"] is not None for r in done):
        axes[1].barh(names, [r["peak_memory_gb"] for r in done], color=colours)
        axes[1].set_xlabel("peak GPU memory (GB), lower is better")
    else:
        axes[1].barh(names, [r["step_seconds"] for r in done], color=colours)
        axes[1].set_xlabel("seconds per optimizer step, lower is better")
    for ax in axes:
        ax.invert_yaxis()
    axes[1].set_yticklabels([])
    where = report["gpu"] or f"CPU ({report['provenance']['hardware']['cores']} cores)"
    fig.suptitle(f"QLoRA, {report['shape']} shape, {report['layers']} layers, seq <= {report['seq']}, "
                 f"{report['effective_batch']} rows/step, on {where}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 layers, seq 1024, 3 steps, 3 variants (< 90 s)")
    parser.add_argument("--shape", choices=("7b", "tiny"), default="7b")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--layers", type=int, help="decoder layers (default: 28 for 7b, 4 with --quick)")
    parser.add_argument("--seq", type=int, help="longest row (default 2048; 1024 with --quick; 256 for tiny)")
    parser.add_argument("--steps", type=int, help="optimizer steps per variant, the first untimed (default 5, 3 quick)")
    parser.add_argument("--effective", type=int, help="rows per optimizer step (default 16 as the 7B recipe; 8 quick)")
    parser.add_argument("--micro", type=int, help="TRL default's micro-batch (default 4; 2 quick)")
    parser.add_argument("--variants", nargs="+", help="subset of: 'TRL default' 'pad to max' ours 'ours, same micro-batch' "
                                                      "'ours, no checkpointing'")
    parser.add_argument("--model-dir", help="reuse a model built by an earlier run (else a temporary one)")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the JSON and the plot")
    args = parser.parse_args()
    args.layers = args.layers or (4 if args.quick else (28 if args.shape == "7b" else None))
    args.seq = args.seq or (256 if args.shape == "tiny" else 1024 if args.quick else 2048)
    args.steps = args.steps or (3 if args.quick else 5)
    args.effective = args.effective or (8 if args.quick else 16)
    args.micro = args.micro or (2 if args.quick else 4)
    if args.steps < 2 or args.effective % args.micro:
        fail("--steps must be at least 2, and --effective a multiple of --micro")
    variants = args.variants or ["TRL default", "pad to max", "ours"] + ([] if args.quick else ["ours, same micro-batch"])
    check_setup(args.device)

    import torch

    from pushback.provenance import fingerprint_file, provenance

    started = time.perf_counter()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "gpu_qlora" + ("-quick" if args.quick else "") + ("" if args.shape == "7b" else f"-{args.shape}") \
        + ("-cpu" if args.device == "cpu" else "")
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else None
    if args.device == "cuda":
        os.environ["PUSHBACK_PROBE_GPU"] = "1"  # provenance names the GPU
    report: dict[str, Any] = {
        "gpu": gpu, "device": args.device, "shape": args.shape, "layers": args.layers, "seq": args.seq,
        "effective_batch": args.effective, "trl_default_micro_batch": args.micro, "steps": args.steps,
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda},
        # What decides the figures: the 7B recipe and the layout policy (a stale one is re-measured on a GPU).
        "provenance": provenance({f"file:{RECIPE.relative_to(ROOT)}": fingerprint_file(RECIPE),
                                  "file:training/layout.py": fingerprint_file(ROOT / "training" / "layout.py")}),
        "bench_sha": fingerprint_file(__file__),
        "results": []}
    say(f"bench/gpu_qlora.py on {gpu or 'CPU'}: {args.shape} shape, {args.layers or 'default'} layers, "
        f"seq <= {args.seq}, {args.effective} rows per step, {args.steps} steps per variant")
    with tempfile.TemporaryDirectory() as work:
        args.base = args.model_dir or str(Path(work) / f"qwen2-{args.shape}")
        if not (Path(args.base) / "config.json").exists():
            t = time.perf_counter()
            say(f"building the {args.shape}-shaped Qwen2 in {args.base} ...")
            build_model(Path(args.base), args.shape, args.layers, args.device)
            say(f"  built in {time.perf_counter() - t:.0f} s")
        from transformers import AutoConfig

        vocab = AutoConfig.from_pretrained(args.base).vocab_size
        rows = make_rows(args.seq, args.effective * args.steps, vocab)
        for name in variants:
            t = time.perf_counter()
            say(f"[{name}] ...")
            try:
                result = measure(name, args, rows, Path(work))
                say(f"[{name}] {result['real_tokens_per_second']:,.0f} real tok/s, {result['step_seconds']:.2f} s/step, "
                    f"peak {result['peak_memory_gb']} GB, MFU {result['mfu']}, micro-batch {result['micro_batch']} "
                    f"x {result['gradient_accumulation_steps']} ({result['batch_layout']}, liger "
                    f"{'on' if result['liger'] else 'off'}; {time.perf_counter() - t:.0f} s)")
            except Exception as error:  # noqa: BLE001 -- one variant's failure is recorded, the others still run
                kind = "out of memory" if is_oom(error) else f"{type(error).__name__}: {str(error)[:300]}"
                if not is_oom(error):
                    traceback.print_exc()
                result = {"variant": name, "error": kind}
                say(f"[{name}] failed: {kind}")
                gc.collect()
                if args.device == "cuda":
                    torch.cuda.empty_cache()
            report["results"].append(result)
            if "error" in result and result["error"] != "out of memory" and name.startswith("ours"):
                # One chance to measure ours anyway: an error in Liger's kernels should not cost the figure.
                say(f"[{name}] again with run.liger=off ...")
                try:
                    retry = measure(name, args, rows, Path(work), liger_off=True)
                    report["results"].append({**retry, "variant": f"{name} (liger off after an error)"})
                    say(f"[{name}] {retry['real_tokens_per_second']:,.0f} real tok/s with Liger off")
                except Exception as error:  # noqa: BLE001
                    report["results"].append({"variant": f"{name} (liger off after an error)",
                                              "error": "out of memory" if is_oom(error) else
                                              f"{type(error).__name__}: {str(error)[:300]}"})
            report["summary"] = summary(report["results"])
            report["readme"] = readme_rows(report)
            report["seconds"] = round(time.perf_counter() - started, 1)
            write(out_dir / f"{stem}.json", report)  # after every variant: a cut-short run keeps what it measured
    plot(report, out_dir / f"{stem}.png")
    s = report["summary"]
    if "speedup_vs_trl_default" in s:
        say(f"ours: {s['speedup_vs_trl_default']}x TRL default's real tokens/s"
            + (f", {s['memory_vs_trl_default']:.0%} of its peak memory" if "memory_vs_trl_default" in s else "")
            + (f" -- goal {'met' if s.get('goal_met') else 'NOT met'} ({s['goal']})" if "goal_met" in s else ""))
    say(f"wrote {out_dir / (stem + '.json')} and {out_dir / (stem + '.png')} in {report['seconds']:.0f} s")
    return 0 if all("error" not in r for r in report["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
