"""Training recipes: YAML read strictly, every error naming the file and the line.

    method: sft | dpo | orpo
    model:    the base (a model spec), an adapter to start from, quantization, template   (ours)
    data:     where the records come from and how they are split and filtered             (ours)
    lora:     the adapter's shape                                                          (ours)
    run:      choices made for the hardware: batch layout, Liger, batch size, early stop  (ours)
    training: TRL's own config -- `SFTConfig`, `DPOConfig` or `ORPOConfig` fields, as is

The `training:` keys are checked against the method's TRL config class, with the types and choices
TRL's own argument parser (`HfArgumentParser`) derives for each field; our sections are checked the
same way. An unknown key is an error naming the key, the file and the line -- including the stale keys
of older stacks that a lenient parser would silently ignore. Values are range-checked when the recipe
is loaded, so a run never starts on negative epochs or a dropout of 1.
`--set section.key=value` overrides any key (a bare `key=value` works when one section has the key).
"""
from __future__ import annotations

import dataclasses
import reprlib
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
METHODS = ("sft", "dpo", "orpo")
LAYOUTS = ("auto", "padding_free", "group_by_length", "pad_to_longest", "pad_to_max")

# Keys of older transformers / TRL / Unsloth recipes, and what replaced them here.
STALE_KEYS = {
    "torch_dtype": "model.compute_dtype",
    "max_seq_length": "data.max_length",
    "load_in_4bit": "model.quantization: nf4",
    "load_in_8bit": "model.quantization",
    "evaluation_strategy": "training.eval_strategy",
    "warmup_ratio": "training.warmup_steps (a value below 1 is a share of the steps)",
    "group_by_length": "run.batch_layout: group_by_length",
    "dataset_text_field": "(records are rendered through pushback.chat; no text field)",
    "packing": "run.batch_layout",
    "use_flash_attention_2": "model.attn_implementation",
    "lora_r": "lora.r",
    "lora_alpha": "lora.alpha",
    "lora_dropout": "lora.dropout",
    "early_stopping_patience": "run.early_stopping_patience",
    "padding_free": "run.batch_layout: padding_free",
}

# TRL fields that a recipe section other than `training:` decides (one home for each fact).
DECIDED_ELSEWHERE = {
    "padding_free": "run.batch_layout",
    "train_sampling_strategy": "run.batch_layout",
    "pad_to_multiple_of": "run.batch_layout",
    "use_liger_kernel": "run.liger",
    "use_cpu": "run.device",
    "bf16": "model.compute_dtype",
    "fp16": "model.compute_dtype",
    "max_length": "data.max_length (longer records are left out, never cut)",
    "assistant_only_loss": "model.chat_template",
    "completion_only_loss": "model.chat_template",
    "model_init_kwargs": "model",
}

MAX_VALUES = 10_000  # a recipe holds a few dozen values; more means a YAML alias bomb or a mistake
_SHOW = reprlib.Repr()  # bounded: deep or huge values are elided, never expanded
_SHOW.maxstring = _SHOW.maxother = 120
_SHOW.maxlist = _SHOW.maxdict = 8
_SHOW.maxlevel = 3


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file, line and key."""


def shown(value: Any) -> str:
    """A value as quoted in an error: never longer than 200 characters, whatever its size."""
    text = _SHOW.repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass
class ModelSection:
    base: str  # a model spec: Hub id, local directory, or pocket:baseline / pocket:friction
    adapter: str | None = None  # a LoRA adapter (a `pushback train` output) to continue, e.g. SFT before DPO
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
    alpha: float = 32
    dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"
    # Layers trained in full next to the adapter, e.g. [lm_head] when the base must learn to emit new tokens
    # (TRL's fused loss reads lm_head.weight, so a LoRA on lm_head would be silently ignored).
    modules_to_save: list[str] = field(default_factory=list)


@dataclass
class RunSection:
    """What we decide for the hardware unless the recipe says (see training.layout)."""

    device: Literal["auto", "cpu"] = "auto"  # cpu: stay on the CPU even where a GPU is visible
    threads: int | None = None  # CPU: torch threads for the run (small models run faster on one); null: torch's
    batch_layout: Literal["auto", "padding_free", "group_by_length", "pad_to_longest", "pad_to_max"] = "auto"
    liger: Literal["auto", "on", "off"] = "auto"  # auto: on with CUDA when liger-kernel is installed
    auto_batch_size: bool = True  # CUDA: the largest micro-batch that fits, same effective batch
    early_stopping_patience: int | None = None  # evaluations without improvement before stopping


@dataclass
class Recipe:
    model: ModelSection
    method: Literal["sft", "dpo", "orpo"] = "sft"
    data: DataSection = field(default_factory=DataSection)
    lora: LoraSection = field(default_factory=LoraSection)
    run: RunSection = field(default_factory=RunSection)
    training: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the method's TRL config
    name: str = ""
    description: str = ""

    @property
    def output_dir(self) -> str:
        return self.training.get("output_dir") or f"runs/{self.name or 'friction'}-{self.method}-lora"

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "description": self.description, "method": self.method}
        for section in OUR_SECTIONS:
            out[section] = dataclasses.asdict(getattr(self, section))
        out["training"] = dict(self.training)
        return out

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


OUR_SECTIONS: dict[str, type] = {"model": ModelSection, "data": DataSection, "lora": LoraSection,
                                 "run": RunSection}
_TOP_SCALARS = ("name", "description", "method")


def config_class(method: str) -> type:
    """TRL's config class for a method (ORPO lives in trl.experimental in TRL 1.x)."""
    if method == "sft":
        from trl import SFTConfig

        return SFTConfig
    if method == "dpo":
        from trl import DPOConfig

        return DPOConfig
    import os
    import warnings

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from trl.experimental.orpo import ORPOConfig
    return ORPOConfig


# --- checking a value with the type TRL's argument parser gives its field --------------------------


@cache
def _actions(cls: type) -> dict[str, Any]:
    """`HfArgumentParser`'s argparse action for each field of a dataclass (its type, choices, nargs)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(cls)
    return {f.name: parser._option_string_actions[f"--{f.name}"] for f in dataclasses.fields(cls) if f.init}


@cache
def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 -- a forward reference we cannot resolve: fall back to the parser alone
        return {}


def _allows(hint: Any, kind: type) -> bool:
    return hint is kind or kind in typing.get_args(hint)


def _scalar(action: Any, value: Any) -> Any:
    """`value` as the parser's type for the field, or TypeError. YAML already typed most values; strings
    go through the parser's own conversion (PyYAML reads `2e-4` as a string)."""
    from transformers.hf_argparser import string_to_bool

    if isinstance(value, (list, dict)):
        raise TypeError
    kind = action.type
    if kind is string_to_bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return string_to_bool(value)
            except Exception:  # noqa: BLE001 -- argparse's own error type
                raise TypeError from None
        raise TypeError
    if action.choices is not None:
        if isinstance(value, bool):  # YAML 1.1 reads `no` / `off` as false: the author meant the word
            words = ("yes", "true", "on") if value else ("no", "false", "off")
            value = next((w for w in words if w in [str(c) for c in action.choices]), value)
        converted = kind(str(value)) if kind else value
        if converted not in action.choices:
            raise TypeError
        return converted
    if isinstance(value, bool) and kind is not str:
        raise TypeError  # `true` is not a number
    if kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise TypeError
    if kind is float:
        if isinstance(value, (int, float)):
            return value
        try:
            return float(value)
        except ValueError:
            raise TypeError from None
    if kind is str or kind is None:
        if isinstance(value, str):
            return value
        raise TypeError
    return value


def check_value(cls: type, key: str, value: Any) -> Any:
    """The value for field `key` of dataclass `cls`, typed; TypeError when it cannot be one."""
    action, hint = _actions(cls)[key], _hints(cls).get(key)
    if value is None:
        optional = hint is None or _allows(hint, type(None)) or action.default is None
        if optional:
            return None
        raise TypeError
    if isinstance(value, dict):
        if hint is not None and (_allows(hint, dict) or typing.get_origin(hint) is dict
                                 or any(typing.get_origin(a) is dict for a in typing.get_args(hint))):
            return value
        raise TypeError
    if action.nargs in ("+", "*"):
        if isinstance(value, list):
            return [_scalar(action, v) for v in value]
        if hint is not None and _allows(hint, str) and isinstance(value, str):
            return value  # e.g. target_modules: all-linear
        raise TypeError
    return _scalar(action, value)


def _expected(cls: type, key: str) -> str:
    action, hint = _actions(cls)[key], _hints(cls).get(key)
    from transformers.hf_argparser import string_to_bool

    if action.choices is not None:
        what = " | ".join(repr(c) for c in action.choices)
    else:
        what = {string_to_bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
            action.type, "a value")
    if action.nargs in ("+", "*"):
        what = f"a list of {what}" + (" (or one string)" if hint is not None and _allows(hint, str) else "")
    if hint is not None and _allows(hint, type(None)):
        what += " or null"
    return what


# --- ranges (checked when the recipe is loaded) ---------------------------------------------------


def _positive(v: Any) -> bool:
    return v > 0


# (key, test, what it must be); a value of None (where the field allows it) means "not set" and passes.
RANGES = (
    ("data.test_size", lambda v: 0 < v < 1, "between 0 and 1"),
    ("data.max_length", _positive, "positive"),
    ("data.limit", _positive, "positive"),
    ("data.eval_limit", lambda v: v >= 0, "zero or more"),
    ("lora.r", _positive, "positive"),
    ("lora.alpha", _positive, "positive"),
    ("lora.dropout", lambda v: 0 <= v < 1, "at least 0 and below 1"),
    ("run.early_stopping_patience", _positive, "a positive number of evaluations"),
    ("run.threads", _positive, "positive"),
    ("training.num_train_epochs", _positive, "positive"),
    ("training.max_steps", lambda v: v == -1 or v > 0, "positive, or -1 to train for num_train_epochs"),
    ("training.learning_rate", _positive, "positive"),
    ("training.warmup_steps", lambda v: v >= 0, "zero or more (below 1: a share of the steps)"),
    ("training.weight_decay", lambda v: v >= 0, "zero or more"),
    ("training.max_grad_norm", lambda v: v >= 0, "zero or more"),
    ("training.per_device_train_batch_size", _positive, "positive"),
    ("training.per_device_eval_batch_size", _positive, "positive"),
    ("training.gradient_accumulation_steps", _positive, "positive"),
    ("training.logging_steps", _positive, "positive"),
    ("training.eval_steps", _positive, "positive"),
    ("training.save_steps", _positive, "positive"),
    ("training.save_total_limit", _positive, "positive"),
    ("training.beta", _positive, "positive"),
)


def _check_ranges(recipe: Recipe, where: str, lines: dict[str, int]) -> None:
    for key, ok, meaning in RANGES:
        section, name = key.split(".")
        if section == "training":
            if name not in recipe.training:
                continue
            value = recipe.training[name]
        else:
            value = getattr(getattr(recipe, section), name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not ok(value):  # None: not set
            at = f"{where}:{lines[key]}" if key in lines else where
            raise RecipeError(f"{at}: {key} must be {meaning}, got {shown(value)}")
    if recipe.run.early_stopping_patience and not recipe.training.get("load_best_model_at_end"):
        at = f"{where}:{lines['run.early_stopping_patience']}" if "run.early_stopping_patience" in lines else where
        raise RecipeError(f"{at}: run.early_stopping_patience needs training.load_best_model_at_end: true (and an "
                          "eval_strategy), or set it to null")
    if recipe.method != "sft" and recipe.run.batch_layout == "padding_free":
        at = f"{where}:{lines['run.batch_layout']}" if "run.batch_layout" in lines else where
        raise RecipeError(f"{at}: run.batch_layout padding_free is for SFT; TRL's {recipe.method.upper()} trainer pads "
                          "its pairs (use auto, group_by_length or pad_to_longest)")


# --- YAML with line numbers ---------------------------------------------------------------------


def _expanded_size(node: Any, seen: dict[int, int], active: set[int]) -> int:
    """How many values the document holds once every alias is expanded, without expanding it."""
    import yaml

    key = id(node)
    if key in seen:
        return seen[key]
    if key in active:
        raise RecipeError("a YAML alias refers to itself")
    active.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, seen, active) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, seen, active) + _expanded_size(v, seen, active) for k, v in node.value)
    active.discard(key)
    seen[key] = size
    return size


def _load_yaml_with_lines(text: str, where: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The document and the line of every `section.key` (and top-level key) in it."""
    import yaml

    try:
        root = yaml.compose(text)
        if root is not None:
            try:
                size = _expanded_size(root, {}, set())
            except RecipeError as e:
                raise RecipeError(f"{where}: {e}") from None
            if size > MAX_VALUES:
                raise RecipeError(f"{where}: the document expands to more than {MAX_VALUES:,} values "
                                  "(YAML aliases?); a recipe holds a few dozen")
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RecipeError(f"{where}: not valid YAML ({shown(str(e))})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: a recipe is a mapping of sections (method, model, data, lora, run, training)")
    lines: dict[str, int] = {}
    for key_node, value_node in root.value:
        lines[str(key_node.value)] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.MappingNode):
            for sub_key, _ in value_node.value:
                lines[f"{key_node.value}.{sub_key.value}"] = sub_key.start_mark.line + 1
    return data, lines


# --- building the recipe ----------------------------------------------------------------------------


def _unknown(at: str, qualified: str, known: list[str], name: str) -> RecipeError:
    hint = f" (stale key; use {STALE_KEYS[name]})" if name in STALE_KEYS else ""
    listed = ", ".join(known) if len(known) <= 12 else f"{len(known)} keys; see the class's documentation"
    return RecipeError(f"{at}: unknown key {qualified}{hint}; known: {listed}")


def _build_section(cls: type, values: dict[str, Any], where: str, lines: dict[str, int], section: str) -> Any:
    known = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        at = f"{where}:{lines[f'{section}.{key}']}" if f"{section}.{key}" in lines else where
        if key not in known:
            raise _unknown(at, f"{section}.{key}", sorted(known), str(key))
        try:
            kwargs[key] = check_value(cls, key, value)
        except TypeError:
            raise RecipeError(f"{at}: {section}.{key} must be {_expected(cls, key)}, got {shown(value)}") from None
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in kwargs]
        raise RecipeError(f"{where}: {section} needs {', '.join(f'{section}.{m}' for m in missing)}") from e


def _training_section(method: str, values: dict[str, Any], where: str, lines: dict[str, int]) -> dict[str, Any]:
    """The `training:` keys checked against the method's TRL config class (types and choices as its parser)."""
    cls = config_class(method)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    checked = {}
    for key, value in values.items():
        at = f"{where}:{lines[f'training.{key}']}" if f"training.{key}" in lines else where
        if key in DECIDED_ELSEWHERE:
            raise RecipeError(f"{at}: training.{key} is decided by {DECIDED_ELSEWHERE[key]}; set it there")
        if key not in known:
            hint = f" (stale key; use {STALE_KEYS[key]})" if key in STALE_KEYS else ""
            raise RecipeError(f"{at}: unknown key training.{key}{hint}: not a field of TRL's {cls.__name__} "
                              f"(method: {method})")
        try:
            checked[key] = check_value(cls, key, value)
        except TypeError:
            raise RecipeError(f"{at}: training.{key} must be {_expected(cls, key)}, got {shown(value)}") from None
    return checked


def parse_recipe(data: dict[str, Any], where: str = "<recipe>", lines: dict[str, int] | None = None) -> Recipe:
    lines = lines or {}
    built: dict[str, Any] = {}
    for key, value in data.items():
        at = f"{where}:{lines[key]}" if key in lines else where
        if key == "method":
            if value not in METHODS:
                raise RecipeError(f"{at}: method must be one of {', '.join(METHODS)}, got {shown(value)}")
            built[key] = value
        elif key in _TOP_SCALARS:
            if not isinstance(value, str):
                raise RecipeError(f"{at}: {key} must be a string, got {shown(value)}")
            built[key] = value
        elif key in OUR_SECTIONS or key == "training":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise RecipeError(f"{at}: {key} must be a mapping of keys, got {shown(value)}")
            if key != "training":
                built[key] = _build_section(OUR_SECTIONS[key], value, where, lines, key)
        else:
            hint = f" (stale key; use {STALE_KEYS[key]})" if key in STALE_KEYS else ""
            raise RecipeError(f"{at}: unknown top-level key {shown(key)}{hint}; known: "
                              f"{', '.join([*_TOP_SCALARS, *OUR_SECTIONS, 'training'])}")
    if "model" not in built:
        raise RecipeError(f"{where}: the recipe needs a model section with model.base")
    built["training"] = _training_section(built.get("method", "sft"), data.get("training") or {}, where, lines)
    recipe = Recipe(**built)
    _check_ranges(recipe, where, lines)
    return recipe


def _owner(key: str) -> str:
    """The section of a bare `--set key=value`."""
    owners = [s for s, cls in OUR_SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
    if not owners and key not in STALE_KEYS and key not in _TOP_SCALARS:
        owners = ["training"]  # every other key is TRL's; the training section checks it
    if len(owners) != 1:
        where = f"it is in {', '.join(owners)}" if owners else "no section has it"
        hint = f" (stale key; use {STALE_KEYS[key]})" if key in STALE_KEYS else ""
        raise RecipeError(f"--set {key}: name the section as section.key ({where}){hint}")
    return owners[0]


def _apply_override(data: dict[str, Any], assignment: str) -> None:
    import yaml

    key, eq, raw = assignment.partition("=")
    key = key.strip()
    if not eq or not key:
        raise RecipeError(f"--set {shown(assignment)}: expected KEY=VALUE, e.g. training.learning_rate=1e-4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        problem = str(getattr(e, "problem", "") or "").strip() or type(e).__name__
        raise RecipeError(f"--set {key}={raw[:120]}: not a valid value ({problem}); quote text, "
                          f"e.g. --set '{key}=\"...\"'") from None
    if key in _TOP_SCALARS:
        data[key] = value
        return
    section, name = key.split(".", 1) if "." in key else (_owner(key), key)
    if section not in OUR_SECTIONS and section != "training":
        raise RecipeError(f"--set {key}: unknown section {shown(section)}; known: "
                          f"{', '.join([*OUR_SECTIONS, 'training'])}")
    if not isinstance(data.get(section), dict):
        data[section] = {}
    data[section][name] = value


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe file (a bare name like `pocket` looks in training/recipes/), apply `--set`s, check it."""
    where = Path(path)
    if not where.exists() and (RECIPES_DIR / f"{path}.yaml").exists():
        where = RECIPES_DIR / f"{path}.yaml"
    if not where.is_file():
        known = ", ".join(p.stem for p in sorted(RECIPES_DIR.glob("*.yaml")))
        raise RecipeError(f"{path}: no such recipe file (built-in recipes: {known})")
    try:
        text = where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"{where}: cannot read ({type(e).__name__}: {shown(str(e))})") from None
    data, lines = _load_yaml_with_lines(text, str(where))
    parse_recipe(data, str(where), lines)  # report file errors with their lines before any override
    for assignment in overrides:
        _apply_override(data, assignment)
    return parse_recipe(data, f"{where} (with --set)" if overrides else str(where), lines)
