"""`pushback <command>`: the roof. It declares every command's arguments and imports the wing that
runs it only when that command is called, so `pushback --help` stays instant."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# command -> "module:function"; each function takes the parsed args and returns an exit code.
HANDLERS = {
    "validate": "pushback.validate:main",
    "dataset build": "dataset_card.build:main",
    "dataset push": "pushback.hub:push_dataset_main",
    "generate": "generation.run:main",
    "train": "training.train:main",
    "merge": "training.merge:main",
    "pocket": "training.pocket:main",
    "export ollama": "training.ollama:main",
    "publish": "training.publish:main",
    "classify": "evaluation.commands:classify_main",
    "eval": "evaluation.run:main",
}


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check record files; print counts and every problem with file:line")
    p.add_argument("files", nargs="+", help="JSONL record files")


def _add_dataset(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="build a Hub dataset (parquet + card) or push it")
    dsub = p.add_subparsers(dest="subcommand", required=True, metavar="{build,push}")
    b = dsub.add_parser("build", help="split records into train/test parquet and write the dataset card")
    b.add_argument("files", nargs="+", help="JSONL record files")
    b.add_argument("--out", required=True, help="output directory (parquet under data/, README.md card)")
    b.add_argument("--test-size", type=float, default=0.1, help="share of records in the test split")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--name", default="Push-Back AI friction dataset", help="pretty name for the card")
    push = dsub.add_parser("push", help="upload a built dataset directory to the Hub in one commit")
    push.add_argument("dir")
    push.add_argument("--repo", required=True, help="OWNER/NAME of the dataset repo")
    push.add_argument("--private", action="store_true")
    push.add_argument("--dry-run", action="store_true", help="list what would be uploaded, upload nothing")


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate records with the persona relay through any LiteLLM provider")
    p.add_argument("--model", required=True, help="LiteLLM model, e.g. openai/gpt-4o-mini or ollama_chat/qwen2.5")
    p.add_argument("--api-base", help="endpoint URL (Ollama, vLLM, any OpenAI-compatible server)")
    p.add_argument("--api-key-env", help="name of the environment variable holding the API key")
    p.add_argument("--n", type=int, required=True, help="number of valid records wanted in --out")
    p.add_argument("--out", required=True, help="JSONL file; appended to and resumed")
    p.add_argument("--concurrency", type=int, default=16, help="records in flight at once")
    p.add_argument("--workers", default="auto", metavar="W|auto",
                   help="processes making the calls, sharing --concurrency (auto: one per 16 records in flight, "
                        "at most two per CPU)")
    p.add_argument("--categories", nargs="+", help="limit to these categories (default: the curated mix)")
    p.add_argument("--twins", action="store_true", help="also write a benign look-alike for friction prompts")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per call attempt")
    p.add_argument("--max-retries", type=int, default=6, help="retries per call for transient errors")
    p.add_argument("--templates", help="directory of persona templates to use instead of the built-in ones")
    p.add_argument("--few-shot", type=int, default=2, help="curated examples shown per prompt (0 for none)")


def _add_training(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="QLoRA fine-tuning from a YAML recipe")
    t.add_argument("--recipe", required=True, help="YAML recipe, e.g. training/recipes/pocket.yaml")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    t.add_argument("--output", help="output directory (default: the recipe's output_dir)")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output")

    m = sub.add_parser("merge", help="merge a LoRA adapter into its unquantized base")
    m.add_argument("--adapter", required=True, help="adapter directory (output of pushback train)")
    m.add_argument("--out", required=True)
    m.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])

    p = sub.add_parser("pocket", help="build the offline baseline/friction pair from the curated set")
    p.add_argument("--out", help="directory (default: $PUSHBACK_CACHE/pocket or ~/.cache/pushback/pocket)")
    p.add_argument("--tiny", action="store_true", help="seconds-long variant for tests")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", nargs="+", help="record files (default: data/curated/*.jsonl)")
    p.add_argument("--force", action="store_true", help="rebuild even if a cached pair exists")

    e = sub.add_parser("export", help="export a merged model for other runtimes")
    esub = e.add_subparsers(dest="subcommand", required=True, metavar="{ollama}")
    o = esub.add_parser("ollama", help="write an Ollama Modelfile for merged weights")
    o.add_argument("--model", required=True, help="merged model directory")
    o.add_argument("--out", required=True)
    o.add_argument("--name", default="pushback-friction", help="name for `ollama create`")

    pub = sub.add_parser("publish", help="stage and push adapter, merged model and dataset with cards")
    pub.add_argument("--adapter", help="adapter directory")
    pub.add_argument("--merged", help="merged model directory")
    pub.add_argument("--dataset", help="built dataset directory")
    pub.add_argument("--eval", help="evaluation output directory (eval_results.json) for model-index")
    pub.add_argument("--repo-prefix", required=True, help="OWNER/NAME: repos OWNER/NAME-lora, -merged, -data")
    pub.add_argument("--stage", help="staging directory (default: a temporary one)")
    pub.add_argument("--private", action="store_true")
    pub.add_argument("--dry-run", action="store_true", help="stage and print the trees, push nothing")


def _add_evaluation(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("classify", help="label responses: comply / refuse / push_back / hedge / clarify")
    c.add_argument("--in", dest="inp", help="JSONL with `response` (and optional `prompt`); default stdin")
    c.add_argument("--out", help="output JSONL (default stdout)")
    c.add_argument("--judge", help="LiteLLM model (or litellm:...@api_base=... spec) for an LLM judge on top of "
                                   "the offline classifier; verdicts are cached per input")
    c.add_argument("--xstest", nargs="*", help="score against XSTest human labels (CSV files; default the vendored "
                                               "ones) and the curated test split instead")

    e = sub.add_parser("eval", help="run models over suites, classify, report")
    e.add_argument("--model", action="append", required=True, metavar="NAME=SPEC", help="repeatable")
    e.add_argument("--suite", action="append", required=True,
                   help="curated, coconot (original + contrast), coconot_original, coconot_contrast, xstest")
    e.add_argument("--limit", type=int, help="prompts per suite")
    e.add_argument("--out", required=True)
    e.add_argument("--max-new-tokens", type=int, default=256)
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pushback",
        description="Push-Back AI: data, training, evaluation and a Space for calibrated friction.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for add in (_add_validate, _add_dataset, _add_generate, _add_training, _add_evaluation):
        add(sub)
    return parser


def _handler(args: argparse.Namespace):
    key = f"{args.command} {args.subcommand}" if getattr(args, "subcommand", None) else args.command
    module, _, function = HANDLERS[key].partition(":")
    return getattr(importlib.import_module(module), function)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download at import
    args = build_parser().parse_args(argv)
    try:
        return int(_handler(args)(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
