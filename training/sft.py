"""One supervised fine-tuning step shared by `pushback train` and `pushback pocket`: records become
chat rows (through `pushback.chat` only), TRL's `SFTTrainer` trains on the assistant spans with
padding-free batches, and the run reports real (non-pad) tokens per second.

Two row shapes, both produced here:
- `pushback` template: `{"messages": [...]}`; the loss covers the `{% generation %}` span of our
  ChatML template (the think block, the answer and the closing `<|im_end|>`).
- `native` template: `{"prompt": str, "completion": str}` from `pushback.chat.prompt_completion`, for
  tokenizers whose own template would drop or move the think block; the loss covers the completion.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushback.chat import CHAT_TEMPLATE, TemplateMode, prompt_completion, record_to_messages, system_prompt
from pushback.records import Record
from training.recipe import TrainingSection


@dataclass
class SFTSettings(TrainingSection):
    """A recipe's `training` section plus what only a run needs to know. Runs without a recipe (the
    pocket build, benchmarks) set `eval_steps`/`save_steps`/`early_stopping_patience` to None."""

    output_dir: str = ""
    disable_tqdm: bool = False
    quiet: bool = False  # a bare progress bar: no per-step log lines, no dataset progress bars
    extra: dict[str, Any] = field(default_factory=dict)  # passed to SFTConfig as is (benchmarks only)


@dataclass
class SFTResult:
    global_step: int
    train_loss: float
    eval_loss: float | None
    train_tokens: int  # non-pad tokens the model read in this session
    seconds: float
    resumed_from_step: int | None
    log_history: list[dict[str, Any]]

    @property
    def tokens_per_second(self) -> float:
        return self.train_tokens / self.seconds if self.seconds else 0.0


def chat_rows(records: Sequence[Record], tokenizer: Any, *, mode: TemplateMode = "pushback",
              system: str | None = "plain", friction: bool = True) -> list[dict[str, Any]]:
    """Training rows for SFTTrainer from records, rendered only through `pushback.chat`."""
    prompt = system_prompt(system)
    if mode == "pushback":
        return [{"messages": record_to_messages(r, system=prompt, friction=friction)} for r in records]
    return [_single_bos(tokenizer, prompt_completion(tokenizer, r, system=prompt, friction=friction))
            for r in records]


def _single_bos(tokenizer: Any, row: dict[str, str]) -> dict[str, str]:
    """TRL tokenizes prompt-completion text with special tokens on; a template that already wrote the BOS
    (DeepSeek-R1 distill, Llama) would get a second one, so the rendered one is dropped."""
    bos = tokenizer.bos_token
    adds_bos = bool(bos) and tokenizer("", add_special_tokens=True)["input_ids"][:1] == [tokenizer.bos_token_id]
    if adds_bos and row["prompt"].startswith(bos):
        return {**row, "prompt": row["prompt"][len(bos):]}
    return row


def use_our_template(tokenizer: Any, mode: TemplateMode) -> None:
    """The `pushback` mode trains and serves with our ChatML template (it carries generation markers)."""
    if mode == "pushback":
        tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def token_length(tokenizer: Any, row: dict[str, Any]) -> int:
    if "messages" in row:
        return len(tokenizer.apply_chat_template(row["messages"], chat_template=CHAT_TEMPLATE, tokenize=True,
                                                 return_dict=True)["input_ids"])
    return len(tokenizer(row["prompt"] + row["completion"], add_special_tokens=False)["input_ids"])


def drop_too_long(rows: list[dict[str, Any]], tokenizer: Any,
                  max_length: int | None) -> tuple[list[dict[str, Any]], int]:
    """Padding-free batches do not truncate; a friction example cut short would teach a think block that
    never closes, so rows longer than `max_length` are dropped (and counted) instead of truncated."""
    if not max_length:
        return rows, 0
    kept = [row for row in rows if token_length(tokenizer, row) <= max_length]
    return kept, len(rows) - len(kept)


def mixed_precision(cuda: bool) -> dict[str, bool]:
    """bf16 autocast where the GPU has it, fp16 on older GPUs, none on CPU (TRL would default to bf16)."""
    import torch

    bf16 = cuda and torch.cuda.is_bf16_supported()
    return {"bf16": bf16, "fp16": cuda and not bf16}


def sft_config(settings: SFTSettings, *, has_eval: bool, conversational: bool, cuda: bool):
    from trl import SFTConfig

    evaluate = has_eval and settings.eval_steps
    save = bool(settings.save_steps)
    kwargs: dict[str, Any] = dict(
        output_dir=settings.output_dir,
        num_train_epochs=settings.num_train_epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.per_device_train_batch_size,
        per_device_eval_batch_size=settings.per_device_eval_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler_type,
        warmup_steps=settings.warmup_ratio,  # transformers 5: a float below 1 is a ratio of the total steps
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        logging_steps=settings.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=settings.eval_steps if evaluate else None,
        save_strategy="steps" if save else "no",
        save_steps=settings.save_steps if save else 500,
        save_total_limit=settings.save_total_limit,
        load_best_model_at_end=bool(evaluate and save and settings.early_stopping_patience),
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        activation_checkpointing=settings.activation_checkpointing,
        **mixed_precision(cuda),
        # One sequence per pass has no padding to remove; TRL would only warn that packing is pointless.
        padding_free=settings.padding_free and settings.per_device_train_batch_size > 1,
        max_length=None,  # padding-free does not truncate: rows were length-checked before
        assistant_only_loss=conversational,
        completion_only_loss=None if conversational else True,
        optim=settings.optim,
        seed=settings.seed,
        data_seed=settings.seed,
        report_to="none",
        include_num_input_tokens_seen="non_padding",  # real tokens, for tokens/s
        disable_tqdm=settings.disable_tqdm,
        dataloader_num_workers=0,
        save_only_model=False,
        use_cpu=not cuda,
    )
    kwargs.update(settings.extra)
    return SFTConfig(**kwargs)


@contextmanager
def _quiet_datasets(quiet: bool) -> Iterator[None]:
    """Hide the `datasets` map progress bars for the duration, and put the setting back after."""
    from datasets.utils import logging as datasets_logging

    was_enabled = datasets_logging.is_progress_bar_enabled()
    if quiet and was_enabled:
        datasets_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and was_enabled:
            datasets_logging.enable_progress_bar()


def _tokens_seen(checkpoint: str | None) -> int:
    """Tokens counted before this session (a resumed run continues the count from its checkpoint)."""
    if not checkpoint:
        return 0
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return int(state.get("num_input_tokens_seen") or 0)


def build_trainer(model: Any, tokenizer: Any, train_rows: list[dict[str, Any]], eval_rows: list[dict[str, Any]],
                  settings: SFTSettings, *, peft_config: Any = None, callbacks: Sequence[Any] = ()) -> Any:
    """TRL's SFTTrainer over our rows, with its datasets tokenized and labelled (nothing trained yet)."""
    import torch
    from datasets import Dataset
    from transformers import EarlyStoppingCallback

    if not train_rows:
        raise ValueError("no training rows: every record was dropped or the data is empty")
    cuda = torch.cuda.is_available()
    conversational = "messages" in train_rows[0]
    config = sft_config(settings, has_eval=bool(eval_rows), conversational=conversational, cuda=cuda)
    extra_callbacks = list(callbacks)
    if config.load_best_model_at_end:
        extra_callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.early_stopping_patience))
    from trl import SFTTrainer

    with _quiet_datasets(settings.quiet):
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_list(train_rows),
            eval_dataset=Dataset.from_list(eval_rows) if eval_rows and config.eval_strategy != "no" else None,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=extra_callbacks,
        )
    if settings.quiet:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        class BarOnly(ProgressCallback):
            """The progress bar without a line per logged step."""

            def on_log(self, args, state, control, logs=None, **kwargs):
                return None

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        if not settings.disable_tqdm:
            trainer.add_callback(BarOnly)
    if not cuda:
        # TRL casts QLoRA adapters to bf16 (the paper's choice on GPUs); CPUs compute in fp32 and are
        # slower and less precise with bf16 adapters and optimizer state, so keep them in fp32 there.
        for param in trainer.model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
    return trainer


def fit(model: Any, tokenizer: Any, train_rows: list[dict[str, Any]], eval_rows: list[dict[str, Any]],
        settings: SFTSettings, *, peft_config: Any = None, resume: bool = False,
        callbacks: Sequence[Any] = ()) -> tuple[Any, SFTResult]:
    """Train with TRL's SFTTrainer; return the trainer (its `.model` holds the result) and the figures."""
    from transformers.trainer_utils import get_last_checkpoint

    trainer = build_trainer(model, tokenizer, train_rows, eval_rows, settings, peft_config=peft_config,
                            callbacks=callbacks)
    checkpoint = get_last_checkpoint(settings.output_dir) if resume else None
    if resume and checkpoint is None:
        raise FileNotFoundError(f"--resume: no checkpoint-* directory in {settings.output_dir}")
    resumed_from = int(checkpoint.rsplit("-", 1)[-1]) if checkpoint else None
    tokens_before = _tokens_seen(checkpoint)
    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    eval_loss = None
    if trainer.eval_dataset is not None:
        eval_loss = float(trainer.evaluate()["eval_loss"])
    result = SFTResult(
        global_step=output.global_step,
        train_loss=float(output.training_loss),
        eval_loss=eval_loss,
        train_tokens=int(trainer.state.num_input_tokens_seen - tokens_before),
        seconds=seconds,
        resumed_from_step=resumed_from,
        log_history=list(trainer.state.log_history),
    )
    if math.isnan(result.train_loss):
        raise FloatingPointError(f"training loss is NaN after {result.global_step} steps; lower the learning rate")
    return trainer, result
