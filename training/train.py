"""`pushback train --recipe R [--set key=value ...] [--output DIR] [--resume]`: QLoRA with TRL, one pipeline
for every method (`sft`, `dpo`, `orpo`), read top to bottom like TRL's `trl/scripts/sft.py`:

1. recipe  -- `training.recipe`: our sections, and `training:` as the method's TRL config
2. data    -- records split train/eval, rendered into the method's rows (`training.data`)
3. model   -- the base in 4-bit NF4 (CUDA or CPU); a new LoRA, or the recipe's adapter to continue
4. trainer -- TRL's SFTTrainer / DPOTrainer / ORPOTrainer, with the batch layout chosen for the hardware
              (`training.layout`, said in the first lines of the run)
5. save    -- written beside the output and moved in only after a successful run: the adapter, tokenizer and
              chat template, the resolved recipe, metrics.json, a rendered example, the loss plot, the card

Preference methods keep one model in memory. DPO's reference is the policy with its adapter switched off
(`ref_model=None` on a peft model): from a new LoRA that is the base; continuing an SFT adapter
(`model.adapter`), TRL keeps a frozen copy of that adapter's weights (adapter-sized) as the reference, and
the result is one adapter on the same base -- it loads as `base+adapter` and merges like any other.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pushback.files import write_atomic
from pushback.specs import ModelSpec, SpecError, parse_spec
from training.data import RecordSplit, Rows, load_split, rows_for, use_our_template
from training.layout import Layout, choose_layout, cuda_memory, probe_micro_batch
from training.recipe import Recipe, RecipeError, config_class, load_recipe

CHECKPOINTS = "checkpoints"
# Fields every run sets the same way (a recipe may still set them); the layout's fields come after the recipe's.
RUN_DEFAULTS: dict[str, Any] = {"logging_first_step": True, "report_to": "none", "dataloader_num_workers": 0,
                                 "include_num_input_tokens_seen": "non_padding",  # real tokens, for tokens/s
                                 "save_only_model": False}


@contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """Run with `count` torch threads and put the old setting back (runs may happen inside tests or the build)."""
    import torch

    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class TrainOutput:
    output: Path
    metrics: dict[str, Any]


# --- 1. recipe ------------------------------------------------------------------------------------


def resolve_base(spec: ModelSpec) -> str:
    """The base's location (Hub id or directory) for a parsed model spec (a missing pocket pair is built)."""
    from pushback.backends import BackendError, resolve_weights
    from pushback.pocket import ensure_built

    if spec.kind == "litellm":
        raise SpecError(f"model.base {spec.raw!r}: a litellm: endpoint has no weights to fine-tune")
    if spec.adapter:
        raise SpecError(f"model.base {spec.raw!r}: put the adapter in model.adapter (or merge it first)")
    if spec.kind == "pocket":
        try:
            ensure_built()
        except RuntimeError as e:
            raise BackendError(str(e)) from None
    base, adapter = resolve_weights(spec)
    if adapter:
        raise SpecError(f"model.base {spec.raw!r} is a LoRA adapter on {base}: set model.base: {base} and "
                        f"model.adapter: {adapter}")
    return base


def check_output(out: Path, resume: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--output {out}: a file is in the way; choose a directory")
    checkpoints = out / CHECKPOINTS
    if not resume and any(checkpoints.glob("checkpoint-*")):
        raise FileExistsError(f"{out}: holds checkpoints of an earlier run; pass --resume to continue it "
                              f"or choose another --output")
    if resume and not any(checkpoints.glob("checkpoint-*")):
        raise FileNotFoundError(f"--resume: no checkpoint-* directory in {checkpoints}")


# --- 2. data --------------------------------------------------------------------------------------


def limited(split: RecordSplit, recipe: Recipe) -> RecordSplit:
    data = recipe.data
    if data.limit is None and data.eval_limit is None:
        return split
    return RecordSplit(split.train[: data.limit], split.eval[: data.eval_limit], split.source)


# --- 3. model -------------------------------------------------------------------------------------


def compute_dtype(name: str, cuda: bool):
    """`auto`: bf16 on GPUs that have it, fp16 on older ones (T4, V100), fp32 on CPU."""
    import torch

    from pushback.backends import torch_dtype

    if name == "auto":
        if not cuda:
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch_dtype(name)


def load_tokenizer(base: str, recipe: Recipe) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    use_our_template(tokenizer, recipe.model.chat_template)
    return tokenizer


def load_model(base: str, recipe: Recipe, layout: Layout) -> tuple[Any, Any]:
    """(model, peft_config): the base (4-bit NF4 unless the recipe says none) with the recipe's adapter made
    trainable, or with a LoRA config for the trainer to apply."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    cuda = layout.device == "cuda"
    dtype = compute_dtype(recipe.model.compute_dtype, cuda)
    kwargs: dict[str, Any] = {"dtype": dtype}
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true")
    if recipe.model.quantization == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True,
            # FSDP shards parameters of one dtype: store the 4-bit weights in the compute dtype
            bnb_4bit_quant_storage=dtype if fsdp else torch.uint8)
    # One process per GPU under accelerate launch (LOCAL_RANK); FSDP places the shards itself.
    device_map = None if fsdp else {"": int(os.environ.get("LOCAL_RANK", "0")) if cuda else "cpu"}
    model = AutoModelForCausalLM.from_pretrained(base, device_map=device_map,
                                                 attn_implementation=recipe.model.attn_implementation, **kwargs)
    model.config.use_cache = False  # padding-free attention is correct only without a KV cache
    if not recipe.model.adapter:
        return model, lora_config(recipe)
    from peft import PeftModel

    trained_on = json.loads((Path(recipe.model.adapter) / "adapter_config.json").read_text())["base_model_name_or_path"]
    if Path(trained_on).resolve() != Path(base).resolve() and trained_on != base:
        raise ValueError(f"model.adapter {recipe.model.adapter} was trained on {trained_on}, not on model.base "
                         f"{recipe.model.base} ({base})")
    return PeftModel.from_pretrained(model, recipe.model.adapter, is_trainable=True), None


def lora_config(recipe: Recipe):
    from peft import LoraConfig

    lora = recipe.lora
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
                      task_type="CAUSAL_LM", bias="none", modules_to_save=lora.modules_to_save or None)


# --- 4. trainer -----------------------------------------------------------------------------------


def precision(layout: Layout, recipe: Recipe) -> dict[str, bool]:
    """Mixed precision in the compute dtype on CUDA; none on CPU (TRL would default to bf16 autocast)."""
    import torch

    dtype = compute_dtype(recipe.model.compute_dtype, layout.device == "cuda")
    cuda = layout.device == "cuda"
    return {"bf16": cuda and dtype == torch.bfloat16, "fp16": cuda and dtype == torch.float16}


def trl_config(recipe: Recipe, layout: Layout, *, checkpoints: Path, evaluate: bool, row: dict[str, Any]) -> Any:
    """The method's TRL config: our run defaults, then the recipe's `training:` section as is, then what the
    layout, the template and the hardware decide."""
    values = {**RUN_DEFAULTS, **recipe.training}
    values.update(layout.config(recipe.method, per_device_batch=values.get("per_device_train_batch_size", 8),
                                max_length=recipe.data.max_length))
    values.update(precision(layout, recipe), output_dir=str(checkpoints))
    if recipe.method == "sft":  # the loss covers the assistant's turn (our template) or the completion (native)
        values.update(assistant_only_loss="messages" in row, completion_only_loss="completion" in row)
    if not evaluate:
        values.update(eval_strategy="no", load_best_model_at_end=False)
    try:
        return config_class(recipe.method)(**values)
    except (ValueError, TypeError) as e:  # TRL's / transformers' own checks of the combination
        raise RecipeError(f"training: TRL's {config_class(recipe.method).__name__} refuses it: {e}") from None


def _count_orpo_tokens(collate):
    """ORPO batches hold `chosen_*` / `rejected_*` keys only, so the Trainer cannot count their real tokens;
    give it the two attention masks under the names it reads (ORPO's forward ignores unprefixed keys)."""
    def collate_and_count(features):
        import torch

        batch = collate(features)
        masks = torch.cat([batch["chosen_attention_mask"].flatten(), batch["rejected_attention_mask"].flatten()])
        return {**batch, "input_ids": masks, "attention_mask": masks}
    return collate_and_count


def build_trainer(recipe: Recipe, layout: Layout, model: Any, tokenizer: Any, train: Rows, held_out: Rows,
                  peft_config: Any, *, checkpoints: Path, quiet: bool = False, callbacks: list[Any] | None = None) -> Any:
    """TRL's trainer for the method, its datasets tokenized and labelled (nothing trained yet)."""
    import torch
    from datasets import Dataset
    from transformers import EarlyStoppingCallback

    if not train.rows:
        raise ValueError("no training rows: every record was dropped or the data is empty")
    evaluate = bool(held_out.rows) and recipe.training.get("eval_strategy", "no") != "no"
    config = trl_config(recipe, layout, checkpoints=checkpoints, evaluate=evaluate, row=train.rows[0])
    callbacks = list(callbacks or [])
    if recipe.run.early_stopping_patience and config.load_best_model_at_end:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=recipe.run.early_stopping_patience))
    data = {"train_dataset": Dataset.from_list(train.rows),
            "eval_dataset": Dataset.from_list(held_out.rows) if evaluate else None}
    common = dict(args=config, processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks, **data)
    with _quiet_datasets(quiet):
        if recipe.method == "sft":
            from trl import SFTTrainer

            trainer = SFTTrainer(model=model, **common)
        elif recipe.method == "dpo":
            from trl import DPOTrainer

            trainer = DPOTrainer(model=model, ref_model=None, **common)  # the reference: adapter switched off
        else:
            from trl.experimental.orpo import ORPOTrainer

            trainer = ORPOTrainer(model=model, **common)
            trainer.data_collator = _count_orpo_tokens(trainer.data_collator)
    if config.train_sampling_strategy == "group_by_length" and config.remove_unused_columns:
        # The sampler sees the dataset after unused columns are dropped; keep our token lengths for it (DPO's
        # tokenized pairs have no input_ids column it could measure instead). The collators ignore the column.
        trainer._set_signature_columns_if_needed()
        trainer._signature_columns = [*trainer._signature_columns, config.length_column_name]
    if quiet:
        _bar_only(trainer, config.disable_tqdm)
    if layout.device == "cpu":
        # TRL casts QLoRA adapters to bf16 (the paper's choice on GPUs); CPUs compute in fp32 and are
        # slower and less precise with bf16 adapters and optimizer state, so keep them in fp32 there.
        for param in trainer.model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
    return trainer


def fit_micro_batch(trainer: Any, lengths: list[int], log=print, memory=cuda_memory) -> None:
    """CUDA: the largest micro-batch that fits, with accumulation making up the recipe's effective batch."""
    args = trainer.args
    effective = args.per_device_train_batch_size * args.gradient_accumulation_steps
    log(f"auto batch size: probing micro-batches of the longest rows (effective batch {effective})")
    micro = probe_micro_batch(trainer, lengths, effective, log=log, memory=memory)
    args.per_device_train_batch_size, args.gradient_accumulation_steps = micro, effective // micro
    # The Trainer copied the batch size when it was built and its dataloader reads that copy (measured on an
    # H200: without this, 16 x 1 ran as 4 x 1, a quarter of the recipe's effective batch).
    trainer._train_batch_size = args.train_batch_size
    log(f"auto batch size: micro-batch {micro} x accumulation {effective // micro} = {effective} rows per step")


def _bar_only(trainer: Any, disabled: bool) -> None:
    """The progress bar without a line per logged step."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class BarOnly(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            return None

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if not disabled:
        trainer.add_callback(BarOnly)


class _quiet_datasets:
    """Hide the `datasets` map progress bars for the duration, and put the setting back after."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __enter__(self):
        from datasets.utils import logging as datasets_logging

        self.was_enabled = datasets_logging.is_progress_bar_enabled()
        if self.quiet and self.was_enabled:
            datasets_logging.disable_progress_bar()

    def __exit__(self, *exc):
        from datasets.utils import logging as datasets_logging

        if self.quiet and self.was_enabled:
            datasets_logging.enable_progress_bar()


@dataclass
class Fit:
    global_step: int
    train_loss: float
    eval_metrics: dict[str, float]
    train_tokens: int  # non-pad tokens the model read in this session
    seconds: float
    resumed_from_step: int | None
    log_history: list[dict[str, Any]]

    @property
    def tokens_per_second(self) -> float:
        return self.train_tokens / self.seconds if self.seconds else 0.0


def fit(trainer: Any, checkpoints: Path, *, resume: bool) -> Fit:
    """Train (from the last checkpoint on --resume), evaluate, and return the figures."""
    from transformers.trainer_utils import get_last_checkpoint

    checkpoint = get_last_checkpoint(str(checkpoints)) if resume else None
    tokens_before = 0
    if checkpoint:  # a resumed run continues the token count of its checkpoint
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
        tokens_before = int(state.get("num_input_tokens_seen") or 0)
    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    eval_metrics = trainer.evaluate() if trainer.eval_dataset is not None else {}
    if math.isnan(output.training_loss):
        raise FloatingPointError(f"training loss is NaN after {output.global_step} steps; lower the learning rate")
    return Fit(output.global_step, float(output.training_loss), {k: float(v) for k, v in eval_metrics.items()
                                                                  if isinstance(v, (int, float))},
               int(trainer.state.num_input_tokens_seen - tokens_before), seconds,
               int(checkpoint.rsplit("-", 1)[-1]) if checkpoint else None, list(trainer.state.log_history))


# --- 5. save --------------------------------------------------------------------------------------


def _decoded(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False)


def rendered_example(trainer: Any, tokenizer: Any) -> str:
    """The first training row as the model reads it, and exactly the part inside the loss."""
    row = trainer.train_dataset[0]
    if "chosen_ids" in row:  # DPO: the collator's completion mask covers chosen_ids / rejected_ids only
        read = _decoded(tokenizer, row["prompt_ids"] + row["chosen_ids"])
        trained = (f"[chosen]\n{_decoded(tokenizer, row['chosen_ids'])}\n\n"
                   f"[rejected]\n{_decoded(tokenizer, row['rejected_ids'])}")
    elif "chosen_labels" in row:  # ORPO: labels are -100 over the prompt
        read = _decoded(tokenizer, row["chosen_input_ids"])
        trained = "\n\n".join(
            f"[{side}]\n" + _decoded(tokenizer, [t for t, label in zip(row[f"{side}_input_ids"], row[f"{side}_labels"])
                                                 if label != -100]) for side in ("chosen", "rejected"))
    else:  # SFT: labels are -100 outside the assistant's turn (our template) or the completion (native)
        read = _decoded(tokenizer, row["input_ids"])
        trained = _decoded(tokenizer, [t for t, label in zip(row["input_ids"], row["labels"]) if label != -100])
    return ("=== training text (what the model reads) ===\n" + read
            + "\n\n=== inside the loss (the completion only) ===\n" + trained + "\n")


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


REWARD_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


def _rewards(fit_result: Fit) -> dict[str, Any]:
    """The preference figures: first and last logged training values, and the final evaluation."""
    logged = [e for e in fit_result.log_history if "rewards/margins" in e]
    pick = lambda entry: {k: round(entry[k], 4) for k in REWARD_KEYS if k in entry}
    evals = {k: round(fit_result.eval_metrics[f"eval_{k}"], 4) for k in REWARD_KEYS
             if f"eval_{k}" in fit_result.eval_metrics}
    return {"train_first": pick(logged[0]) if logged else {}, "train_last": pick(logged[-1]) if logged else {},
            "eval": evals}


def metrics_for(recipe: Recipe, result: Fit, split: RecordSplit, train: Rows, held_out: Rows, base: str,
                layout: Layout, trainer: Any) -> dict[str, Any]:
    import peft
    import torch
    import transformers
    import trl

    from pushback.backends import device_summary

    metrics: dict[str, Any] = {
        "method": recipe.method,
        "base_model": base,
        "start_adapter": recipe.model.adapter,
        "data_source": split.source,
        "records": {"train": len(split.train), "eval": len(split.eval), "dropped_too_long": train.too_long},
        "global_step": result.global_step,
        "resumed_from_step": result.resumed_from_step,
        "train_loss": round(result.train_loss, 4),
        "eval_loss": round(result.eval_metrics["eval_loss"], 4) if "eval_loss" in result.eval_metrics else None,
        "first_logged_loss": next((e["loss"] for e in result.log_history if "loss" in e), None),
        "last_logged_loss": next((e["loss"] for e in reversed(result.log_history) if "loss" in e), None),
        "train_seconds": round(result.seconds, 2),
        "train_tokens": result.train_tokens,
        "tokens_per_second": round(result.tokens_per_second, 1),
        "hardware": device_summary() if layout.device == "cuda" else f"CPU ({os.cpu_count()} cores)",
        "layout": {"device": layout.device, "batch_layout": layout.name, "reason": layout.reason,
                   "liger": layout.liger, "micro_batch": trainer.args.per_device_train_batch_size,
                   "gradient_accumulation_steps": trainer.args.gradient_accumulation_steps},
        "quantization": recipe.model.quantization,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "trl": trl.__version__, "peft": peft.__version__},
        "log_history": result.log_history,
    }
    if recipe.method != "sft":
        metrics["preference"] = {
            "beta": trainer.args.beta,
            "pairs": {"train": len(train.rows), "eval": len(held_out.rows), **train.kinds,
                      "records_without_rejected": train.no_rejected},
            "rewards": _rewards(result)}
    return metrics


def move_in(stage: Path, out: Path) -> None:
    """The staged files into the output, then the stage removed; the card and the metrics last, so an output
    that has them is whole."""
    out.mkdir(parents=True, exist_ok=True)
    last = ("metrics.json", "README.md")
    for path in sorted(stage.iterdir(), key=lambda p: (p.name in last, last.index(p.name) if p.name in last else 0)):
        target = out / path.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(path, target)
    stage.rmdir()


def save(trainer: Any, recipe: Recipe, out: Path, metrics_of: Any, base_label: str) -> dict[str, Any]:
    """Everything the run leaves, written to a stage beside `out` and moved in at the end."""
    from model_card import build_card

    model = trainer.model
    if "ref" in getattr(model, "peft_config", {}):  # DPO's frozen copy of the starting adapter: not a result
        model.delete_adapter("ref")
    stage = out.parent / f".{out.name}.staging"
    if trainer.is_world_process_zero():
        shutil.rmtree(stage, ignore_errors=True)
    try:
        trainer.save_model(str(stage))  # the adapter and the tokenizer with its chat template (FSDP-safe)
        if not trainer.is_world_process_zero():
            return {}
        saved = recipe.to_dict()
        saved["model"]["base"] = base_label
        saved["training"]["output_dir"] = str(out)
        write_atomic(stage / "recipe.yaml", _yaml(saved))
        write_atomic(stage / "training_example.txt", rendered_example(trainer, trainer.processing_class))
        metrics = metrics_of()
        write_atomic(stage / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        plot_losses(metrics["log_history"], stage / "loss.png")
        # TRL's own card calls an adapter `library_name: transformers`; ours says what this folder is.
        write_atomic(stage / "README.md", build_card(stage, kind="adapter", repo_id=f"local/{out.name}"))
        move_in(stage, out)
        return metrics
    finally:
        if trainer.is_world_process_zero():
            shutil.rmtree(stage, ignore_errors=True)


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# --- the pipeline ---------------------------------------------------------------------------------


def run_training(recipe: Recipe, output: str | Path | None = None, *, resume: bool = False,
                 split: RecordSplit | None = None, base_label: str | None = None, quiet: bool = False,
                 log=print) -> TrainOutput:
    """Train an adapter per the recipe. `split` replaces the recipe's data and `base_label` names the base in
    the saved recipe, metrics and card (the pocket build trains on a directory it calls pocket:baseline)."""
    import torch

    # 1. recipe
    out = Path(output or recipe.output_dir)
    check_output(out, resume)
    spec = parse_spec(recipe.model.base)
    base = resolve_base(spec)
    layout = choose_layout(recipe, cuda=torch.cuda.is_available())
    for line in layout.describe():
        log(line)

    # 2. data
    split = limited(split or load_split(recipe.data.source, test_size=recipe.data.test_size,
                                        seed=recipe.data.split_seed), recipe)
    tokenizer = load_tokenizer(base, recipe)
    render = {"mode": recipe.model.chat_template, "system": recipe.data.system, "max_length": recipe.data.max_length}
    train, held_out = rows_for(recipe.method, split.train, tokenizer, **render), \
        rows_for(recipe.method, split.eval, tokenizer, **render)
    if train.too_long and not quiet:
        log(f"note: {train.too_long} training rows are longer than data.max_length={recipe.data.max_length} "
            "tokens and were left out (raise data.max_length to keep them)")
    if train.kinds:
        log(f"preference pairs: {len(train.rows)} for training ({train.kinds['friction']} friction, "
            f"{train.kinds['benign']} benign), {len(held_out.rows)} held out"
            + (f"; {train.no_rejected} benign records have no over-cautious reply" if train.no_rejected else ""))

    with cpu_threads(recipe.run.threads if layout.device == "cpu" else None):
        # 3. model
        model, peft_config = load_model(base, recipe, layout)

        # 4. trainer
        checkpoints = out / CHECKPOINTS
        trainer = build_trainer(recipe, layout, model, tokenizer, train, held_out, peft_config,
                                checkpoints=checkpoints, quiet=quiet)
        if layout.device == "cuda" and recipe.run.auto_batch_size:
            fit_micro_batch(trainer, [row["length"] for row in train.rows], log=log)
        result = fit(trainer, checkpoints, resume=resume)

        # 5. save
        label = base_label or (spec.raw if spec.kind in ("pocket", "hub") else base)
        metrics = save(trainer, recipe, out, lambda: metrics_for(recipe, result, split, train, held_out, label,
                                                                 layout, trainer), label)
    return TrainOutput(out, metrics)


# --- the command ----------------------------------------------------------------------------------


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", required=True, help="YAML recipe, e.g. training/recipes/pocket.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    parser.add_argument("--output", help="output directory (default: the recipe's training.output_dir)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output")


def main(args: argparse.Namespace) -> int:
    from pushback.backends import BackendError
    from pushback.records import RecordsError

    try:
        recipe = load_recipe(args.recipe, args.set)
        result = run_training(recipe, args.output, resume=args.resume)
    except (RecipeError, RecordsError, SpecError, BackendError, ValueError, FloatingPointError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    m = result.metrics
    if not m:  # not the main process of a distributed run
        return 0
    print(f"adapter saved to {result.output} ({m['method']})")
    print(f"  steps {m['global_step']}"
          + (f" (resumed from {m['resumed_from_step']})" if m["resumed_from_step"] else "")
          + f", train loss {m['first_logged_loss']:.3f} -> {m['last_logged_loss']:.3f}, eval loss {m['eval_loss']}")
    if "preference" in m:
        last = m["preference"]["rewards"]["eval"] or m["preference"]["rewards"]["train_last"]
        print(f"  reward margin {last.get('rewards/margins')}, accuracy {last.get('rewards/accuracies')} "
              f"(beta {m['preference']['beta']}, {m['preference']['pairs']['train']} pairs)")
    print(f"  {m['train_tokens']} tokens in {m['train_seconds']} s = {m['tokens_per_second']} tokens/s on {m['hardware']}")
    print(f"  records: {m['records']}")
    return 0
