"""`pushback dataset build FILES --out DIR`: validate, split, write both configs' parquet and the card;
`pushback dataset push DIR --repo OWNER/NAME`: upload a built dataset in one commit.

The build is staged in a hidden folder beside DIR and moved into place whole, so a failed build
leaves DIR as it was; DIR must be new, empty, or a dataset this command built (never the inputs)."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from dataset_card.card import render_card
from pushback.dataset import preference_rows, write_splits
from pushback.files import write_atomic
from pushback.records import load_records
from pushback.splits import split_records

BUILT_MARK = "pushback dataset build"  # the card of a built dataset names the command (template.md, Credit)


class BuildError(ValueError):
    """The output cannot be written as asked; one line naming it and why."""


def _is_built_dataset(folder: Path) -> bool:
    card = folder / "README.md"
    try:
        return card.is_file() and BUILT_MARK in card.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def check_out(out: Path, files: list[str]) -> None:
    """Refuse an output that would overwrite an input or a folder of other files."""
    if out.exists() and not out.is_dir():
        raise BuildError(f"--out {out}: is a file; name a folder for the dataset (new, or one this command built)")
    target = out.resolve()
    for name in files:
        source = Path(name).resolve()
        if source == target or target in source.parents:
            raise BuildError(f"--out {out}: would hold the input {name}; choose a folder apart from the inputs")
    if out.is_dir() and any(out.iterdir()) and not _is_built_dataset(out):
        raise BuildError(f"--out {out}: is a folder of other files; choose a new folder (or one this command built)")


def _replace(stage: Path, out: Path) -> None:
    """Move the staged build into place; a previous build is moved aside first and removed after."""
    if not out.exists():
        os.replace(stage, out)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
    try:
        os.replace(out, old / "dataset")
    except OSError:
        old.rmdir()
        raise
    try:
        os.replace(stage, out)
    except OSError:
        os.replace(old / "dataset", out)  # put the previous build back (never delete it before the new one is in)
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


def build(files: list[str], out: str | Path, *, test_size: float = 0.1, seed: int = 0,
          pretty_name: str = "Push-Back AI friction dataset") -> dict[str, int]:
    """Write the dataset; returns the number of records per split and of preference pairs."""
    out = Path(out)
    check_out(out, files)
    records = load_records(files)
    train, test = split_records(records, test_size=test_size, seed=seed)
    splits = {"train": train, "test": test}
    card = render_card(splits, pretty_name=pretty_name, seed=seed, test_size=test_size)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as e:
        raise BuildError(f"--out {out}: cannot write in {out.parent} ({e.strerror or e})") from None
    try:
        write_splits(stage, splits)
        write_atomic(stage / "README.md", card)
        stage.chmod(0o755)  # mkdtemp makes it private; a dataset folder is not
        _replace(stage, out)
    except OSError as e:
        raise BuildError(f"--out {out}: the build failed and left it as it was ({e.strerror or e})") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    sizes = {name: len(rs) for name, rs in splits.items()}
    sizes.update({f"{name} pairs": len(preference_rows(rs)) for name, rs in splits.items()})
    return sizes


def add_parser(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="subcommand", required=True, metavar="{build,push}")
    b = actions.add_parser("build", help="split records into train/test parquet (SFT and preference configs) "
                                         "and write the dataset card")
    b.add_argument("files", nargs="+", help="JSONL record files")
    b.add_argument("--out", required=True, help="output directory (new, or one this command built): parquet "
                                                "under data/ and preference/, README.md card")
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
    except ValueError as e:  # BuildError, RecordsError (every problem with its file and line), a bad --test-size
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: records train {sizes['train']}, test {sizes['test']}; preference pairs "
          f"train {sizes['train pairs']}, test {sizes['test pairs']} (parquet under data/ and preference/, "
          "card README.md)")
    print(f'load it with: datasets.load_dataset("{args.out}") or datasets.load_dataset("{args.out}", "preference")')
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
    except (FileNotFoundError, ValueError) as e:  # HubError too: no network, offline mode, a refusal
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
