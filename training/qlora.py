"""QLoRA SFT of a recipe: the library behind `pushback train` and the pocket pair's friction stage.

The steps, in order (as in TRL's sft script, but on our records and chat format):
1. recipe   -- parsed strictly (training.recipe)
2. data     -- records from JSONL / dataset dir / Hub id, split train/eval (training.data)
3. model    -- the base loaded with a 4-bit NF4 BitsAndBytesConfig (CUDA or CPU), LoRA on all linear layers
4. train    -- SFTTrainer: assistant-only loss, padding-free batches, eval, early stopping, cosine, checkpoints
5. save     -- adapter, tokenizer + chat template, resolved recipe, metrics.json, a rendered example, loss plot
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from model_card import build_card
from pushback.backends import device_summary, quantization_kwargs, resolve_weights, torch_dtype
from pushback.files import write_atomic
from pushback.specs import SpecError, parse_spec
from training.data import RecordSplit, load_split
from training.recipe import Recipe
from training.sft import SFTResult, SFTSettings, chat_rows, drop_too_long, fit, use_our_template

CHECKPOINTS = "checkpoints"


@dataclass
class TrainOutput:
    output: Path
    metrics: dict[str, Any]


# --- model ----------------------------------------------------------------------------------------


def resolve_base(spec_text: str) -> str:
    """The base's location (Hub id or directory) for a model spec."""
    spec = parse_spec(spec_text)
    if spec.kind == "litellm":
        raise SpecError(f"model.base {spec_text!r}: a litellm: endpoint has no weights to fine-tune")
    if spec.adapter:
        raise SpecError(f"model.base {spec_text!r}: merge the adapter first (pushback merge), then train on that")
    if spec.kind == "pocket":
        return resolve_weights(spec)[0]  # BackendError says how to build it (`pushback train` builds it first)
    base, adapter = resolve_weights(spec)
    if adapter:
        raise SpecError(f"model.base {spec_text!r} is a LoRA adapter on {base}: merge it first (pushback merge)")
    return base


def compute_dtype(name: str, cuda: bool):
    """`auto`: bf16 on GPUs that have it, fp16 on older ones (T4, V100), fp32 on CPU."""
    import torch

    if name == "auto":
        if not cuda:
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch_dtype(name)


def load_base(base: str, recipe: Recipe) -> tuple[Any, Any]:
    """(model ready for k-bit training, tokenizer with the recipe's chat template)."""
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    dtype = compute_dtype(recipe.model.compute_dtype, cuda)
    tokenizer = AutoTokenizer.from_pretrained(base)
    use_our_template(tokenizer, recipe.model.chat_template)
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true")
    if recipe.model.quantization == "nf4":
        kwargs = quantization_kwargs("4bit", device)
        kwargs["quantization_config"].bnb_4bit_compute_dtype = dtype
        if fsdp:  # FSDP shards parameters of one dtype: store the 4-bit weights in the compute dtype
            kwargs["quantization_config"].bnb_4bit_quant_storage = dtype
        kwargs["dtype"] = dtype
    else:
        kwargs = {"dtype": dtype}
    # One process per GPU under accelerate launch (LOCAL_RANK); FSDP places the shards itself.
    device_map = None if fsdp else {"": int(os.environ.get("LOCAL_RANK", 0)) if cuda else "cpu"}
    model = AutoModelForCausalLM.from_pretrained(base, device_map=device_map,
                                                 attn_implementation=recipe.model.attn_implementation, **kwargs)
    model.config.use_cache = False  # padding-free attention is correct only without a KV cache
    if recipe.model.quantization == "nf4":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=recipe.training.activation_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, tokenizer


def lora_config(recipe: Recipe, tokenizer: Any):
    from peft import LoraConfig

    return LoraConfig(r=recipe.lora.r, lora_alpha=recipe.lora.alpha, lora_dropout=recipe.lora.dropout,
                      target_modules=recipe.lora.target_modules, task_type="CAUSAL_LM", bias="none",
                      modules_to_save=recipe.lora.modules_to_save or None)


def settings_for(recipe: Recipe, output: Path, *, quiet: bool = False) -> SFTSettings:
    fields = asdict(recipe.training)
    fields.pop("output_dir")
    return SFTSettings(output_dir=str(output / CHECKPOINTS), quiet=quiet, **fields)


# --- outputs --------------------------------------------------------------------------------------


def rendered_example(trainer: Any, tokenizer: Any) -> str:
    """The first training row as the model sees it, and exactly the part inside the loss."""
    row = trainer.train_dataset[0]
    ids, labels = row["input_ids"], row["labels"]
    trained = [i for i, label in zip(ids, labels) if label != -100]
    return ("=== training text (what the model reads) ===\n"
            + tokenizer.decode(ids, skip_special_tokens=False)
            + "\n\n=== inside the loss (assistant spans only) ===\n"
            + tokenizer.decode(trained, skip_special_tokens=False) + "\n")


def plot_losses(log_history: list[dict[str, Any]], path: Path) -> Path | None:
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def metrics_for(result: SFTResult, split: RecordSplit, dropped: int, base: str, recipe: Recipe) -> dict[str, Any]:
    import peft
    import torch
    import transformers
    import trl

    return {
        "base_model": base,
        "data_source": split.source,
        "records": {"train": len(split.train), "eval": len(split.eval), "dropped_too_long": dropped},
        "global_step": result.global_step,
        "resumed_from_step": result.resumed_from_step,
        "train_loss": round(result.train_loss, 4),
        "eval_loss": None if result.eval_loss is None else round(result.eval_loss, 4),
        "first_logged_loss": next((e["loss"] for e in result.log_history if "loss" in e), None),
        "last_logged_loss": next((e["loss"] for e in reversed(result.log_history) if "loss" in e), None),
        "train_seconds": round(result.seconds, 2),
        "train_tokens": result.train_tokens,
        "tokens_per_second": round(result.tokens_per_second, 1),
        "hardware": device_summary(),
        "quantization": recipe.model.quantization,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "trl": trl.__version__, "peft": peft.__version__},
        "log_history": result.log_history,
    }


# --- the run --------------------------------------------------------------------------------------


def run_training(recipe: Recipe, output: str | Path | None = None, *, resume: bool = False,
                 split: RecordSplit | None = None, quiet: bool = False) -> TrainOutput:
    """Train an adapter per the recipe; `split` replaces the recipe's data (the pocket build uses it)."""
    out = Path(output or recipe.training.output_dir)
    recipe.training.output_dir = str(out)
    if not resume and (out / CHECKPOINTS).exists() and any((out / CHECKPOINTS).glob("checkpoint-*")):
        raise FileExistsError(f"{out}: holds checkpoints of an earlier run; pass --resume to continue it "
                              f"or choose another --output")
    base = resolve_base(recipe.model.base)
    split = split or load_split(recipe.data.source, test_size=recipe.data.test_size, seed=recipe.data.split_seed)
    if recipe.data.limit or recipe.data.eval_limit:
        split = RecordSplit(split.train[: recipe.data.limit or None], split.eval[: recipe.data.eval_limit or None],
                            split.source)
    model, tokenizer = load_base(base, recipe)
    mode = recipe.model.chat_template
    train_rows, dropped = drop_too_long(chat_rows(split.train, tokenizer, mode=mode, system=recipe.data.system),
                                        tokenizer, recipe.data.max_length)
    eval_rows, _ = drop_too_long(chat_rows(split.eval, tokenizer, mode=mode, system=recipe.data.system),
                                 tokenizer, recipe.data.max_length)
    if dropped and not quiet:
        print(f"note: {dropped} training records are longer than data.max_length={recipe.data.max_length} "
              f"tokens and were left out (raise data.max_length to keep them)")
    trainer, result = fit(model, tokenizer, train_rows, eval_rows, settings_for(recipe, out, quiet=quiet),
                          peft_config=lora_config(recipe, tokenizer), resume=resume)
    trainer.save_model(str(out))  # the adapter and the tokenizer with its chat template (FSDP-safe)
    if not trainer.is_world_process_zero():
        return TrainOutput(out, {})
    write_atomic(out / "recipe.yaml", recipe.to_yaml())
    write_atomic(out / "training_example.txt", rendered_example(trainer, tokenizer))
    metrics = metrics_for(result, split, dropped, base, recipe)
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    plot_losses(result.log_history, out / "loss.png")
    # TRL's own card calls an adapter `library_name: transformers`; ours says what this folder is.
    write_atomic(out / "README.md", build_card(out, kind="adapter", repo_id=f"local/{out.name}"))
    return TrainOutput(out, metrics)
