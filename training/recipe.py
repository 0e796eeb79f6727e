"""Training recipes: YAML parsed strictly into dataclasses.

An unknown key is an error that names the key, the file and the line -- including the stale keys of
older stacks (`torch_dtype`, `max_seq_length`, ...) that a lenient parser would silently ignore.
`--set section.key=value` overrides any field (a bare `key=value` works when the key is unambiguous).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"

# Keys of older transformers / TRL / Unsloth recipes, and what replaced them here.
STALE_KEYS = {
    "torch_dtype": "model.compute_dtype",
    "max_seq_length": "data.max_length",
    "load_in_4bit": "model.quantization: nf4",
    "load_in_8bit": "model.quantization",
    "evaluation_strategy": "training.eval_steps",
    "dataset_text_field": "(records are rendered through pushback.chat; no text field)",
    "packing": "training.padding_free",
    "use_flash_attention_2": "model.attn_implementation",
    "lora_r": "lora.r",
    "lora_alpha": "lora.alpha",
    "lora_dropout": "lora.dropout",
    "gradient_checkpointing": "training.activation_checkpointing",
}


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file, line and key."""


@dataclass
class ModelSection:
    base: str  # a model spec: Hub id, local directory, or pocket:baseline
    quantization: Literal["nf4", "none"] = "nf4"
    compute_dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    chat_template: Literal["pushback", "native"] = "pushback"
    attn_implementation: str = "sdpa"


@dataclass
class DataSection:
    # JSONL files or globs, a dataset directory from `pushback dataset build`, or a Hub dataset id.
    source: list[str] = field(default_factory=lambda: ["data/curated/*.jsonl"])
    test_size: float = 0.1  # the same split as `pushback dataset build` and evaluation
    split_seed: int = 0
    system: str = "plain"  # system prompt name (plain, friction) or text
    max_length: int = 1024  # longer rows are dropped, not truncated (a cut think block never closes)
    limit: int | None = None  # use only the first N training records (smoke runs)
    eval_limit: int | None = None  # evaluate on only the first N held-out records


@dataclass
class LoraSection:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"
    # Layers trained in full next to the adapter, e.g. [lm_head] when the base must learn to emit new tokens
    # (TRL's fused loss reads lm_head.weight, so a LoRA on lm_head would be silently ignored).
    modules_to_save: list[str] = field(default_factory=list)


@dataclass
class TrainingSection:
    output_dir: str = "runs/friction-lora"
    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-4
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    logging_steps: int = 10
    eval_steps: int | None = 50
    save_steps: int | None = 50
    save_total_limit: int | None = 2
    early_stopping_patience: int | None = 3
    activation_checkpointing: bool = False  # trade compute for memory (large models on small GPUs)
    padding_free: bool = True
    optim: str = "adamw_torch"
    seed: int = 0


@dataclass
class Recipe:
    model: ModelSection
    data: DataSection = field(default_factory=DataSection)
    lora: LoraSection = field(default_factory=LoraSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    name: str = ""
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


SECTIONS: dict[str, type] = {"model": ModelSection, "data": DataSection, "lora": LoraSection,
                             "training": TrainingSection}
_TOP_SCALARS = ("name", "description")


# --- checking values against the dataclass field types -----------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {type(None): "null", bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, str(tp))


def _coerce(value: Any, tp: Any) -> Any:
    """`value` as type `tp`, or raise TypeError. Ints and numeric strings pass as floats; nothing else converts."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise TypeError
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option)
            except TypeError:
                continue
        raise TypeError
    if origin is list:
        if not isinstance(value, list):
            raise TypeError
        return [_coerce(v, typing.get_args(tp)[0]) for v in value]
    if tp is type(None):
        if value is None:
            return None
        raise TypeError
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # PyYAML (YAML 1.1) reads `2e-4` as a string; the author meant a number
            return float(value)
        except ValueError:
            raise TypeError from None
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and type(value) is tp:
        return value
    raise TypeError


def _build_section(cls: type, values: dict[str, Any], where: str, lines: dict[str, int], section: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        at = f"{where}:{lines[key]}" if key in lines else where
        if key not in known:
            hint = f" (stale key; use {STALE_KEYS[key]})" if key in STALE_KEYS else ""
            raise RecipeError(f"{at}: unknown key {section}.{key}{hint}; known keys in {section}: "
                              f"{', '.join(sorted(known))}")
        try:
            kwargs[key] = _coerce(value, hints[key])
        except TypeError:
            raise RecipeError(f"{at}: {section}.{key} must be {_type_name(hints[key])}, got {value!r}") from None
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in kwargs]
        raise RecipeError(f"{where}: {section} needs {', '.join(f'{section}.{m}' for m in missing)}") from e


# --- YAML with line numbers ---------------------------------------------------------------------


def _load_yaml_with_lines(text: str, where: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The document and the line of every `section.key` (and top-level key) in it."""
    import yaml

    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        raise RecipeError(f"{where}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: a recipe is a mapping of sections (model, data, lora, training)")
    lines: dict[str, int] = {}
    for key_node, value_node in root.value:
        lines[key_node.value] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.MappingNode):
            for sub_key, _ in value_node.value:
                lines[f"{key_node.value}.{sub_key.value}"] = sub_key.start_mark.line + 1
    return data, lines


def parse_recipe(data: dict[str, Any], where: str = "<recipe>", lines: dict[str, int] | None = None) -> Recipe:
    lines = lines or {}
    built: dict[str, Any] = {}
    for key, value in data.items():
        at = f"{where}:{lines[key]}" if key in lines else where
        if key in _TOP_SCALARS:
            if not isinstance(value, str):
                raise RecipeError(f"{at}: {key} must be a string")
            built[key] = value
        elif key in SECTIONS:
            if not isinstance(value, dict):
                raise RecipeError(f"{at}: {key} must be a mapping of keys")
            section_lines = {k.split(".", 1)[1]: n for k, n in lines.items() if k.startswith(f"{key}.")}
            built[key] = _build_section(SECTIONS[key], value, where, section_lines, key)
        else:
            hint = f" (stale key; use {STALE_KEYS[key]})" if key in STALE_KEYS else ""
            raise RecipeError(f"{at}: unknown top-level key {key!r}{hint}; known: "
                              f"{', '.join([*SECTIONS, *_TOP_SCALARS])}")
    if "model" not in built:
        raise RecipeError(f"{where}: the recipe needs a model section with model.base")
    recipe = Recipe(**built)
    _check_ranges(recipe, where, lines)
    return recipe


# (section.key, test, what it must be)
_RANGES = (
    ("data.test_size", lambda v: 0 < v < 1, "between 0 and 1"),
    ("data.max_length", lambda v: v > 0, "positive"),
    ("lora.r", lambda v: v > 0, "positive"),
    ("training.warmup_ratio", lambda v: 0 <= v < 1, "at least 0 and below 1 (a share of the steps)"),
    ("training.learning_rate", lambda v: v > 0, "positive"),
    ("training.per_device_train_batch_size", lambda v: v > 0, "positive"),
    ("training.gradient_accumulation_steps", lambda v: v > 0, "positive"),
)


def _check_ranges(recipe: Recipe, where: str, lines: dict[str, int]) -> None:
    for key, ok, meaning in _RANGES:
        section, name = key.split(".")
        value = getattr(getattr(recipe, section), name)
        if not ok(value):
            at = f"{where}:{lines[key]}" if key in lines else where
            raise RecipeError(f"{at}: {key} must be {meaning}, got {value!r}")


def _apply_override(data: dict[str, Any], assignment: str) -> None:
    import yaml

    key, eq, raw = assignment.partition("=")
    key = key.strip()
    if not eq or not key:
        raise RecipeError(f"--set {assignment!r}: expected KEY=VALUE, e.g. training.learning_rate=1e-4")
    if "." in key:
        section, name = key.split(".", 1)
    else:
        owners = [s for s, cls in SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
        if len(owners) != 1:
            where = f"it is in {', '.join(owners)}" if owners else "no section has it"
            hint = f" (stale key; use {STALE_KEYS[key]})" if key in STALE_KEYS else ""
            raise RecipeError(f"--set {key}: name the section as section.key ({where}){hint}")
        section, name = owners[0], key
    if section not in SECTIONS:
        raise RecipeError(f"--set {key}: unknown section {section!r}; known: {', '.join(SECTIONS)}")
    value = yaml.safe_load(raw) if raw.strip() else ""
    data.setdefault(section, {})[name] = value


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe file (a bare name like `pocket` looks in training/recipes/), apply `--set`s, check it."""
    where = Path(path)
    if not where.exists() and (RECIPES_DIR / f"{path}.yaml").exists():
        where = RECIPES_DIR / f"{path}.yaml"
    if not where.exists():
        known = ", ".join(p.stem for p in sorted(RECIPES_DIR.glob("*.yaml")))
        raise RecipeError(f"{path}: no such recipe file (built-in recipes: {known})")
    data, lines = _load_yaml_with_lines(where.read_text(encoding="utf-8"), str(where))
    parse_recipe(data, str(where), lines)  # report file errors with their lines before any override
    for assignment in overrides:
        _apply_override(data, assignment)
    return parse_recipe(data, f"{where} (with --set)" if overrides else str(where), lines)
