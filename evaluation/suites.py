"""Benchmark suites: prompts tagged with whether friction is warranted and which behaviour fits.

Vendored suites live in `data/suites/*.jsonl` (see data/suites/README.md for sources and licences);
`curated` is computed from `data/curated/` with the same split the dataset build uses
(`pushback.splits.curated_split()`), so it follows the curated set as it
grows and never overlaps what the models were trained on.

    python -m evaluation.suites --from DIR   # re-vendor from a checkout of the public sources
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from pushback.paths import SUITES_DIR
from pushback.files import iter_jsonl, write_atomic
from pushback.splits import curated_split

# `coconot` is the benchmark as published: the original set (friction warranted) and its contrast set
# (benign look-alikes), so over-refusal is measured in the same suite.
SUITES: dict[str, tuple[str, ...]] = {
    "curated": (),
    "coconot": ("coconot_original", "coconot_contrast"),
    "coconot_original": ("coconot_original",),
    "coconot_contrast": ("coconot_contrast",),
    "xstest": ("xstest",),
}

# CoCoNot's categories, shortened, and the behaviour of our taxonomy each one calls for.
_COCONOT_CATEGORY = {
    "Incomplete requests": "incomplete",
    "Unsupported requests": "unsupported",
    "Indeterminate requests": "indeterminate",
    "Requests with safety concerns": "safety",
    "Humanizing requests": "humanizing",
}
_COCONOT_EXPECTED = {
    "false presuppositions": "push_back",
    "underspecified": "clarify",
    "incomprehensible": "clarify",
    "subjective questions": "hedge",
    "universal unknowns": "hedge",
}
_COCONOT_CATEGORY_EXPECTED = {"safety": "refuse", "unsupported": "refuse", "humanizing": "push_back",
                              "incomplete": "clarify", "indeterminate": "hedge"}


class SuiteError(ValueError):
    """An unknown suite or a malformed suite file; the message says which and where."""


@dataclass(frozen=True)
class SuitePrompt:
    id: str
    prompt: str
    category: str
    subcategory: str | None
    warranted: bool  # friction (refuse, push back, hedge, clarify) is the right response
    expected: str  # the behaviour that fits best, in the records' taxonomy
    source: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def suite_names() -> tuple[str, ...]:
    return (*SUITES, "pressure")  # pressure: two-turn items, run by evaluation/pressure.py


def _read_vendored(part: str) -> list[SuitePrompt]:
    path = SUITES_DIR / f"{part}.jsonl"
    if not path.exists():
        raise SuiteError(f"{path}: missing; re-vendor with `python -m evaluation.suites --from DIR`")
    prompts = []
    for number, row in enumerate(iter_jsonl(path), start=1):
        try:
            prompts.append(SuitePrompt(**row))
        except TypeError as e:
            raise SuiteError(f"{path}:{number}: {e}") from None
    return prompts


def curated_test_prompts() -> list[SuitePrompt]:
    """The curated TEST split, as the dataset build splits it."""
    _, test = curated_split()
    return [SuitePrompt(r.id, r.user_input, r.category, None, r.expected != "comply", r.expected, "curated")
            for r in test]


def load_suite(name: str, limit: int | None = None, seed: int = 0) -> list[SuitePrompt]:
    """All prompts of a suite, or `limit` of them drawn evenly across (warranted, category) strata."""
    if name not in SUITES:
        raise SuiteError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
    prompts = curated_test_prompts() if name == "curated" else [p for part in SUITES[name] for p in _read_vendored(part)]
    if limit is None or limit >= len(prompts):
        return prompts
    return stratified(prompts, limit, seed)


def stratified(prompts: list[SuitePrompt], limit: int, seed: int = 0) -> list[SuitePrompt]:
    """A deterministic sample that takes strata in turn, so a small limit still covers every category."""
    strata: dict[tuple[bool, str], list[SuitePrompt]] = defaultdict(list)
    for p in prompts:
        strata[(not p.warranted, p.category)].append(p)
    rng = random.Random(seed)
    queues = []
    for key in sorted(strata):
        members = list(strata[key])
        rng.shuffle(members)
        queues.append(members)
    # Alternate warranted and benign strata so both halves are represented at any limit.
    warranted = [q for q, key in zip(queues, sorted(strata)) if not key[0]]
    benign = [q for q, key in zip(queues, sorted(strata)) if key[0]]
    order = [q for pair in zip(warranted, benign) for q in pair]
    order += warranted[len(benign):] + benign[len(warranted):]
    picked: list[SuitePrompt] = []
    while len(picked) < limit:
        for queue in order:
            if queue and len(picked) < limit:
                picked.append(queue.pop())
    return picked


# --- vendoring (maintainers only) ---------------------------------------------------------------


def _coconot(path: Path, contrast: bool) -> list[SuitePrompt]:
    out = []
    for row in iter_jsonl(path):
        category = _COCONOT_CATEGORY.get(row["category"], row["category"])
        sub = row.get("subcategory") or None
        expected = "comply" if contrast else _COCONOT_EXPECTED.get(sub or "", _COCONOT_CATEGORY_EXPECTED.get(category, "refuse"))
        part = "coconot_contrast" if contrast else "coconot_original"
        out.append(SuitePrompt(f"{part}-{row['id']}", row["prompt"], category, sub, not contrast, expected, part))
    return out


def _xstest(path: Path) -> list[SuitePrompt]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [SuitePrompt(f"xstest-{row['id']}", row["prompt"], row["type"], row.get("focus") or None,
                        row["label"] == "unsafe", "refuse" if row["label"] == "unsafe" else "comply", "xstest")
            for row in rows]


def vendor(source: Path, dest: Path = SUITES_DIR) -> dict[str, int]:
    """Convert the public files under `source` (coconot/, xstest/) into suite JSONL plus licences, and copy the
    labelled responses the classifier is validated on (xstest/, chatgpt_refusals/)."""
    suites = {
        "coconot_original": _coconot(source / "coconot" / "coconot_eval.jsonl", contrast=False),
        "coconot_contrast": _coconot(source / "coconot" / "coconot_contrast_eval.jsonl", contrast=True),
        "xstest": _xstest(source / "xstest" / "xstest_prompts.csv"),
    }
    for name, prompts in suites.items():
        write_atomic(dest / f"{name}.jsonl", "".join(p.to_json() + "\n" for p in prompts))
    copies = {
        "coconot": ("LICENSE", "SOURCE.txt", "refusal_evaluation_rubric.json"),
        "xstest": ("LICENSE", "SOURCE.txt", "xstest_prompts.csv", "xstest_v2_completions_gpt4.csv",
                   "xstest_v2_completions_llama2new.csv", "xstest_v2_completions_llama2orig.csv"),
        "chatgpt_refusals": ("LICENSE", "SOURCE.txt", "political_figures.json", "nyp.json"),
    }
    for folder, names in copies.items():
        (dest / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(source / folder / name, dest / folder / name)
    return {name: len(prompts) for name, prompts in suites.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.suites", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", required=True, help="folder holding coconot/, xstest/ and chatgpt_refusals/")
    parser.add_argument("--to", dest="dest", default=str(SUITES_DIR))
    args = parser.parse_args(argv)
    try:
        counts = vendor(Path(args.source), Path(args.dest))
    except (OSError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, n in counts.items():
        print(f"{name}: {n} prompts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
