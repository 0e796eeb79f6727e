"""README.md's measured table, rendered from the committed results in bench/results/*.json.

Each benchmark (and `bench/pocket.py` for the pocket pair's behaviour) writes, beside its figures, a
`readme` list of rows it stands behind and a `provenance` block (`pushback.provenance`): the table takes
its hardware and command from there, so a row always says where and how it was measured. A result whose
fingerprints (the pocket plan, a recipe, the classifier...) no longer match the current code is stale.

The wings' READMEs hold blocks of their own results: a begin marker may name the result files it shows
(`<!-- measured:begin pocket training (python bench/readme_table.py) -->`); one that names none shows all;
`loso:full` or `test_sets:full` shows that result of `pushback classify --validate` as its own table.

    python bench/readme_table.py          # rewrite every block between the markers
    python bench/readme_table.py --check  # exit 1 if a block differs or a result is stale (the test does this)
"""
from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from pushback.files import write_atomic  # noqa: E402
from pushback.provenance import describe_hardware, fingerprint_file  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# The classifier's leave-one-source-out figures ship with the evaluation wing (its reports' error bands use them),
# and so do its figures on the five-label test sets.
ALSO = (ROOT / "evaluation" / "loso.json", ROOT / "evaluation" / "test_sets.json")
# Rows follow the lifecycle: data, training, evaluation, the Space (files not named here come last).
ORDER = ("generation", "generation-L2", "pocket", "training", "gpu_qlora", "gpu_qlora-no-checkpointing", "preference", "loso",
         "test_sets", "classify", "space")
READMES = (ROOT / "README.md", ROOT / "training" / "README.md", ROOT / "evaluation" / "README.md",
           ROOT / "space" / "README.md", ROOT / "generation" / "README.md")
BLOCK = re.compile(r"(<!-- measured:begin(?P<names>[^(>]*)\(python bench/readme_table\.py\) -->\n)"
                   r".*?(?=<!-- measured:end -->)", re.S)


def results(folder: Path = RESULTS, also: tuple[Path, ...] = ALSO) -> dict[str, dict]:
    """Result files that carry README rows, by path from the repository root."""
    found = {}
    paths = [*folder.glob("*.json"), *(path for path in also if path.exists())]
    rank = {name: i for i, name in enumerate(ORDER)}
    for path in sorted(paths, key=lambda p: (rank.get(p.stem, len(ORDER)), p.name)):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("readme"):
            if "provenance" not in data:
                raise ValueError(f"{path}: has README rows but no provenance block (pushback.provenance)")
            found[str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name] = data
    return found


def current_fingerprint(name: str) -> str:
    """`file:PATH` is the hash of a file in the repository; `module:function` calls that function."""
    if name.startswith("file:"):
        return fingerprint_file(ROOT / name.removeprefix("file:"))
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)()


def stale(found: dict[str, dict]) -> list[str]:
    """One line per result measured on something that has changed since: what to re-run."""
    lines = []
    for file, data in found.items():
        for name, measured in data["provenance"]["fingerprints"].items():
            try:
                now = current_fingerprint(name)
            except (OSError, ImportError, AttributeError) as e:
                lines.append(f"{file}: fingerprint {name} cannot be computed now ({e}); "
                             f"re-run `{data['provenance']['command']}`")
                continue
            if now != measured:
                lines.append(f"{file}: {name} changed since it was measured ({measured} -> {now}); "
                             f"re-run `{data['provenance']['command']}`")
    return lines


def render_agreements(data: dict) -> str:
    """A result of `pushback classify --validate [--test-set]` in its own shape: one row per source, then its
    errors (`evaluation.validation`, as the command prints them)."""
    from evaluation.validation import Agreement, format_confusion, format_table

    results = [Agreement(**source) for source in data["sources"]]
    where = describe_hardware(data["provenance"]["hardware"])
    return "\n".join([format_table(results), "",
                      f"Measured on {where} by `{data['provenance']['command']}`. Errors, gold as predicted:", "",
                      *(f"- {format_confusion(r)}" for r in results)])


def render(found: dict[str, dict], names: tuple[str, ...] = ()) -> str:
    """The table of the results named (by file stem), or of all of them; `NAME:full` (alone in its block) is
    a classifier-agreement result's own table (`render_agreements`)."""
    full = [name for name in names if name.endswith(":full")]
    if full:
        stem = full[0].removesuffix(":full")
        data = next((data for file, data in found.items() if Path(file).stem == stem), None)
        if len(names) != 1 or data is None or "sources" not in data:
            raise ValueError(f"a measured block names {full[0]!r}: a full table shows one result of "
                             "`pushback classify --validate` alone")
        return render_agreements(data)
    lines = ["| what | figure | measured on | command |", "|---|---|---|---|"]
    for file, data in found.items():
        if names and Path(file).stem not in names:
            continue
        where = describe_hardware(data["provenance"]["hardware"])
        command = data["provenance"]["command"]
        for row in data["readme"]:
            lines.append(f"| {row['what']} | {row['figure']} | {where} | `{command}` |")
    return "\n".join(lines)


def rewrite(text: str, found: dict[str, dict]) -> str:
    """`text` with every measured block rendered again from `found`."""
    unknown = [name for m in BLOCK.finditer(text) for name in m["names"].split()
               if name.removesuffix(":full") not in {Path(file).stem for file in found}]
    if unknown:
        raise ValueError(f"a measured block names {unknown[0]!r}, which no result file with README rows has")
    return BLOCK.sub(lambda m: f"{m[1]}{render(found, tuple(m['names'].split()))}\n", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    found = results()
    problems = stale(found)
    changed = []
    for readme in READMES:
        text = readme.read_text(encoding="utf-8")
        wanted = rewrite(text, found)
        if wanted != text:
            changed.append(readme.relative_to(ROOT))
            if not args.check:
                write_atomic(readme, wanted)
    if args.check:
        problems[:0] = [f"{path}: a measured block differs from what bench/readme_table.py renders from the "
                        f"results: run `python bench/readme_table.py`" for path in changed]
        print("\n".join(problems) or f"the measured blocks match {len(found)} result files")
        return 1 if problems else 0
    print(f"measured blocks rewritten from {len(found)} result files: "
          f"{', '.join(map(str, changed)) or 'none changed'}")
    for line in problems:
        print(f"stale: {line}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
