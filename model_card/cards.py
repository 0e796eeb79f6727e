"""Model cards for the adapter repo and the merged repo, filled from the run's own files.

Inputs are what `pushback train` and `pushback merge` leave in their output directories
(`recipe.yaml`, `metrics.json`, `training_example.txt`, `merge.json`) and, optionally, an
evaluation's `eval_results.json`. Nothing is typed in by hand: a figure that is not in those files
does not appear on the card.

Accepted `eval_results.json` (what `pushback eval` writes; read defensively):
    [{"task": "text-generation" | {"type": "text-generation", "name": "..."},
      "dataset": {"name": "...", "type": "...", "split": "test"?, "config": "..."?},
      "metrics": [{"type": "...", "value": 0.83, "name": "..."?}, ...],
      "model": "friction"?, "spec": "runs/merged"?}, ...]
or `{"results": [...]}` around that list. Entries that carry `model`/`spec` belong to several models:
the card keeps the entries of the model it describes (matched by spec path or repo id, or the only
model there). Malformed entries and metrics are skipped and reported, never guessed.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

TEMPLATE = Path(__file__).with_name("template.md")
CardKind = Literal["adapter", "merged"]

# Licences of the bases our recipes use; anything else points the reader at the base model's own.
BASE_LICENSES = {
    "Qwen/Qwen2.5-0.5B": "apache-2.0", "Qwen/Qwen2.5-1.5B": "apache-2.0", "Qwen/Qwen2.5-7B": "apache-2.0",
    "Qwen/Qwen2.5-14B": "apache-2.0", "Qwen/Qwen2.5-32B": "apache-2.0",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-": "mit",
}
PROJECT_LICENSE = "apache-2.0"  # for models built from scratch here (the pocket pair)


@dataclass
class RunInfo:
    """What a training (or merge) output directory says about how its weights were made."""

    directory: Path
    recipe: dict[str, Any]
    metrics: dict[str, Any]
    base_model: str  # Hub id or local path of the base the adapter was trained on
    example: str | None
    merge: dict[str, Any] | None = None

    @classmethod
    def read(cls, directory: str | Path) -> RunInfo:
        import yaml

        directory = Path(directory)
        recipe_path, metrics_path = directory / "recipe.yaml", directory / "metrics.json"
        recipe = yaml.safe_load(recipe_path.read_text()) if recipe_path.exists() else {}
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
        merge = json.loads((directory / "merge.json").read_text()) if (directory / "merge.json").exists() else None
        adapter_config = directory / "adapter_config.json"
        base = (merge or {}).get("base_model") or metrics.get("base_model")
        if not base and adapter_config.exists():
            base = json.loads(adapter_config.read_text()).get("base_model_name_or_path")
        if not base:
            raise ValueError(f"{directory}: cannot tell the base model (no merge.json, metrics.json or adapter_config.json)")
        example_path = directory / "training_example.txt"
        example = example_path.read_text() if example_path.exists() else None
        return cls(directory, recipe or {}, metrics, str(base), example, merge)


@dataclass
class EvalEntries:
    entries: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why each malformed entry or metric was left out
    source: str | None = None


# --- evaluation results -----------------------------------------------------------------------


def _matches(entry: dict[str, Any], hints: Sequence[str]) -> bool:
    spec, model = str(entry.get("spec") or ""), str(entry.get("model") or "")
    for hint in hints:
        if not hint:
            continue
        if hint in (spec, model) or (spec and hint in spec):
            return True
        try:
            if spec and Path(spec.split("@")[0]).expanduser().resolve() == Path(hint).expanduser().resolve():
                return True
        except OSError:
            continue
    return False


def read_eval_results(path: str | Path | None, *, hints: Sequence[str] = ()) -> EvalEntries:
    """Entries for one model from an evaluation directory (or its eval_results.json); see module doc."""
    if path is None:
        return EvalEntries()
    path = Path(path)
    file = path / "eval_results.json" if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"{file}: no eval_results.json (run `pushback eval` first, or leave out --eval)")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}: invalid JSON ({e.msg} at line {e.lineno})") from None
    if isinstance(data, dict):
        data = data.get("results", data.get("eval_results"))
    if not isinstance(data, list):
        raise ValueError(f"{file}: expected a list of results (or {{\"results\": [...]}})")
    result = EvalEntries(source=str(file))
    models = sorted({str(e.get("model")) for e in data if isinstance(e, dict) and e.get("model")})
    if len(models) > 1:
        data = [e for e in data if isinstance(e, dict) and _matches(e, hints)]
        if not data:
            raise ValueError(f"{file} holds results of several models ({', '.join(models)}) and none matches "
                             f"this model; pass --eval {path}/MODEL for one of them")
    for i, entry in enumerate(data):
        clean = _clean_entry(entry, f"{file.name}[{i}]", result.skipped)
        if clean:
            result.entries.append(clean)
    return result


def _clean_entry(entry: Any, where: str, skipped: list[str]) -> dict[str, Any] | None:
    if not isinstance(entry, dict):
        skipped.append(f"{where}: not an object")
        return None
    task = entry.get("task") or "text-generation"
    task = {"type": task} if isinstance(task, str) else task
    dataset = entry.get("dataset")
    if not isinstance(task, dict) or not task.get("type"):
        skipped.append(f"{where}.task: needs a type")
        return None
    if not isinstance(dataset, dict) or not dataset.get("name") or not dataset.get("type"):
        skipped.append(f"{where}.dataset: needs name and type")
        return None
    metrics = []
    for j, metric in enumerate(entry.get("metrics") or []):
        value = metric.get("value") if isinstance(metric, dict) else None
        if not isinstance(metric, dict) or not metric.get("type") or isinstance(value, bool) \
                or not isinstance(value, (int, float, str)):
            skipped.append(f"{where}.metrics[{j}]: needs a type and a number or string value")
            continue
        metrics.append({"type": str(metric["type"]), "value": value, "name": metric.get("name")})
    if not metrics:
        skipped.append(f"{where}: no usable metrics")
        return None
    return {"task": task, "dataset": dataset, "metrics": metrics}


def eval_results(entries: list[dict[str, Any]]) -> list[Any]:
    from huggingface_hub import EvalResult

    results = []
    for entry in entries:
        task, dataset = entry["task"], entry["dataset"]
        for metric in entry["metrics"]:
            results.append(EvalResult(
                task_type=task["type"], task_name=task.get("name"),
                dataset_type=dataset["type"], dataset_name=dataset["name"],
                dataset_split=dataset.get("split"), dataset_config=dataset.get("config"),
                metric_type=metric["type"], metric_value=metric["value"], metric_name=metric.get("name")))
    return results


def _evaluation_section(evaluation: EvalEntries) -> str:
    if not evaluation.entries:
        return ("Not evaluated yet. Run `pushback eval --model friction=THIS_MODEL --suite curated --suite xstest "
                "--out eval/` and publish with `--eval eval/` to fill this section and the model-index.")
    lines = ["| dataset | metric | value |", "|---|---|---:|"]
    for entry in evaluation.entries:
        for metric in entry["metrics"]:
            value = metric["value"]
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            lines.append(f"| {entry['dataset']['name']} | {metric.get('name') or metric['type']} | {shown} |")
    return "\n".join(lines) + "\n\nFigures from `pushback eval` (the same numbers are in the model-index above)."


# --- the card ---------------------------------------------------------------------------------


def is_hub_id(name: str) -> bool:
    from pushback.specs import SpecError, parse_spec

    try:
        return parse_spec(name).kind == "hub"
    except SpecError:
        return False


def license_for(base: str) -> str:
    if not is_hub_id(base):
        return PROJECT_LICENSE
    return next((lic for prefix, lic in BASE_LICENSES.items() if base.startswith(prefix)), "other")


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [pair for key, sub in value.items() for pair in _flatten(f"{prefix}.{key}" if prefix else key, sub)]
    if value in (None, "", []):
        return []
    return [(prefix, json.dumps(value) if isinstance(value, list) else str(value))]


def _run_figures(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    records = metrics.get("records") or {}
    rows = [
        ("training records", records.get("train")),
        ("evaluation records", records.get("eval")),
        ("records left out (longer than data.max_length)", records.get("dropped_too_long")),
        ("optimizer steps", metrics.get("global_step")),
        ("train loss (first logged -> last logged)",
         f"{metrics['first_logged_loss']:.3f} -> {metrics['last_logged_loss']:.3f}"
         if metrics.get("first_logged_loss") is not None and metrics.get("last_logged_loss") is not None else None),
        ("eval loss (end)", metrics.get("eval_loss")),
        ("tokens trained on", metrics.get("train_tokens")),
        ("tokens per second", metrics.get("tokens_per_second")),
        ("training time (s)", metrics.get("train_seconds")),
        ("library versions", ", ".join(f"{k} {v}" for k, v in (metrics.get("versions") or {}).items()) or None),
    ]
    preference = metrics.get("preference") or {}
    if preference:
        pairs = preference.get("pairs") or {}
        rewards = preference.get("rewards") or {}
        final = rewards.get("eval") or rewards.get("train_last") or {}
        rows += [
            ("preference pairs (friction / benign)",
             f"{pairs.get('train')} ({pairs.get('friction')} / {pairs.get('benign')})" if pairs else None),
            ("beta", preference.get("beta")),
            ("reward margin (chosen - rejected)" + (", held-out pairs" if rewards.get("eval") else ", last logged"),
             final.get("rewards/margins")),
            ("reward accuracy (chosen preferred)", final.get("rewards/accuracies")),
        ]
    return [(k, str(v)) for k, v in rows if v not in (None, "")]


TRAINERS = {"sft": "TRL SFTTrainer", "dpo": "TRL DPOTrainer", "orpo": "TRL ORPOTrainer (trl.experimental)"}


def method_display(recipe: dict[str, Any], metrics: dict[str, Any]) -> str:
    """How the weights were trained, in one line: the method, its beta and pairs, and the QLoRA setup."""
    method = recipe.get("method") or "sft"
    quantization = (recipe.get("model") or {}).get("quantization", "nf4")
    lora = (f"LoRA r={(recipe.get('lora') or {}).get('r')} on all linear layers of a "
            f"{'4-bit NF4' if quantization == 'nf4' else 'full-precision'} base")
    if method == "sft":
        text = f"QLoRA SFT: {lora}, {TRAINERS['sft']}, assistant-only loss"
    else:
        preference = metrics.get("preference") or {}
        pairs = preference.get("pairs") or {}
        text = (f"{method.upper()} (beta={preference.get('beta')}) on {pairs.get('train')} preference pairs "
                f"({pairs.get('friction')} friction: the friction reply over the eager one; {pairs.get('benign')} "
                f"benign: plain help over the over-cautious reply), {TRAINERS[method]}, loss on the replies only; {lora}")
        start = (recipe.get("model") or {}).get("adapter")
        if method == "dpo":
            text += ("; reference: the starting SFT adapter, frozen" if start
                     else "; reference: the base with the adapter switched off")
        if start:
            text += f"; continues the adapter `{start}`"
    return text


def _usage(kind: CardKind, repo_id: str, base: str, merged_repo: str | None) -> str:
    base_ref = base if is_hub_id(base) else "BASE_MODEL_DIR"
    transformers_snippet = f"""```python
from transformers import AutoModelForCausalLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{repo_id if kind == 'merged' else merged_repo or 'MERGED_REPO'}")
model = AutoModelForCausalLM.from_pretrained("{repo_id if kind == 'merged' else merged_repo or 'MERGED_REPO'}")
messages = [{{"role": "system", "content": "You are a helpful assistant."}},
            {{"role": "user", "content": "Since the sky is green, what colour are clouds?"}}]
inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
out = model.generate(**inputs, max_new_tokens=512)
print(tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True))
```"""
    peft_snippet = f"""```python
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

base = AutoModelForCausalLM.from_pretrained("{base_ref}")
model = PeftModel.from_pretrained(base, "{repo_id if kind == 'adapter' else 'ADAPTER_REPO'}")
tokenizer = AutoTokenizer.from_pretrained("{repo_id if kind == 'adapter' else 'ADAPTER_REPO'}")  # carries the chat template
```"""
    spec = repo_id if kind == "merged" else f"{base_ref}+{repo_id}"
    parts = []
    if kind == "adapter":
        parts += ["With peft (the tokenizer in this repo carries the chat template the adapter was trained with):",
                  peft_snippet]
        if merged_repo:
            parts += [f"Merged weights, for plain transformers, vLLM or Ollama: [{merged_repo}](https://huggingface.co/{merged_repo})."]
    else:
        parts += ["With transformers:", transformers_snippet]
    parts += [
        "In the Push-Back AI Space, evaluation or CLI, as a model spec:",
        f"```\n{spec}\n```",
        "With Ollama (Qwen-based adapters cannot be imported by Ollama; use the merged weights):",
        "```bash\nhf download " + (repo_id if kind == "merged" else merged_repo or "MERGED_REPO")
        + " --local-dir merged\npushback export ollama --model merged --out ollama/\n"
        "ollama create pushback-friction -f ollama/Modelfile && ollama run pushback-friction\n```",
    ]
    return "\n\n".join(parts)


def build_card(model_dir: str | Path, *, kind: CardKind, repo_id: str, dataset_repo: str | None = None,
               evaluation: EvalEntries | None = None, adapter_repo: str | None = None,
               merged_repo: str | None = None) -> str:
    """The README.md text (YAML front matter + body) for an adapter or merged-model repo."""
    from huggingface_hub import ModelCard, ModelCardData

    run = RunInfo.read(model_dir)
    evaluation = evaluation or EvalEntries()
    base = run.base_model
    on_hub = is_hub_id(base)
    tags = ["push-back-ai", "friction", "reasoning", "think", run.recipe.get("method") or "sft", "trl", "qlora"]
    tags += ["lora", "peft"] if kind == "adapter" else ["merged-lora"]
    extra: dict[str, Any] = {}
    if on_hub:
        extra["base_model_relation"] = "adapter" if kind == "adapter" else "finetune"
    data = ModelCardData(
        library_name="peft" if kind == "adapter" else "transformers",
        base_model=base if on_hub else None,
        datasets=[dataset_repo] if dataset_repo else None,
        license=license_for(base),
        language=["en"],
        pipeline_tag="text-generation",
        tags=tags,
        # model_name only names the model-index; without results it would be a stray key
        model_name=repo_id if evaluation.entries else None,
        eval_results=eval_results(evaluation.entries) or None,
        **extra,
    )
    recipe_model = (run.recipe.get("model") or {}).get("base", base)
    base_display = f"[{base}](https://huggingface.co/{base})" if on_hub else \
        f"`{recipe_model}` (built locally by `pushback pocket`; not on the Hub)"
    method = method_display(run.recipe, run.metrics)
    trained_in_full = run.recipe.get("lora", {}).get("modules_to_save") or []
    if trained_in_full:
        method += f"; {', '.join(trained_in_full)} trained in full next to the adapter"
    if kind == "merged":
        method += f"; the adapter merged into the unquantized base and saved in {(run.merge or {}).get('dtype', '?')}"
    kind_display = ("the LoRA adapter (load it on the base model with peft)" if kind == "adapter"
                    else "the merged weights (a plain transformers model)")
    if kind == "merged" and adapter_repo:
        kind_display += f"; adapter alone: [{adapter_repo}](https://huggingface.co/{adapter_repo})"
    records = (run.metrics.get("records") or {})
    data_display = f"[{dataset_repo}](https://huggingface.co/datasets/{dataset_repo})" if dataset_repo else \
        str(run.metrics.get("data_source") or "the Push-Back AI curated set")
    if records:
        data_display += f" ({records.get('train')} training / {records.get('eval')} evaluation records)"
    example = (run.example or "").split("=== inside the loss", 1)[0].replace("=== training text (what the model reads) ===\n", "").strip()
    card = ModelCard.from_template(
        data,
        template_path=str(TEMPLATE),
        title=repo_id.split("/")[-1],
        summary=(f"A friction-tuned LoRA adapter for {base if on_hub else recipe_model}." if kind == "adapter"
                 else f"{base if on_hub else recipe_model} fine-tuned for calibrated friction (LoRA merged)."),
        base_display=base_display,
        kind_display=kind_display,
        data_display=data_display,
        method_display=method,
        hardware=run.metrics.get("hardware", "not recorded"),
        usage=_usage(kind, repo_id, base, merged_repo),
        hyperparameters=[(k, v) for k, v in _flatten("", {k: v for k, v in run.recipe.items()
                                                             if k in ("method", "model", "data", "lora", "run",
                                                                      "training")})
                         if k != "training.output_dir"],  # a local path, meaningless to readers
        run_figures=_run_figures(run.metrics),
        example=example[:4000],
        evaluation=_evaluation_section(evaluation),
    )
    return str(card)
