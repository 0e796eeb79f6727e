"""Recipes parse strictly: every built-in one loads, and stale or unknown keys are errors that say where."""
from __future__ import annotations

from pathlib import Path

import pytest

from training.recipe import RECIPES_DIR, RecipeError, load_recipe


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


MINIMAL = "model:\n  base: Qwen/Qwen2.5-0.5B-Instruct\ntraining:\n  learning_rate: 2e-4\n"


@pytest.mark.parametrize("name", ["pocket", "qwen2.5-0.5b-instruct", "deepseek-r1-distill-qwen-7b"])
def test_builtin_recipes_parse(name: str) -> None:
    recipe = load_recipe(RECIPES_DIR / f"{name}.yaml")
    assert recipe.name == name
    assert recipe.model.quantization == "nf4"
    assert recipe.lora.target_modules == "all-linear"
    assert recipe.training.padding_free is True
    assert recipe.training.lr_scheduler_type == "cosine"
    assert recipe.training.early_stopping_patience and recipe.training.eval_steps and recipe.training.save_steps


def test_the_7b_recipe_uses_its_native_template() -> None:
    assert load_recipe("deepseek-r1-distill-qwen-7b").model.chat_template == "native"


@pytest.mark.parametrize("section, key, hint", [
    ("model", "torch_dtype", "model.compute_dtype"),
    ("data", "max_seq_length", "data.max_length"),
    ("training", "gradient_checkpointing", "training.activation_checkpointing"),
])
def test_stale_keys_are_errors_naming_key_file_and_line(tmp_path: Path, section: str, key: str, hint: str) -> None:
    text = f"model:\n  base: Qwen/Qwen2.5-0.5B-Instruct\n{section}:\n  {key}: 1\n" if section != "model" else \
        f"model:\n  base: Qwen/Qwen2.5-0.5B-Instruct\n  {key}: 1\n"
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    message = str(error.value)
    line = 3 if section == "model" else 4
    assert f"{path}:{line}" in message
    assert f"{section}.{key}" in message and hint in message


def test_unknown_section_and_wrong_types_are_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"recipe.yaml:3: unknown top-level key 'trainer'"):
        load_recipe(write(tmp_path, MINIMAL.replace("training:\n", "trainer:\n", 1) + "\n"))
    with pytest.raises(RecipeError, match=r"lora.r must be an integer, got 'sixteen'"):
        load_recipe(write(tmp_path, MINIMAL + "lora:\n  r: sixteen\n"))
    with pytest.raises(RecipeError, match=r"model.quantization must be 'nf4' \| 'none'"):
        load_recipe(write(tmp_path, MINIMAL.replace("Instruct\n", "Instruct\n  quantization: int3\n", 1)))
    with pytest.raises(RecipeError, match=r"recipe.yaml:5: training.warmup_ratio must be at least 0 and below 1"):
        load_recipe(write(tmp_path, MINIMAL + "  warmup_ratio: 10\n"))
    with pytest.raises(RecipeError, match=r"model needs model.base"):
        load_recipe(write(tmp_path, "model:\n  quantization: nf4\n"))


def test_overrides_are_typed_and_checked(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    recipe = load_recipe(path, ["training.max_steps=30", "learning_rate=1e-3", "data.source=[a.jsonl, b.jsonl]"])
    assert recipe.training.max_steps == 30
    assert recipe.training.learning_rate == pytest.approx(1e-3)  # a bare key that only one section has
    assert recipe.data.source == ["a.jsonl", "b.jsonl"]
    assert recipe.training.learning_rate != load_recipe(path).training.learning_rate
    with pytest.raises(RecipeError, match="training.max_steps must be an integer"):
        load_recipe(path, ["training.max_steps=lots"])
    with pytest.raises(RecipeError, match=r"--set torch_dtype.*stale key; use model.compute_dtype"):
        load_recipe(path, ["torch_dtype=bf16"])
    with pytest.raises(RecipeError, match="no section has it"):
        load_recipe(path, ["warmup=3"])
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        load_recipe(path, ["training.max_steps"])
