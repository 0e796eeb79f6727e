"""`pushback train --recipe R [--set key=value ...] [--output DIR] [--resume]`: QLoRA SFT (training.qlora).

A recipe on `pocket:baseline` builds the pocket pair first if it is missing, so the pocket recipe works
from a fresh clone."""
from __future__ import annotations

import argparse
import sys

from pushback.backends import BackendError
from pushback.pocket import ensure_built
from pushback.records import RecordsError
from pushback.specs import SpecError, parse_spec
from training.qlora import run_training
from training.recipe import RecipeError, load_recipe


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", required=True, help="YAML recipe, e.g. training/recipes/pocket.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    parser.add_argument("--output", help="output directory (default: the recipe's output_dir)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output")


def main(args: argparse.Namespace) -> int:
    try:
        recipe = load_recipe(args.recipe, args.set)
        if parse_spec(recipe.model.base).kind == "pocket":
            ensure_built()
        result = run_training(recipe, args.output, resume=args.resume)
    except (RecipeError, RecordsError, SpecError, BackendError, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    m = result.metrics
    if not m:  # not the main process of a distributed run
        return 0
    print(f"adapter saved to {result.output}")
    print(f"  steps {m['global_step']}"
          + (f" (resumed from {m['resumed_from_step']})" if m["resumed_from_step"] else "")
          + f", train loss {m['first_logged_loss']:.3f} -> {m['last_logged_loss']:.3f}, eval loss {m['eval_loss']}")
    print(f"  {m['train_tokens']} tokens in {m['train_seconds']} s = {m['tokens_per_second']} tokens/s on {m['hardware']}")
    print(f"  records: {m['records']}")
    return 0
