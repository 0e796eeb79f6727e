"""The data step: records, then the rows each method trains on.

Records come from local JSONL files (globs), a dataset directory built by `pushback dataset build`
(parquet), or a Hub dataset id. Every row is validated as a `Record`, so a bad row is reported with where
it came from, and the train/eval split is the project's one split (`pushback.splits.split_records`) unless
the dataset brings its own test split.

Rows are rendered only through `pushback.chat`:
- SFT, `pushback` template: `{"messages": [...]}`; the loss covers the `{% generation %}` span of our
  ChatML template (the think block, the answer and the closing `<|im_end|>`).
- SFT, `native` template: `{"prompt", "completion"}` from `pushback.chat.prompt_completion`, for tokenizers
  whose own template would drop or move the think block; the loss covers the completion.
- DPO / ORPO: `pushback.chat.preference_pair` rendered with the model's template into TRL's standard
  preference rows `{"prompt", "chosen", "rejected"}`: each completion is the reply and the end of its turn,
  so the loss covers exactly the monologue, the answer and the end of the turn.
Rows longer than `data.max_length` tokens are left out (and counted), never cut: a friction example cut
short would teach a think block that never closes.
"""
from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushback.chat import (
    CHAT_TEMPLATE,
    END_OF_TURN,
    TemplateMode,
    completion_after,
    preference_pair,
    prompt_completion,
    record_to_messages,
    system_prompt,
)
from pushback.paths import REPO_ROOT
from pushback.records import Record, load_records
from pushback.splits import split_records


@dataclass
class RecordSplit:
    train: list[Record]
    eval: list[Record]
    source: str  # a human-readable description for cards and logs


@dataclass
class Rows:
    """What one split becomes for a method, and what was left out on the way."""

    rows: list[dict[str, Any]]
    too_long: int = 0
    no_rejected: int = 0  # preference methods: benign records without an over-cautious reply
    kinds: dict[str, int] = field(default_factory=dict)  # preference methods: friction / benign pairs kept


# --- records ----------------------------------------------------------------------------------------


def _expand(pattern: str) -> list[Path]:
    path = Path(pattern).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, REPO_ROOT / path]
    for candidate in candidates:
        matches = sorted(Path(p) for p in glob.glob(str(candidate)))
        if matches:
            return matches
    return []


def _dataset_split(source: str, split: str) -> list[Record]:
    from pydantic import ValidationError

    from pushback.dataset import load_dataset_records

    try:
        return load_dataset_records(source, split=split)
    except ValidationError as e:
        raise ValueError(f"{source} ({split} split): a row is not a valid record: {e}") from None


def _from_dataset(source: str, test_size: float, seed: int) -> RecordSplit:
    """A directory from `pushback dataset build` or a Hub dataset id: its own test split when it has one."""
    from datasets import get_dataset_split_names

    splits = get_dataset_split_names(source)
    if "train" not in splits:
        raise ValueError(f"{source}: the dataset has no train split (splits: {splits})")
    train = _dataset_split(source, "train")
    held_name = next((s for s in ("test", "validation") if s in splits), None)
    if held_name:
        return RecordSplit(train, _dataset_split(source, held_name), source)
    train, held_out = split_records(train, test_size, seed)
    return RecordSplit(train, held_out, source)


def load_split(sources: list[str] | str, *, test_size: float = 0.1, seed: int = 0) -> RecordSplit:
    """Records for training and evaluation from the recipe's `data.source`."""
    sources = [sources] if isinstance(sources, str) else list(sources)
    if not sources:
        raise ValueError("data.source is empty: give JSONL files, a dataset directory or a Hub dataset id")
    files: list[Path] = []
    for source in sources:
        matches = _expand(source)
        if len(sources) == 1 and len(matches) == 1 and matches[0].is_dir():
            return _from_dataset(str(matches[0]), test_size, seed)
        if matches:
            files += [m for m in matches if m.is_file()]
            continue
        looks_like_hub_id = source.count("/") == 1 and not source.endswith((".jsonl", ".json", "*"))
        if len(sources) == 1 and looks_like_hub_id and not Path(source).exists():
            return _from_dataset(source, test_size, seed)
        raise FileNotFoundError(f"data.source {source!r}: no such file, directory or glob match")
    train, held_out = split_records(load_records(files), test_size, seed)
    return RecordSplit(train, held_out, ", ".join(sources))


# --- rows -------------------------------------------------------------------------------------------


def use_our_template(tokenizer: Any, mode: TemplateMode) -> None:
    """The `pushback` mode trains and serves with our ChatML template (it carries generation markers)."""
    if mode == "pushback":
        tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def _single_bos(tokenizer: Any, row: dict[str, str]) -> dict[str, str]:
    """TRL tokenizes prompt text with special tokens on; a template that already wrote the BOS (DeepSeek-R1
    distill, Llama) would get a second one, so the rendered one is dropped."""
    bos = tokenizer.bos_token
    adds_bos = bool(bos) and tokenizer("", add_special_tokens=True)["input_ids"][:1] == [tokenizer.bos_token_id]
    if adds_bos and row["prompt"].startswith(bos):
        return {**row, "prompt": row["prompt"][len(bos):]}
    return row


def chat_rows(records: Sequence[Record], tokenizer: Any, *, mode: TemplateMode = "pushback",
              system: str | None = "plain", friction: bool = True) -> list[dict[str, Any]]:
    """SFT rows from records (the friction turn, or with friction=False the eager baseline turn)."""
    prompt = system_prompt(system)
    if mode == "pushback":
        return [{"messages": record_to_messages(r, system=prompt, friction=friction)} for r in records]
    return [_single_bos(tokenizer, prompt_completion(tokenizer, r, system=prompt, friction=friction))
            for r in records]


def preference_row(tokenizer: Any, pair: dict[str, list[dict[str, str]]], mode: TemplateMode) -> dict[str, str]:
    """A `pushback.chat.preference_pair` as the model reads it: the prompt in the model's template, and each
    reply followed by the end of its turn (our `<|im_end|>`, or the native template's EOS)."""
    prompt = tokenizer.apply_chat_template(pair["prompt"], tokenize=False, add_generation_prompt=True)
    eos = END_OF_TURN if mode == "pushback" else tokenizer.eos_token
    row = {"prompt": prompt, "chosen": completion_after(prompt, pair["chosen"][-1]["content"], eos),
           "rejected": completion_after(prompt, pair["rejected"][-1]["content"], eos)}
    return _single_bos(tokenizer, row)


def token_length(tokenizer: Any, row: dict[str, Any]) -> int:
    """Tokens of the longest sequence the row trains on."""
    if "messages" in row:
        return len(tokenizer.apply_chat_template(row["messages"], chat_template=CHAT_TEMPLATE, tokenize=True,
                                                 return_dict=True)["input_ids"])
    if "completion" in row:
        return len(tokenizer(row["prompt"] + row["completion"], add_special_tokens=False)["input_ids"])
    if "chosen" in row:
        return max(len(tokenizer(row["prompt"] + row[side], add_special_tokens=False)["input_ids"])
                   for side in ("chosen", "rejected"))
    return len(tokenizer(row["text"], add_special_tokens=False)["input_ids"])


def rows_for(method: str, records: Sequence[Record], tokenizer: Any, *, mode: TemplateMode, system: str | None,
             max_length: int | None) -> Rows:
    """The rows `method` trains on, each with its `length` in tokens (for length-grouped batches)."""
    no_rejected = 0
    kinds = {"friction": 0, "benign": 0}
    if method == "sft":
        rows = chat_rows(records, tokenizer, mode=mode, system=system)
    else:
        rows = []
        for record in records:
            pair = preference_pair(record, system=system_prompt(system))
            if pair is None:
                no_rejected += 1
                continue
            rows.append({**preference_row(tokenizer, pair, mode),
                         "kind": "benign" if record.category == "benign" else "friction"})
    kept = []
    for row in rows:
        length = token_length(tokenizer, row)
        if max_length and length > max_length:
            continue
        kept.append({**row, "length": length})
    if method != "sft":
        for row in kept:
            kinds[row.pop("kind")] += 1
    return Rows(kept, too_long=len(rows) - len(kept), no_rejected=no_rejected, kinds=kinds if method != "sft" else {})
