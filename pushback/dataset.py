"""Records as a Hugging Face dataset: explicit features, parquet splits, and back again.

Explicit `Features` matter: JSONL whose `metadata` keys differ between lines does not load without
them (NOTES.md), and users of `load_dataset` get the declared types."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pushback.records import Record


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


def to_dataset(records: Sequence[Record]):
    from datasets import Dataset

    features = record_features()
    if not records:
        return Dataset.from_dict({name: [] for name in features}, features=features)
    return Dataset.from_list([r.model_dump(mode="json") for r in records], features=features)


def split_file(split: str) -> str:
    """The Hub's layout for a one-shard split (what `Dataset.push_to_hub` writes)."""
    return f"data/{split}-00000-of-00001.parquet"


def write_splits(out: str | Path, splits: dict[str, Sequence[Record]]) -> dict[str, Path]:
    """Write each split as parquet under `out/data/`; returns the written paths."""
    out = Path(out)
    written = {}
    for name, records in splits.items():
        path = out / split_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".parquet.tmp")
        to_dataset(records).to_parquet(str(tmp))
        tmp.replace(path)  # atomic: a half-written shard never looks like a dataset
        written[name] = path
    return written


def from_rows(rows: Iterable[dict[str, Any]]) -> list[Record]:
    """Records back from dataset rows (a built dir, or a Hub dataset)."""
    return [Record.model_validate(row) for row in rows]


def load_dataset_records(source: str, split: str = "train") -> list[Record]:
    """Records from a built dataset directory or a Hub dataset id."""
    from datasets import load_dataset

    return from_rows(load_dataset(source, split=split))
