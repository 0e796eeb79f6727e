"""`pushback dataset build FILES --out DIR`: validate, split, write parquet and the card."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dataset_card.card import render_card
from pushback.dataset import write_splits
from pushback.records import RecordsError, load_records, write_atomic
from pushback.splits import split_records


def build(files: list[str], out: str | Path, *, test_size: float = 0.1, seed: int = 0,
          pretty_name: str = "Push-Back AI friction dataset") -> dict[str, int]:
    records = load_records(files)
    train, test = split_records(records, test_size=test_size, seed=seed)
    splits = {"train": train, "test": test}
    write_splits(out, splits)
    write_atomic(Path(out) / "README.md", render_card(splits, pretty_name=pretty_name, seed=seed, test_size=test_size))
    return {name: len(rs) for name, rs in splits.items()}


def main(args: argparse.Namespace) -> int:
    try:
        sizes = build(args.files, args.out, test_size=args.test_size, seed=args.seed, pretty_name=args.name)
    except RecordsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: " + ", ".join(f"{name} {n}" for name, n in sizes.items()) + " (parquet under data/, card README.md)")
    print(f'load it with: datasets.load_dataset("{args.out}")')
    return 0
