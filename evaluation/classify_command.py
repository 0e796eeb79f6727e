"""`pushback classify`: label response rows (optionally with a model judge beside the offline classifier),
or measure the classifier against people (`--validate`)."""
from __future__ import annotations

import argparse
import json
import sys
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from evaluation.classify import classify
from pushback.files import FileProblem, numbered_objects
from pushback.records import BEHAVIOURS


def read_rows(path: str | None) -> list[dict[str, Any]]:
    """Rows with a string `response`; every problem names the file (or stdin) and the line."""
    source = path or "<stdin>"
    rows = []
    with (open(path, "rb") if path else nullcontext(sys.stdin.buffer)) as lines:
        for number, row in numbered_objects(lines, source):
            if not isinstance(row.get("response"), str):
                raise FileProblem(f"{source}:{number}: response: expected a string `response`")
            rows.append(row)
    return rows


def label_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row with `label`, `xstest_label`, `plan`, `well_formed` and `signals` added."""
    verdict = classify(row["response"], row.get("prompt"))
    return {**row, "label": verdict.label, "xstest_label": verdict.xstest_label, "plan": verdict.plan,
            "well_formed": verdict.well_formed, "signals": verdict.signals}


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--in", dest="inp", help="JSONL with `response` (and optional `prompt`); default stdin")
    parser.add_argument("--out", help="output JSONL (default stdout)")
    parser.add_argument("--judge", metavar="SPEC",
                        help="a model spec that labels every row beside the offline classifier: litellm:PROVIDER/MODEL"
                             "[@api_base=...@api_key_env=VAR], a Hub id or a local directory (4-bit on CUDA); "
                             "allenai/wildguard is used with its own prompt format; verdicts are cached per input")
    parser.add_argument("--validate", action="store_true",
                        help="leave-one-source-out agreement with people over every labelled source, XSTest's string "
                             "match beside it; saves evaluation/loso.json")
    parser.add_argument("--test-set", action="store_true",
                        help="with --validate: score the shipped classifier on the five-label test sets instead; saves "
                             "evaluation/test_sets.json")


def _check_writable(out: str) -> None:
    """Fail before any work (or any billable judge call) when the output cannot be written."""
    folder = Path(out).resolve().parent
    if Path(out).is_dir():
        raise FileProblem(f"--out {out}: is a folder; name a file")
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise FileProblem(f"--out {out}: cannot write in {probe} (permission denied)")


def main(args: argparse.Namespace) -> int:
    """`pushback classify [--in FILE] [--out FILE] [--judge SPEC] | --validate [--test-set]`."""
    if args.validate:
        from evaluation.validation import main_validate  # reads the labelled sources only when asked

        return main_validate(test_set=args.test_set)
    spec = None
    try:
        if args.judge is not None:
            from pushback.specs import parse_spec

            spec = parse_spec(args.judge)
        if args.out:
            _check_writable(args.out)
        rows = [label_row(row) for row in read_rows(args.inp)]
    except OSError as e:
        print(f"error: {e.filename or args.inp}: cannot read ({e.strerror})", file=sys.stderr)
        return 1
    except ValueError as e:  # FileProblem, SpecError
        print(f"error: {'--judge: ' if spec is None and args.judge is not None else ''}{e}", file=sys.stderr)
        return 1
    if spec is not None:
        from evaluation.judge import JudgeFailed, default_cache, describe, judge_rows

        try:
            run = judge_rows(rows, spec)
        except JudgeFailed as e:
            print(f"error: judge {spec.label} judged nothing: {e}", file=sys.stderr)
            return 2
        print(describe(run, spec, default_cache()), file=sys.stderr)
        rows = run.rows
        if rows and not run.judged:
            print(f"error: judge {spec.label} judged none of {len(rows)} rows (see `judge_error`)", file=sys.stderr)
            return 2
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if not args.out:
        sys.stdout.write(text)
        return 0
    from pushback.files import write_atomic

    try:
        write_atomic(args.out, text)
    except OSError as e:
        print(f"error: --out {args.out}: cannot write ({e.strerror})", file=sys.stderr)
        return 1
    counts = {label: sum(1 for r in rows if r["label"] == label) for label in BEHAVIOURS}
    print(f"{len(rows)} responses -> {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr)
    return 0
