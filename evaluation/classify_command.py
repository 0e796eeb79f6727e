"""`pushback classify`: label response rows, or score the classifier against people (`--xstest`)."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from evaluation.classify import LABELS, classify


def _read_rows(lines: Iterable[str], source: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source}:{number}: invalid JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("response"), str):
            raise ValueError(f"{source}:{number}: response: expected an object with a string `response`")
        yield row


def label_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row with `label`, `xstest_label`, `plan`, `well_formed` and `signals` added."""
    verdict = classify(row["response"], row.get("prompt"))
    return {**row, "label": verdict.label, "xstest_label": verdict.xstest_label, "plan": verdict.plan,
            "well_formed": verdict.well_formed, "signals": verdict.signals}


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--in", dest="inp", help="JSONL with `response` (and optional `prompt`); default stdin")
    parser.add_argument("--out", help="output JSONL (default stdout)")
    parser.add_argument("--judge", help="LiteLLM model (or litellm:...@api_base=... spec) for an LLM judge on top of "
                                        "the offline classifier; verdicts are cached per input")
    parser.add_argument("--xstest", nargs="*", help="score against XSTest human labels (CSV files; default the "
                                                    "vendored ones) and the curated test split instead")


def main(args: argparse.Namespace) -> int:
    """`pushback classify [--in FILE] [--out FILE] [--judge MODEL] [--xstest CSV ...]`."""
    if args.xstest is not None:
        from evaluation.validation import main_xstest  # reads the XSTest files only when asked

        return main_xstest(args.xstest)
    source = args.inp or "<stdin>"
    try:
        handle = open(args.inp, encoding="utf-8") if args.inp else sys.stdin
    except OSError as e:
        print(f"error: {source}: cannot read ({e.strerror})", file=sys.stderr)
        return 1
    try:
        with handle:
            rows = [label_row(row) for row in _read_rows(handle, source)]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.judge:
        from evaluation.judge import judge_rows

        rows = judge_rows(rows, args.judge)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if args.out:
        from pushback.files import write_atomic

        write_atomic(args.out, text)
        counts = {label: sum(1 for r in rows if r["label"] == label) for label in LABELS}
        print(f"{len(rows)} responses -> {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()),
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
