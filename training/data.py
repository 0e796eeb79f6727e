"""Where training records come from: local JSONL files (globs), a dataset directory built by
`pushback dataset build` (parquet), or a Hub dataset id. Every row is validated as a `Record`, so a
bad row is reported with where it came from, and the train/eval split is the project's one split
(`pushback.splits.split_records`) unless the dataset brings its own test split."""
from __future__ import annotations

import glob
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pushback.paths import REPO_ROOT
from pushback.records import Record, RecordsError, load_records, parse_line
from pushback.splits import split_records


@dataclass
class RecordSplit:
    train: list[Record]
    eval: list[Record]
    source: str  # a human-readable description for cards and logs

    @property
    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "eval": len(self.eval)}


def _expand(pattern: str) -> list[Path]:
    path = Path(pattern).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, REPO_ROOT / path]
    for candidate in candidates:
        matches = sorted(Path(p) for p in glob.glob(str(candidate)))
        if matches:
            return matches
    return []


def _rows_to_records(rows: Iterable[dict[str, Any]], where: str) -> list[Record]:
    records, problems = [], []
    for number, row in enumerate(rows, start=1):
        row = {k: v for k, v in row.items() if not k.startswith("__")}  # pandas index columns
        record, found = parse_line(json.dumps(row, default=str), where, number)
        problems += found
        if record is not None:
            records.append(record)
    if problems:
        raise RecordsError(problems)
    return records


def _parquet_splits(directory: Path) -> dict[str, list[Path]]:
    """`data/train-00000-of-00001.parquet` style files (what `Dataset.push_to_hub` and our build write)."""
    splits: dict[str, list[Path]] = {}
    for file in sorted(directory.rglob("*.parquet")):
        name = file.name.split("-", 1)[0].split(".", 1)[0]
        splits.setdefault(name, []).append(file)
    return splits


def _read_parquet(files: list[Path]) -> list[dict[str, Any]]:
    import pandas as pd

    frames = [pd.read_parquet(f) for f in files]
    rows: list[dict[str, Any]] = []
    for frame in frames:
        rows += json.loads(frame.to_json(orient="records", force_ascii=False))
    return rows


def _from_dataset_dir(directory: Path, test_size: float, seed: int) -> RecordSplit:
    splits = _parquet_splits(directory)
    jsonl = sorted(directory.rglob("*.jsonl"))
    if not splits and jsonl:
        return _from_files(jsonl, test_size, seed, str(directory))
    if "train" not in splits:
        raise FileNotFoundError(f"{directory}: no train split (expected data/train-*.parquet); "
                                f"found {sorted(splits) or 'no parquet files'}")
    train = _rows_to_records(_read_parquet(splits["train"]), f"{directory}/train")
    held = splits.get("test") or splits.get("validation")
    if held:
        return RecordSplit(train, _rows_to_records(_read_parquet(held), f"{directory}/test"), str(directory))
    train, held_out = split_records(train, test_size, seed)
    return RecordSplit(train, held_out, str(directory))


def _from_files(files: list[Path], test_size: float, seed: int, source: str) -> RecordSplit:
    records = load_records(files)
    train, held_out = split_records(records, test_size, seed)
    return RecordSplit(train, held_out, source)


def _from_hub(repo_id: str, test_size: float, seed: int) -> RecordSplit:
    from datasets import load_dataset

    dataset = load_dataset(repo_id)
    if "train" not in dataset:
        raise ValueError(f"{repo_id}: the Hub dataset has no train split (splits: {list(dataset)})")
    train = _rows_to_records(dataset["train"], f"{repo_id}:train")
    held_name = next((s for s in ("test", "validation") if s in dataset), None)
    if held_name:
        return RecordSplit(train, _rows_to_records(dataset[held_name], f"{repo_id}:{held_name}"), repo_id)
    train, held_out = split_records(train, test_size, seed)
    return RecordSplit(train, held_out, repo_id)


def load_split(sources: list[str] | str, *, test_size: float = 0.1, seed: int = 0) -> RecordSplit:
    """Records for training and evaluation from the recipe's `data.source`."""
    sources = [sources] if isinstance(sources, str) else list(sources)
    if not sources:
        raise ValueError("data.source is empty: give JSONL files, a dataset directory or a Hub dataset id")
    files: list[Path] = []
    for source in sources:
        matches = _expand(source)
        if len(sources) == 1 and len(matches) == 1 and matches[0].is_dir():
            return _from_dataset_dir(matches[0], test_size, seed)
        if matches:
            files += [m for m in matches if m.is_file()]
            continue
        looks_like_hub_id = source.count("/") == 1 and not source.endswith((".jsonl", ".json", "*"))
        if len(sources) == 1 and looks_like_hub_id and not Path(source).exists():
            return _from_hub(source, test_size, seed)
        raise FileNotFoundError(f"data.source {source!r}: no such file, directory or glob match")
    return _from_files(files, test_size, seed, ", ".join(sources))

