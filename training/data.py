"""Where training records come from: local JSONL files (globs), a dataset directory built by
`pushback dataset build` (parquet), or a Hub dataset id. Every row is validated as a `Record`, so a
bad row is reported with where it came from, and the train/eval split is the project's one split
(`pushback.splits.split_records`) unless the dataset brings its own test split."""
from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from pushback.paths import REPO_ROOT
from pushback.records import Record, load_records
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


def _from_files(files: list[Path], test_size: float, seed: int, source: str) -> RecordSplit:
    records = load_records(files)
    train, held_out = split_records(records, test_size, seed)
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
    return _from_files(files, test_size, seed, ", ".join(sources))

