"""`pushback eval`: run models over suites, classify every response, write the report.

Steps: parse the run (models, suites, settings) -> draw the prompts -> for each model, generate the
prompts not yet in `results.jsonl` in batches, classify each response and append it at once (an
interrupted run resumes where it stopped; the responses it reuses are labelled again by the current
classifier, so one report never mixes two versions of the instrument) -> report on exactly this run's
models and prompts.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.classify import classify
from evaluation.pressure import SUITE as PRESSURE
from evaluation.pressure import load_items, run_items
from evaluation.suites import SuitePrompt, load_suite, suite_names
from pushback.files import FileProblem, append_jsonl, numbered_objects, write_atomic
from pushback.specs import SpecError, parse_spec
from pushback.thinking import split_thinking

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RunError(ValueError):
    """A run that cannot start; the message names the flag or file at fault."""


@dataclass(frozen=True)
class RunConfig:
    models: tuple[tuple[str, str], ...]  # (NAME, SPEC)
    suites: tuple[str, ...]
    out: Path
    limit: int | None = None
    max_new_tokens: int = 256
    batch_size: int = 8
    seed: int = 0

    @property
    def settings(self) -> dict[str, Any]:
        """What makes two generations of the same prompt comparable; results under other settings are redone."""
        return {"max_new_tokens": self.max_new_tokens, "seed": self.seed, "temperature": 0.0}


def parse_models(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`NAME=SPEC` pairs; names become file and folder names, so they are kept simple and unique."""
    models: list[tuple[str, str]] = []
    for value in values:
        name, sep, spec = value.partition("=")
        name, spec = name.strip(), spec.strip()
        if not sep or not name or not spec:
            raise RunError(f"--model {value!r}: expected NAME=SPEC, e.g. friction=pocket:friction")
        if not _NAME.match(name):
            raise RunError(f"--model {value!r}: NAME may use letters, digits, '_', '.', '-' only")
        if any(name == known for known, _ in models):
            raise RunError(f"--model {value!r}: the name {name!r} is given twice")
        try:
            parse_spec(spec)
        except SpecError as e:
            raise RunError(f"--model {value!r}: {e}") from None
        models.append((name, spec))
    return tuple(models)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    suites = tuple(dict.fromkeys(args.suite))
    unknown = [s for s in suites if s not in suite_names()]
    if unknown:
        raise RunError(f"--suite {unknown[0]!r}: unknown; choose from {', '.join(suite_names())}")
    for flag, value in (("--limit", args.limit), ("--max-new-tokens", args.max_new_tokens), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise RunError(f"{flag} must be at least 1, got {value}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out}: is a file; name a folder (results.jsonl, report.md ... go inside it)")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):  # before any model is loaded or any endpoint is called
        raise RunError(f"--out {out}: cannot write in {probe} (permission denied)")
    return RunConfig(parse_models(args.model), suites, out, args.limit, args.max_new_tokens,
                     args.batch_size, args.seed)


def _key(row: dict[str, Any]) -> tuple[str, str, str, str]:
    return row["model"], row["spec"], row["suite"], row["id"]


def read_done(path: Path, settings: dict[str, Any]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Rows already in results.jsonl under the same settings (a torn last line is ignored and redone)."""
    done: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    if not path.exists():
        return done
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:  # interrupted mid-write: drop the torn line; it is generated again
            f.truncate(data.rfind(b"\n") + 1)
    with open(path, "rb") as f:
        for number, row in numbered_objects(f, path):
            missing = [k for k in ("model", "spec", "suite", "id") if not isinstance(row.get(k), str)]
            if missing:
                raise FileProblem(f"{path}:{number}: {missing[0]}: missing; not a line `pushback eval` wrote "
                                  "(move the file away or name another --out)")
            if row.get("settings") == settings:
                done[_key(row)] = row
    return done


def _labels(response: str, prompt: str) -> dict[str, Any]:
    verdict = classify(response, prompt)
    return {"label": verdict.label, "xstest_label": verdict.xstest_label, "plan": verdict.plan,
            "well_formed": verdict.well_formed}


def relabelled(row: dict[str, Any]) -> dict[str, Any]:
    """A reused row with the current classifier's labels (pressure rows are read by their own rule)."""
    return row if row["suite"] == PRESSURE else {**row, **_labels(row["response"], row["prompt"])}


def relabel(path: Path, settings: dict[str, Any]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """`read_done` with the current classifier's labels; the file is rewritten (atomically) if any changed."""
    done = read_done(path, settings)
    fresh = {key: relabelled(row) for key, row in done.items()}
    if fresh != done:
        lines = []
        with open(path, "rb") as f:
            for _, row in numbered_objects(f, path):
                same_run = row.get("settings") == settings and _key(row) in fresh
                lines.append(json.dumps(fresh[_key(row)] if same_run else row, ensure_ascii=False))
        write_atomic(path, "".join(line + "\n" for line in lines))
    return fresh


def _classified_row(model: str, spec: str, suite: str, prompt: SuitePrompt, response: str, backend: Any,
                    settings: dict[str, Any], seconds: float) -> dict[str, Any]:
    answer = split_thinking(response).answer
    return {
        "model": model, "spec": spec, "suite": suite, "id": prompt.id, "category": prompt.category,
        "subcategory": prompt.subcategory, "warranted": prompt.warranted, "expected": prompt.expected,
        "prompt": prompt.prompt, "response": response, "answer": answer, **_labels(response, prompt.prompt),
        "response_tokens": backend.count_tokens(response), "answer_tokens": backend.count_tokens(answer),
        "seconds": round(seconds, 3), "settings": settings,
    }


def _generate(backend: Any, conversations: Sequence[Sequence[dict[str, str]]], params: Any, batch_size: int) -> list[str]:
    from pushback.backends import Backend

    if type(backend).generate_batch is not Backend.generate_batch:
        return backend.generate_batch(conversations, params)  # local weights: one padded batch
    with ThreadPoolExecutor(max_workers=batch_size) as pool:  # remote endpoints: requests in parallel
        return list(pool.map(lambda c: backend.generate(c, params), conversations))


def run_eval(config: RunConfig) -> dict[str, Any]:
    """Generate what is missing, classify, write the report; return counts and the report paths."""
    from tqdm import tqdm

    from evaluation.report import write_report
    from pushback.backends import GenerationParams, load_backend

    prompts = {suite: load_suite(suite, config.limit, config.seed) for suite in config.suites if suite != PRESSURE}
    items = load_items(config.limit, config.seed) if PRESSURE in config.suites else []
    results = config.out / "results.jsonl"
    try:
        config.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"--out {config.out}: cannot create the folder ({e.strerror})") from None
    done = relabel(results, config.settings)
    params = GenerationParams(max_new_tokens=config.max_new_tokens, temperature=0.0, seed=config.seed)
    generated = 0
    for model, spec in config.models:
        todo = [(suite, p) for suite, group in prompts.items() for p in group if (model, spec, suite, p.id) not in done]
        pressed = [i for i in items if (model, spec, PRESSURE, i.id) not in done]
        if not todo and not pressed:
            continue
        backend = load_backend(spec)
        with tqdm(total=len(todo), desc=f"{model}", unit="prompt", file=sys.stderr, disable=not todo) as bar:
            for start in range(0, len(todo), config.batch_size):
                batch = todo[start:start + config.batch_size]
                began = time.perf_counter()
                responses = _generate(backend, [[{"role": "user", "content": p.prompt}] for _, p in batch], params,
                                      config.batch_size)
                seconds = (time.perf_counter() - began) / len(batch)
                for (suite, prompt), response in zip(batch, responses):
                    row = _classified_row(model, spec, suite, prompt, response, backend, config.settings, seconds)
                    append_jsonl(results, row)
                    done[_key(row)] = row
                    generated += 1
                bar.update(len(batch))
        with tqdm(total=len(pressed), desc=f"{model} (pressure)", unit="item", file=sys.stderr,
                  disable=not pressed) as bar:  # two turns per item
            for start in range(0, len(pressed), config.batch_size):
                batch_items = pressed[start:start + config.batch_size]
                for row in run_items(lambda c: _generate(backend, c, params, config.batch_size), model, spec,
                                     batch_items, config.settings):
                    append_jsonl(results, row)
                    done[_key(row)] = row
                    generated += 1
                bar.update(len(batch_items))
    rows = [done[(model, spec, suite, p.id)] for model, spec in config.models
            for suite, group in prompts.items() for p in group]
    pressure_rows = [done[(model, spec, PRESSURE, i.id)] for model, spec in config.models for i in items]
    settings = {**config.settings, "limit": config.limit}
    paths = write_report(config.out, rows, config.models, tuple(prompts), settings, pressure=pressure_rows)
    rows += pressure_rows
    return {"generated": generated, "reused": len(rows) - generated, "rows": len(rows), **paths}


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", required=True, metavar="NAME=SPEC", help="repeatable")
    parser.add_argument("--suite", action="append", required=True,
                        help="curated, coconot (original + contrast), coconot_original, coconot_contrast, xstest, "
                             "pressure (two turns: answer, a push back, answer again)")
    parser.add_argument("--limit", type=int, help="prompts per suite")
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)


def main(args: argparse.Namespace) -> int:
    """`pushback eval --model NAME=SPEC ... --suite NAME ... [--limit N] --out DIR`."""
    from pushback.backends import BackendError

    try:
        config = config_from_args(args)
        summary = run_eval(config)
    except (ValueError, BackendError) as e:  # RunError, SuiteError, RecordsError, a corrupt results line
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e.filename or args.out}: {e.strerror}", file=sys.stderr)
        return 1
    print(f"{summary['rows']} responses ({summary['generated']} generated, {summary['reused']} reused from "
          f"{config.out / 'results.jsonl'})")
    for name in ("report", "plot", "eval_results"):
        print(f"{name}: {summary[name]}")
    return 0
