"""Recipes parse strictly: every built-in one loads, its `training:` keys are fields of TRL's own config
class for its method, and stale, unknown, mistyped or out-of-range values are errors that say where."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pushback.cli import main as cli
from training.recipe import RECIPES_DIR, RecipeError, config_class, load_recipe

BUILT_IN = ["pocket", "qwen2.5-0.5b-instruct", "deepseek-r1-distill-qwen-7b", "pocket-dpo", "pocket-orpo",
            "qwen2.5-0.5b-dpo", "deepseek-r1-distill-qwen-7b-dpo"]
MINIMAL = "model:\n  base: Qwen/Qwen2.5-0.5B-Instruct\ntraining:\n  learning_rate: 2e-4\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_every_built_in_recipe_is_here_and_parses() -> None:
    assert sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")) == sorted(BUILT_IN)


@pytest.mark.parametrize("name", BUILT_IN)
def test_builtin_recipes_training_section_is_trl_config(name: str) -> None:
    recipe = load_recipe(RECIPES_DIR / f"{name}.yaml")
    assert recipe.name == name
    assert recipe.model.quantization == "nf4" and recipe.lora.target_modules == "all-linear"
    fields = {f.name for f in dataclasses.fields(config_class(recipe.method))}
    assert recipe.training and set(recipe.training) <= fields  # every key is a field of TRL's own class
    config = config_class(recipe.method)(**{**recipe.training, "output_dir": "unused", "use_cpu": True,
                                            "bf16": False})  # and TRL accepts them together
    assert config.learning_rate == recipe.training["learning_rate"]
    assert recipe.run.early_stopping_patience and recipe.training["load_best_model_at_end"]
    if recipe.method != "sft":
        assert recipe.training["beta"] > 0


def test_methods_templates_and_starting_adapters() -> None:
    assert load_recipe("deepseek-r1-distill-qwen-7b").model.chat_template == "native"
    assert load_recipe("deepseek-r1-distill-qwen-7b-dpo").model.chat_template == "native"
    assert {n: load_recipe(n).method for n in ("pocket-dpo", "pocket-orpo")} == {"pocket-dpo": "dpo",
                                                                               "pocket-orpo": "orpo"}
    # The GPU DPO recipes continue the SFT recipe's adapter, where that recipe writes it.
    for dpo, sft in (("qwen2.5-0.5b-dpo", "qwen2.5-0.5b-instruct"),
                     ("deepseek-r1-distill-qwen-7b-dpo", "deepseek-r1-distill-qwen-7b")):
        assert load_recipe(dpo).model.adapter == load_recipe(sft).output_dir
    # Small models train on the CPU even where a GPU is visible (measured faster there).
    assert all(load_recipe(n).run.device == "cpu" for n in ("pocket", "pocket-dpo", "pocket-orpo"))


@pytest.mark.parametrize("section, key, hint", [
    ("model", "torch_dtype", "model.compute_dtype"),
    ("data", "max_seq_length", "data.max_length"),
    ("training", "warmup_ratio", "training.warmup_steps"),
    ("training", "evaluation_strategy", "training.eval_strategy"),
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


def test_unknown_training_keys_name_trl_class_and_method(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"recipe.yaml:5: unknown key training.lerning_rate: not a field of "
                                          r"TRL's SFTConfig \(method: sft\)"):
        load_recipe(write(tmp_path, MINIMAL + "  lerning_rate: 1\n"))
    with pytest.raises(RecipeError, match=r"training.beta: not a field of TRL's SFTConfig"):
        load_recipe(write(tmp_path, MINIMAL + "  beta: 0.1\n"))  # a DPO key in an SFT recipe
    assert load_recipe(write(tmp_path, "method: dpo\n" + MINIMAL + "  beta: 0.2\n")).training["beta"] == 0.2
    # A TRL field that another section decides says where to set it.
    with pytest.raises(RecipeError, match=r"recipe.yaml:5: training.padding_free is decided by run.batch_layout"):
        load_recipe(write(tmp_path, MINIMAL + "  padding_free: true\n"))


def test_unknown_sections_and_wrong_types_are_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"recipe.yaml:3: unknown top-level key 'trainer'"):
        load_recipe(write(tmp_path, MINIMAL.replace("training:\n", "trainer:\n", 1)))
    with pytest.raises(RecipeError, match=r"recipe.yaml:6: lora.r must be an integer, got 'sixteen'"):
        load_recipe(write(tmp_path, MINIMAL + "lora:\n  r: sixteen\n"))
    with pytest.raises(RecipeError, match=r"model.quantization must be 'nf4' \| 'none'"):
        load_recipe(write(tmp_path, MINIMAL.replace("Instruct\n", "Instruct\n  quantization: int3\n", 1)))
    with pytest.raises(RecipeError, match=r"recipe.yaml:4: training.learning_rate must be a number, got 'fast'"):
        load_recipe(write(tmp_path, MINIMAL.replace("2e-4", "fast")))
    with pytest.raises(RecipeError, match=r"training.lr_scheduler_type must be 'linear' \| 'cosine'"):
        load_recipe(write(tmp_path, MINIMAL + "  lr_scheduler_type: wobbly\n"))
    with pytest.raises(RecipeError, match=r"method must be one of sft, dpo, orpo"):
        load_recipe(write(tmp_path, "method: ppo\n" + MINIMAL))
    with pytest.raises(RecipeError, match=r"model needs model.base"):
        load_recipe(write(tmp_path, "model:\n  quantization: nf4\n"))
    # YAML 1.1 reads `no` as false; the choice it meant is kept.
    assert load_recipe(write(tmp_path, MINIMAL + "  eval_strategy: no\n")).training["eval_strategy"] == "no"


@pytest.mark.parametrize("line, key", [
    ("training:\n  num_train_epochs: -1\n", "training.num_train_epochs"),
    ("training:\n  max_steps: -5\n", "training.max_steps"),
    ("training:\n  max_steps: 0\n", "training.max_steps"),
    ("training:\n  per_device_eval_batch_size: 0\n", "training.per_device_eval_batch_size"),
    ("training:\n  warmup_steps: -0.1\n", "training.warmup_steps"),
    ("training:\n  learning_rate: -1.0e-4\n", "training.learning_rate"),
    ("lora:\n  alpha: -16\n", "lora.alpha"),
    ("lora:\n  dropout: -0.1\n", "lora.dropout"),
    ("lora:\n  dropout: 1.0\n", "lora.dropout"),
    ("run:\n  early_stopping_patience: 0\n", "run.early_stopping_patience"),
])
def test_out_of_range_values_are_refused_when_loaded(tmp_path: Path, line: str, key: str) -> None:
    """Negative epochs, steps, alpha, dropout or batch sizes once trained 0 steps and left an output that
    looked complete; they are refused at load time, with the file and the line."""
    path = write(tmp_path, "model:\n  base: Qwen/Qwen2.5-0.5B-Instruct\n" + line)
    with pytest.raises(RecipeError, match=rf"recipe.yaml:4: {key} must be"):
        load_recipe(path)


def test_early_stopping_needs_the_best_model_kept(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"run.early_stopping_patience needs training.load_best_model_at_end"):
        load_recipe(write(tmp_path, MINIMAL + "run:\n  early_stopping_patience: 3\n"))


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    """Nine levels of nine aliases expand to 387M strings; formatting that value once exhausted memory."""
    levels = ['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    text = "\n".join(levels) + "\nmodel:\n  base: Qwen/Qwen2.5-0.5B-Instruct\nlora:\n  r: *a9\n"
    with pytest.raises(RecipeError, match=r"expands to more than 10,000 values") as error:
        load_recipe(write(tmp_path, text))
    assert len(str(error.value)) < 300


def test_a_huge_value_is_cut_when_quoted(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + f"lora:\n  r: {'x' * 100_000}\n")
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    assert "lora.r must be an integer" in str(error.value) and len(str(error.value)) < 400


def test_overrides_are_typed_and_checked(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    recipe = load_recipe(path, ["training.max_steps=30", "learning_rate=1e-3", "data.source=[a.jsonl, b.jsonl]",
                                "r=8", "method=orpo"])
    assert recipe.training["max_steps"] == 30 and recipe.lora.r == 8 and recipe.method == "orpo"
    assert recipe.training["learning_rate"] == pytest.approx(1e-3)  # a bare key goes to TRL's section
    assert recipe.data.source == ["a.jsonl", "b.jsonl"]
    with pytest.raises(RecipeError, match="training.max_steps must be an integer"):
        load_recipe(path, ["training.max_steps=lots"])
    with pytest.raises(RecipeError, match=r"--set torch_dtype.*stale key; use model.compute_dtype"):
        load_recipe(path, ["torch_dtype=bf16"])
    with pytest.raises(RecipeError, match="unknown key training.warmup: not a field of TRL's SFTConfig"):
        load_recipe(path, ["warmup=3"])
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        load_recipe(path, ["training.max_steps"])
    with pytest.raises(RecipeError, match=r"--set training.learning_rate=\[1: not a valid value"):
        load_recipe(path, ["training.learning_rate=[1"])


@pytest.mark.parametrize("assignment, says", [
    ("training.learning_rate=[1", "not a valid value"),
    ("model.base=@9bit", "not a valid value"),
    ("training.num_train_epochs=-2", "training.num_train_epochs must be positive"),
])
def test_bad_set_is_one_line_and_exit_1(assignment: str, says: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "never"
    assert cli(["train", "--recipe", "pocket", "--output", str(out), "--set", assignment]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and says in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()  # refused before anything was written
