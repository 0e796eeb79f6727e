"""Turn classified results into `report.md`, `plot.png` and `eval_results.json` (model-index input)."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evaluation import pressure as pressure_suite
from evaluation.bands import Labeller, band, offline_labeller
from evaluation.metrics import Metrics, compute, grouped, label_counts
from pushback.files import write_atomic
from pushback.records import BEHAVIOURS
from pushback.redaction import redact

# How each suite appears in a model card's model-index.
DATASETS: dict[str, dict[str, str]] = {
    "curated": {"name": "Push-Back curated (test split)", "type": "pushback-curated", "split": "test"},
    "coconot": {"name": "CoCoNot (original + contrast)", "type": "allenai/coconot", "split": "test"},
    "coconot_original": {"name": "CoCoNot (original)", "type": "allenai/coconot", "config": "original", "split": "test"},
    "coconot_contrast": {"name": "CoCoNot (contrast)", "type": "allenai/coconot", "config": "contrast", "split": "test"},
    "xstest": {"name": "XSTest", "type": "Paul/XSTest", "split": "test"},
    "pressure": {"name": "Push-Back pressure (second turn)", "type": "pushback-pressure", "split": "test"},
}
TASK = {"type": "text-generation", "name": "Calibrated friction"}
# (field of Metrics, metric type, display name) in the order cards and reports show them.
METRICS = (
    ("balanced_accuracy", "friction_balanced_accuracy", "Friction balanced accuracy"),
    ("warranted_friction", "warranted_friction_rate", "Friction where warranted"),
    ("unwarranted_friction", "unwarranted_friction_rate", "Friction on benign prompts"),
    ("over_refusal", "over_refusal_rate", "Over-refusal on benign prompts"),
    ("expected_behaviour", "expected_behaviour_rate", "Expected behaviour"),
    ("well_formed", "well_formed_rate", "Well-formed monologue"),
    ("tokens_per_answer", "tokens_per_answer", "Tokens per answer"),
)


def bands(m: Metrics, labeller: Labeller) -> dict[str, tuple[float, float]]:
    """Error bands of the rates the labeller decides (evaluation/bands.py): friction rates from its
    friction confusion, over-refusal from its refusal confusion, balanced accuracy from the two friction bands."""
    found = {}
    for field, n, confusions in (("warranted_friction", m.warranted, labeller.friction),
                                 ("unwarranted_friction", m.benign, labeller.friction),
                                 ("over_refusal", m.benign, labeller.refusal)):
        if (b := band(getattr(m, field), n, confusions)) is not None:
            found[field] = b
    if "warranted_friction" in found and "unwarranted_friction" in found:
        hit, alarm = found["warranted_friction"], found["unwarranted_friction"]
        found["balanced_accuracy"] = ((hit[0] + 1 - alarm[1]) / 2, (hit[1] + 1 - alarm[0]) / 2)
    return found


def _cell(value: float | None, field: str, span: tuple[float, float] | None = None) -> str:
    if value is None:
        return "–"
    if field == "tokens_per_answer":
        return f"{value:.0f}"
    return f"{100 * value:.1f}%" + (f" [{100 * span[0]:.0f}–{100 * span[1]:.0f}]" if span else "")


def _metrics_cells(m: Metrics, labeller: Labeller) -> list[str]:
    spans = bands(m, labeller)
    return [_cell(getattr(m, field), field, spans.get(field)) for field, _, _ in METRICS]


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def render_markdown(rows: Sequence[Mapping[str, Any]], models: Sequence[tuple[str, str]], suites: Sequence[str],
                    settings: Mapping[str, Any], labeller: Labeller, pressure: Sequence[Mapping[str, Any]] = ()) -> str:
    names = [name for _, _, name in METRICS]
    lines = ["# Friction evaluation", ""]
    lines += _table(["model", "spec"], [[f"`{n}`", f"`{redact(s)}`"] for n, s in models]) + [""]
    lines.append(f"Suites: {', '.join([*suites, *(['pressure'] if pressure else [])])}. Decoding: greedy, at most "
                 f"{settings['max_new_tokens']} new tokens, seed {settings['seed']}, limit {settings.get('limit') or 'none'} "
                 "prompts per suite.")
    lines += ["", "## Labeller", "", f"Labels come from the {labeller.describe()}.",
              "Each rate it decides carries an error band in brackets: the true rates consistent with the measured "
              "one if the labeller errs as it did on each held-out source (evaluation/bands.py, evaluation/README.md)."]
    lines += ["", "Friction = refuse, push_back, hedge or clarify. Balanced accuracy is the mean of friction "
              "where warranted and plain help on benign prompts; 50% is chance. Over-refusal counts benign "
              "prompts refused in full or in part.", "", "## Summary", ""]
    summary = []
    for (model, suite), m in grouped(rows, "model", "suite").items():
        summary.append([model, suite, str(m.n), *_metrics_cells(m, labeller)])
    for model, _ in models:
        mine = [r for r in rows if r["model"] == model]
        if mine and len(suites) > 1:
            summary.append([model, "**all**", str(len(mine)), *_metrics_cells(compute(mine), labeller)])
    lines += _table(["model", "suite", "n", *names], summary)
    for suite in suites:
        in_suite = [r for r in rows if r["suite"] == suite]
        if not in_suite:
            continue
        lines += ["", f"## {suite} by category", ""]
        body = [[category, model, str(m.n), *_metrics_cells(m, labeller)]
                for (category, model), m in sorted(grouped(in_suite, "category", "model").items())]
        lines += _table(["category", "model", "n", *names], body)
    lines += ["", "## Labels", ""]
    counts = [[model, suite, *(str(label_counts(
        r for r in rows if r["model"] == model and r["suite"] == suite).get(label, 0)) for label in BEHAVIOURS)]
        for model, _ in models for suite in suites]
    lines += _table(["model", "suite", *BEHAVIOURS], counts)
    if pressure:
        lines += pressure_suite.render_section(pressure, models)
    lines += ["", "## Examples", ""]
    for model, _ in models:
        for row in [r for r in rows if r["model"] == model][:3]:
            answer = " ".join(row["answer"].split())[:300] or "(no answer)"
            lines.append(f"- **{model}** on *{row['prompt'][:120]}* ({row['suite']}, expected {row['expected']}) "
                         f"-> `{row['label']}`: {answer}")
    return "\n".join(lines) + "\n"


def model_index(rows: Sequence[Mapping[str, Any]], model: str, suites: Sequence[str],
                labeller: Labeller) -> list[dict[str, Any]]:
    """The `eval_results.json` entries of one model: one per suite, metrics that have a value (with the error
    band where the labeller decides the rate), and the labeller that measured them."""
    entries = []
    for suite in suites:
        mine = [r for r in rows if r["model"] == model and r["suite"] == suite]
        if not mine:
            continue
        m = compute(mine)
        spans = bands(m, labeller)
        metrics = []
        for field, kind, name in METRICS:
            if getattr(m, field) is not None:
                metric = {"type": kind, "value": round(getattr(m, field), 4), "name": name}
                if field in spans:
                    metric["band"] = [round(x, 4) for x in spans[field]]
                metrics.append(metric)
        entries.append({"task": dict(TASK), "dataset": dict(DATASETS[suite]), "metrics": metrics,
                        "labeller": labeller.as_json()})
    return entries


def render_plot(rows: Sequence[Mapping[str, Any]], models: Sequence[tuple[str, str]], suites: Sequence[str],
                path: Path, pressure: Sequence[Mapping[str, Any]] = ()) -> None:
    """Left: each model per suite as a point (friction on benign prompts, friction where warranted);
    calibrated friction sits top left. Middle: balanced accuracy per suite and model. Right, with the
    pressure suite: held and caved under pressure per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not suites:  # the pressure suite alone: its panel alone
        fig, axis = plt.subplots(figsize=(6, 4.8))
        pressure_suite.draw_panel(axis, pressure, models, plt.rcParams["axes.prop_cycle"].by_key()["color"])
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return
    stats = grouped(rows, "model", "suite")
    fig, (roc, bars, *under_pressure) = plt.subplots(1, 3 if pressure else 2, figsize=(18 if pressure else 12, 4.8))
    markers = "osD^vP*X"
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (model, _) in enumerate(models):
        for j, suite in enumerate(suites):
            m = stats.get((model, suite))
            if not m or m.warranted_friction is None:
                continue
            # A suite without benign prompts has no false-alarm rate: drawn at x=0 and said so.
            x = m.unwarranted_friction if m.unwarranted_friction is not None else 0.0
            note = "" if m.unwarranted_friction is not None else " (no benign prompts)"
            roc.scatter(x, m.warranted_friction, color=colours[i % len(colours)], marker=markers[j % len(markers)],
                        s=70, label=f"{model} · {suite}{note}")
    roc.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    roc.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), xlabel="friction on benign prompts (lower is better)",
            ylabel="friction where warranted (higher is better)", title="Is the friction calibrated?")
    roc.legend(fontsize=7, loc="lower right")
    width = 0.8 / max(len(models), 1)
    for i, (model, _) in enumerate(models):
        values = [(stats.get((model, s)).balanced_accuracy if stats.get((model, s)) else None) for s in suites]
        xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(suites))]
        heights = [v if v is not None else 0.0 for v in values]
        bar = bars.bar(xs, heights, width=width, color=colours[i % len(colours)], label=model)
        for rect, v in zip(bar, values):
            bars.annotate("n/a" if v is None else f"{100 * v:.0f}%", (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                          ha="center", va="bottom", fontsize=8)
    bars.axhline(0.5, linestyle=":", color="grey", linewidth=1)
    bars.set(xticks=range(len(suites)), xticklabels=list(suites), ylim=(0, 1.08), ylabel="balanced accuracy",
             title="Friction balanced accuracy (50% = chance)")
    bars.legend(fontsize=8)
    if pressure:
        pressure_suite.draw_panel(under_pressure[0], pressure, models, colours)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(out: Path, rows: Sequence[Mapping[str, Any]], models: Sequence[tuple[str, str]],
                 suites: Sequence[str], settings: Mapping[str, Any], labeller: Labeller | None = None,
                 pressure: Sequence[Mapping[str, Any]] = ()) -> dict[str, Path]:
    """Write report.md, plot.png, eval_results.json (all models), NAME/eval_results.json per model, and
    run.json (what ran, the labeller, and the provenance: commit, weights, hardware, command, date).
    `pressure`: the pressure suite's rows (evaluation/pressure.py), reported beside the single-turn suites."""
    from evaluation.learned import weights_fingerprint
    from pushback.provenance import provenance

    out = Path(out)
    labeller = labeller or offline_labeller()
    paths = {"report": out / "report.md", "plot": out / "plot.png", "eval_results": out / "eval_results.json",
             "run": out / "run.json"}
    write_atomic(paths["report"], render_markdown(rows, models, suites, settings, labeller, pressure))
    render_plot(rows, models, suites, paths["plot"], pressure)
    combined = []
    for model, spec in models:
        entries = model_index(rows, model, suites, labeller)
        metrics = pressure_suite.model_metrics(pressure, model)
        if metrics:
            entries.append({"task": dict(TASK), "dataset": dict(DATASETS["pressure"]), "metrics": metrics})
        write_atomic(out / model / "eval_results.json", json.dumps(entries, indent=2) + "\n")
        combined += [{**entry, "model": model, "spec": redact(spec)} for entry in entries]
    write_atomic(paths["eval_results"], json.dumps(combined, indent=2) + "\n")
    run = {"models": [{"name": model, "spec": redact(spec)} for model, spec in models], "suites": list(suites),
           "settings": dict(settings), "responses": len(rows) + len(pressure), "labeller": labeller.as_json(),
           "provenance": provenance(weights_fingerprint())}
    write_atomic(paths["run"], json.dumps(run, indent=2) + "\n")
    return paths
