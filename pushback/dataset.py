"""Records as a Hugging Face dataset: explicit features, parquet splits, and back again.

Two configs: `default` (one row per record, for SFT) and `preference` (one row per record that has a
rejected side, in TRL's conversational preference format, built by `pushback.chat.preference_pair`).
Explicit `Features` matter: JSONL whose `metadata` keys differ between lines does not load without
them (NOTES.md), and users of `load_dataset` get the declared types."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pushback.chat import preference_pair
from pushback.records import Record

CONFIGS = ("default", "preference")


def record_features():
    from datasets import Features, List, Value

    text = Value("string")
    return Features({
        "id": text,
        "user_input": text,
        "category": text,
        "expected": text,
        "agents": List({"agent_type": text, "thought_stream": text}),
        "final_answer": text,
        "baseline_answer": text,
        "overcautious_answer": text,  # benign records only; null elsewhere
        "metadata": {"source": text, "model": text, "twin_of": text, "topic": text},
    })


def preference_features():
    """TRL's conversational preference format, with the record's id and category beside it (TRL drops
    columns it does not use)."""
    from datasets import Features, List, Value

    text = Value("string")
    turns = List({"role": text, "content": text})
    return Features({"id": text, "category": text, "prompt": turns, "chosen": turns, "rejected": turns})


def preference_rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    """One row per record with a rejected side (friction: the eager answer; benign: the over-cautious one)."""
    rows = []
    for record in records:
        pair = preference_pair(record)
        if pair is not None:
            rows.append({"id": record.id, "category": record.category, **pair})
    return rows


def to_dataset(records: Sequence[Record], config: str = "default"):
    """The rows of one config as a `datasets.Dataset` with declared features."""
    from datasets import Dataset

    if config == "preference":
        features, rows = preference_features(), preference_rows(records)
    else:
        features, rows = record_features(), [r.model_dump(mode="json") for r in records]
    if not rows:
        return Dataset.from_dict({name: [] for name in features}, features=features)
    return Dataset.from_list(rows, features=features)


def split_file(split: str, config: str = "default") -> str:
    """The Hub's layout for a one-shard split (what `Dataset.push_to_hub(config_name=...)` writes)."""
    folder = "data" if config == "default" else config
    return f"{folder}/{split}-00000-of-00001.parquet"


def write_splits(out: str | Path, splits: dict[str, Sequence[Record]]) -> dict[tuple[str, str], Path]:
    """Write every config's splits as parquet under `out`; returns the written paths by (config, split)."""
    out = Path(out)
    written = {}
    for config in CONFIGS:
        for name, records in splits.items():
            path = out / split_file(name, config)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".parquet.tmp")
            to_dataset(records, config).to_parquet(str(tmp))
            tmp.replace(path)  # atomic: a half-written shard never looks like a dataset
            written[config, name] = path
    return written


def from_rows(rows: Iterable[dict[str, Any]]) -> list[Record]:
    """Records back from dataset rows (a built dir, or a Hub dataset)."""
    return [Record.model_validate(row) for row in rows]


def load_dataset_records(source: str, split: str = "train") -> list[Record]:
    """Records from a built dataset directory or a Hub dataset id."""
    from datasets import load_dataset

    return from_rows(load_dataset(source, split=split))
