"""`pushback <command>`: a registry of commands. Each wing declares its command's flags beside the code
that reads them (`add_parser(parser)` next to its `main`, as TRL's scripts do with `make_parser`); a wing
is imported only when its command runs, so `pushback --help` stays instant."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# command -> (module with `add_parser(parser)` and `main(args) -> exit code`, one line for `pushback --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("pushback.validate", "check record files; print counts and every problem with file:line"),
    "dataset": ("dataset_card.build", "build a Hub dataset (parquet + card) or push it"),
    "generate": ("generation.run", "generate records with the persona relay through any LiteLLM provider"),
    "train": ("training.train", "QLoRA fine-tuning (SFT, DPO or ORPO) from a YAML recipe"),
    "merge": ("training.merge", "merge a LoRA adapter into its unquantized base"),
    "pocket": ("training.pocket", "build the offline baseline/friction pair from the curated set"),
    "export": ("training.ollama", "export a merged model for other runtimes"),
    "publish": ("training.publish", "stage and push adapter, merged model and dataset with cards"),
    "classify": ("evaluation.classify_command", "label responses: comply / refuse / push_back / hedge / clarify"),
    "eval": ("evaluation.run", "run models over suites, classify, report"),
    "votes": ("space.leaderboard", "the Space's votes as a leaderboard: win rates, Bradley-Terry ratings, intervals"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the flags of `command` (its wing imported); other commands show their summary only."""
    parser = argparse.ArgumentParser(
        prog="pushback",
        description="Push-Back AI: data, training, evaluation and a Space for calibrated friction.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name, (module, summary) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=summary, description=summary)
        if name == command:
            wing = importlib.import_module(module)
            command_parser.set_defaults(run=wing.main)  # a wing with subcommands may set its own
            wing.add_parser(command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download at import
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
