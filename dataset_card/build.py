"""`pushback dataset build FILES --out DIR`: validate, split, write parquet and the card;
`pushback dataset push DIR --repo OWNER/NAME`: upload a built dataset in one commit."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dataset_card.card import render_card
from pushback.dataset import write_splits
from pushback.records import load_records
from pushback.files import write_atomic
from pushback.splits import split_records


def build(files: list[str], out: str | Path, *, test_size: float = 0.1, seed: int = 0,
          pretty_name: str = "Push-Back AI friction dataset") -> dict[str, int]:
    records = load_records(files)
    train, test = split_records(records, test_size=test_size, seed=seed)
    splits = {"train": train, "test": test}
    write_splits(out, splits)
    write_atomic(Path(out) / "README.md", render_card(splits, pretty_name=pretty_name, seed=seed, test_size=test_size))
    return {name: len(rs) for name, rs in splits.items()}


def add_parser(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="subcommand", required=True, metavar="{build,push}")
    b = actions.add_parser("build", help="split records into train/test parquet and write the dataset card")
    b.add_argument("files", nargs="+", help="JSONL record files")
    b.add_argument("--out", required=True, help="output directory (parquet under data/, README.md card)")
    b.add_argument("--test-size", type=float, default=0.1, help="share of records in the test split")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--name", default="Push-Back AI friction dataset", help="pretty name for the card")
    b.set_defaults(run=main)
    push = actions.add_parser("push", help="upload a built dataset directory to the Hub in one commit")
    push.add_argument("dir")
    push.add_argument("--repo", required=True, help="OWNER/NAME of the dataset repo")
    push.add_argument("--private", action="store_true")
    push.add_argument("--dry-run", action="store_true", help="list what would be uploaded, upload nothing")
    push.set_defaults(run=push_main)


def main(args: argparse.Namespace) -> int:
    """`pushback dataset build`."""
    try:
        sizes = build(args.files, args.out, test_size=args.test_size, seed=args.seed, pretty_name=args.name)
    except ValueError as e:  # RecordsError too: every problem with its file and line
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: " + ", ".join(f"{name} {n}" for name, n in sizes.items()) + " (parquet under data/, card README.md)")
    print(f'load it with: datasets.load_dataset("{args.out}")')
    return 0


def push_main(args: argparse.Namespace) -> int:
    """`pushback dataset push DIR --repo OWNER/NAME [--private] [--dry-run]`."""
    from pushback.hub import push_folder

    if not (Path(args.dir) / "README.md").exists():
        print(f"{args.dir}: no README.md; build the dataset first with `pushback dataset build`", file=sys.stderr)
        return 1
    try:
        push_folder(args.dir, args.repo, repo_type="dataset", private=args.private, dry_run=args.dry_run,
                    message="Upload dataset with pushback")
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
