"""`pushback publish --adapter DIR --merged DIR --dataset DIR --repo-prefix OWNER/NAME [--eval DIR]
[--stage DIR] [--private] [--dry-run]`: stage three repos with their cards, print each tree, push each
as one commit.

    OWNER/NAME-lora    the adapter, its tokenizer and chat template, recipe, metrics, card (library_name: peft)
    OWNER/NAME-merged  the merged safetensors, tokenizer, generation config, card (base_model_relation: finetune)
    OWNER/NAME-data    the dataset directory from `pushback dataset build` (parquet + its card)

Only `pushback.hub.push_folder` talks to the Hub; the token is read there by huggingface_hub and never
passes through this module.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from model_card import build_card, read_eval_results
from pushback.hub import push_folder
from pushback.files import write_atomic

# What a repo needs from a `pushback train` output; checkpoints and scratch files stay behind.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "chat_template.jinja", "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt",
                 "recipe.yaml", "metrics.json", "training_example.txt", "loss.png")


@dataclass(frozen=True)
class Repos:
    adapter: str
    merged: str
    dataset: str

    @classmethod
    def from_prefix(cls, prefix: str) -> Repos:
        owner, slash, name = prefix.partition("/")
        if not slash or not owner or not name or "/" in name:
            raise ValueError(f"--repo-prefix {prefix!r}: expected OWNER/NAME")
        return cls(f"{prefix}-lora", f"{prefix}-merged", f"{prefix}-data")


def _check(directory: Path | None, kind: str) -> None:
    if directory is None:
        return
    needs = {"adapter": ["adapter_config.json", "adapter_model.safetensors"], "merged": ["config.json"],
             "dataset": ["README.md"]}[kind]
    missing = [name for name in needs if not (directory / name).exists()]
    if kind == "merged" and not any(directory.glob("*.safetensors")):
        missing.append("*.safetensors")
    if kind == "dataset" and not any(directory.rglob("*.parquet")):
        missing.append("data/*.parquet")
    if missing:
        made_by = {"adapter": "pushback train", "merged": "pushback merge", "dataset": "pushback dataset build"}[kind]
        raise FileNotFoundError(f"--{kind} {directory}: missing {', '.join(missing)} (expected a `{made_by}` output)")


def stage_adapter(adapter: Path, out: Path, card: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        if (adapter / name).exists():
            shutil.copy2(adapter / name, out / name)
    write_atomic(out / "README.md", card)
    return out


def stage_merged(merged: Path, out: Path, card: str) -> Path:
    shutil.copytree(merged, out, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".*", "checkpoints", "README.md"))
    write_atomic(out / "README.md", card)
    return out


def stage_dataset(dataset: Path, out: Path) -> Path:
    """The built dataset as it is: its card was written from its records by `pushback dataset build`."""
    shutil.copytree(dataset, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*"))
    return out


def stage(*, adapter: Path | None, merged: Path | None, dataset: Path | None, repos: Repos, stage_dir: Path,
          eval_dir: Path | None = None) -> dict[str, tuple[Path, str, str]]:
    """Write each repo's folder under `stage_dir`; returns {name: (folder, repo_id, repo_type)}."""
    for directory, kind in ((adapter, "adapter"), (merged, "merged"), (dataset, "dataset")):
        _check(directory, kind)
    hints = [str(p) for p in (merged, adapter) if p] + [repos.merged, repos.adapter]
    evaluation = read_eval_results(eval_dir, hints=hints)
    for reason in evaluation.skipped:
        print(f"note: evaluation result skipped: {reason}", file=sys.stderr)
    dataset_repo = repos.dataset if dataset else None
    staged: dict[str, tuple[Path, str, str]] = {}
    if adapter:
        card = build_card(adapter, kind="adapter", repo_id=repos.adapter, dataset_repo=dataset_repo,
                          evaluation=evaluation, merged_repo=repos.merged if merged else None)
        staged["adapter"] = (stage_adapter(adapter, stage_dir / "adapter", card), repos.adapter, "model")
    if merged:
        card = build_card(merged, kind="merged", repo_id=repos.merged, dataset_repo=dataset_repo,
                          evaluation=evaluation, adapter_repo=repos.adapter if adapter else None)
        staged["merged"] = (stage_merged(merged, stage_dir / "merged", card), repos.merged, "model")
    if dataset:
        staged["dataset"] = (stage_dataset(dataset, stage_dir / "dataset"), repos.dataset, "dataset")
    return staged


def publish(*, adapter: Path | None, merged: Path | None, dataset: Path | None, repo_prefix: str,
            eval_dir: Path | None = None, stage_dir: Path | None = None, private: bool = False,
            dry_run: bool = False) -> dict[str, str | None]:
    """Stage, print the trees, and push each repo as one commit (nothing pushed on a dry run)."""
    if not (adapter or merged or dataset):
        raise ValueError("nothing to publish: give --adapter, --merged and/or --dataset")
    repos = Repos.from_prefix(repo_prefix)
    temporary = None if stage_dir else tempfile.TemporaryDirectory(prefix="pushback-publish-")
    root = Path(stage_dir) if stage_dir else Path(temporary.name)
    try:
        staged = stage(adapter=adapter, merged=merged, dataset=dataset, repos=repos, stage_dir=root,
                       eval_dir=eval_dir)
        urls = {}
        for name, (folder, repo_id, repo_type) in staged.items():
            urls[name] = push_folder(folder, repo_id, repo_type=repo_type, private=private, dry_run=dry_run,
                                     message=f"Upload {name} with pushback publish")
            print()
        if stage_dir:
            print(f"staged in {root}")
        return urls
    finally:
        if temporary:
            temporary.cleanup()


def add_parser(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument("--adapter", help="adapter directory")
    p.add_argument("--merged", help="merged model directory")
    p.add_argument("--dataset", help="built dataset directory")
    p.add_argument("--eval", help="evaluation output directory (eval_results.json) for model-index")
    p.add_argument("--repo-prefix", required=True, help="OWNER/NAME: repos OWNER/NAME-lora, -merged, -data")
    p.add_argument("--stage", help="staging directory (default: a temporary one)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="stage and print the trees, push nothing")


def main(args: argparse.Namespace) -> int:
    def path(value: str | None) -> Path | None:
        return Path(value) if value else None

    import httpx2  # the HTTP client huggingface_hub 2.x uses (connection errors are its own, not OSError)
    from huggingface_hub.errors import HfHubHTTPError

    try:
        publish(adapter=path(args.adapter), merged=path(args.merged), dataset=path(args.dataset),
                repo_prefix=args.repo_prefix, eval_dir=path(args.eval), stage_dir=path(args.stage),
                private=args.private, dry_run=args.dry_run)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (HfHubHTTPError, httpx2.HTTPError) as e:  # the Hub refused or could not be reached
        print(f"error: the push failed ({type(e).__name__}: {e}); repos pushed before it are kept", file=sys.stderr)
        return 1
    return 0
