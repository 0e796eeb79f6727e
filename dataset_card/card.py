"""The dataset card (README.md with YAML front matter), filled from the real records and splits."""
from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import yaml

from pushback.records import CATEGORIES, Record

TEMPLATE = Path(__file__).with_name("template.md")
LICENSE = "cc-by-4.0"


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def card_metadata(splits: dict[str, Sequence[Record]], pretty_name: str) -> dict:
    from pushback.dataset import CONFIGS, preference_features, record_features, split_file, to_dataset

    n_total = sum(len(s) for s in splits.values())
    features = {"default": record_features(), "preference": preference_features()}
    return {
        "license": LICENSE,
        "language": ["en"],
        "pretty_name": pretty_name,
        "task_categories": ["text-generation"],
        "size_categories": [size_category(n_total)],
        "tags": ["friction", "refusal", "over-refusal", "sycophancy", "false-premise", "calibration",
                 "reasoning", "chain-of-thought", "safety", "sft", "dpo"],
        "configs": [{"config_name": config,
                     "data_files": [{"split": name, "path": split_file(name, config)} for name in splits]}
                    for config in CONFIGS],
        "dataset_info": [
            {"config_name": config,
             "features": features[config]._to_yaml_list(),
             "splits": [{"name": name, "num_bytes": (rows := to_dataset(records, config)).data.nbytes,
                         "num_examples": rows.num_rows} for name, records in splits.items()]}
            for config in CONFIGS],
    }


def _counts_table(splits: dict[str, Sequence[Record]]) -> str:
    names = list(splits)
    rows = ["| category | expected | " + " | ".join(names) + " | total |",
            "|---|---|" + "---:|" * (len(names) + 1)]
    per = {name: Counter(r.category for r in records) for name, records in splits.items()}
    expected = {r.category: r.expected for records in splits.values() for r in records}
    for category in CATEGORIES:
        counts = [per[name][category] for name in names]
        rows.append(f"| {category} | {expected.get(category, '-')} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
    totals = [len(splits[name]) for name in names]
    rows.append("| **all** | | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")
    return "\n".join(rows)


def _length_table(records: Sequence[Record]) -> str:
    rows = ["| field | min | median | max |", "|---|---:|---:|---:|"]
    for name, values in (
        ("user_input", [len(r.user_input.split()) for r in records]),
        ("monologue", [len(r.monologue.split()) for r in records]),
        ("final_answer", [len(r.final_answer.split()) for r in records]),
        ("baseline_answer", [len(r.baseline_answer.split()) for r in records]),
        ("overcautious_answer (benign)", [len(r.overcautious_answer.split()) for r in records if r.overcautious_answer]),
        ("persona thoughts", [len(r.agents) for r in records]),
    ):
        if values:
            rows.append(f"| {name} | {min(values)} | {statistics.median(values):g} | {max(values)} |")
    return "\n".join(rows)


def _pairs_table(splits: dict[str, Sequence[Record]]) -> str:
    """Preference pairs per kind and split, as `preference_rows` builds them (the one pair builder)."""
    from pushback.dataset import preference_rows

    names = list(splits)
    per = {name: Counter("benign" if row["category"] == "benign" else "friction" for row in preference_rows(records))
           for name, records in splits.items()}
    rows = ["| pair | chosen | rejected | " + " | ".join(names) + " | total |", "|---|---|---|" + "---:|" * (len(names) + 1)]
    for kind, chosen, rejected in (("friction", "monologue + friction answer", "`baseline_answer` (eager)"),
                                   ("benign", "monologue + plain help", "`overcautious_answer`")):
        counts = [per[name][kind] for name in names]
        rows.append(f"| {kind} | {chosen} | {rejected} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
    totals = [sum(per[name].values()) for name in names]
    rows.append("| **all** | | | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")
    return "\n".join(rows)


def _provenance(records: Sequence[Record]) -> str:
    sources = Counter(r.metadata.source for r in records)
    models = Counter(r.metadata.model for r in records if r.metadata.model)
    lines = []
    if sources["curated"]:
        lines.append(f"- **{sources['curated']} curated rows**, written and reviewed by hand by the Push-Back AI "
                     "team (see `data/curated/README.md` in the project): each persona thought, final answer, "
                     "eager baseline answer and (benign rows) over-cautious answer written for its prompt, not "
                     "filled from templates.")
    if sources["generated"]:
        used = ", ".join(f"`{m}` ({n})" for m, n in models.most_common()) or "an unrecorded model"
        lines.append(f"- **{sources['generated']} generated rows** from `pushback generate`: a persona relay "
                     f"through LiteLLM ({used}), with the eager and (benign rows) over-cautious answers asked "
                     "for separately; each record validated before it was written.")
    if sources["converted"]:
        lines.append(f"- **{sources['converted']} converted rows** from the original project's published shapes.")
    return "\n".join(lines)


def render_card(splits: dict[str, Sequence[Record]], *, pretty_name: str, seed: int, test_size: float,
                repo_id: str = "OWNER/NAME") -> str:
    records = [r for split in splits.values() for r in split]
    if not records:
        raise ValueError("cannot write a dataset card for zero records")
    categories = Counter(r.category for r in records)
    twins = {r.metadata.twin_of for r in records if r.metadata.twin_of}
    sample = next((r for r in records if r.category != "benign"), records[0])
    body = TEMPLATE.read_text(encoding="utf-8").format(
        pretty_name=pretty_name,
        summary=(f"{len(records)} prompts that teach a language model *calibrated friction*: when to push back, "
                 "refuse, hedge or ask -- and when simply to help. Every row carries an inner monologue, the "
                 "friction answer and the eager answer a plain assistant would give; benign rows also carry the "
                 "over-cautious answer a too-careful model gives. A `preference` config pairs them for DPO."),
        counts_table=_counts_table(splits),
        twins_line=(f"{len(twins)} friction rows have a **benign twin**: a look-alike prompt that shares their "
                    "wording but deserves a plain, helpful answer (`metadata.twin_of`)."),
        length_table=_length_table(records),
        pairs_table=_pairs_table(splits),
        test_pct=round(100 * test_size), seed=seed,
        provenance=_provenance(records),
        repo_id=repo_id,
        benign_pct=round(100 * categories["benign"] / len(records)),
        n_total=len(records),
        sample=json.dumps(sample.model_dump(mode="json"), indent=2, ensure_ascii=False),
    )
    front = yaml.safe_dump(card_metadata(splits, pretty_name), sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n{body}"
