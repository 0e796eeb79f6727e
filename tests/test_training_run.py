"""`pushback train` / `merge` / `export ollama` end to end on a tiny Qwen2 built on disk: real 4-bit NF4
loading, real LoRA, real TRL SFTTrainer steps on CPU. One training run (30 steps, then resumed to 36)
is shared by the tests in this module."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pushback.chat import CHAT_TEMPLATE, assistant_text, render_training_text
from pushback.cli import main as cli
from pushback.paths import curated_files
from pushback.records import load_records
from pushback.thinking import CLOSE_TAG, OPEN_TAG

STEPS, RESUMED_STEPS = 30, 36

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def records():
    return load_records(curated_files())[:40]


# The shipped CPU recipe, cut down: QLoRA on the pocket baseline (a base that already knows the words;
# LoRA on a randomly initialised model barely moves its loss, its frozen norms and embeddings cap it).
SETS = ["data.limit=24", "data.eval_limit=8", "training.per_device_train_batch_size=2",
        "training.gradient_accumulation_steps=1", "training.learning_rate=5e-3", "training.warmup_steps=0",
        "training.logging_steps=1", "training.eval_steps=15", "training.save_steps=15",
        "run.early_stopping_patience=null"]


def overrides(steps: int) -> list[str]:
    return [arg for item in [*SETS, f"training.max_steps={steps}"] for arg in ("--set", item)]


@pytest.fixture(scope="module")
def recipe_path(pocket_cache) -> Path:
    from training.recipe import RECIPES_DIR

    return RECIPES_DIR / "pocket.yaml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, recipe_path) -> Path:
    out = tmp_path_factory.mktemp("run") / "adapter"
    assert cli(["train", "--recipe", str(recipe_path), "--output", str(out), *overrides(STEPS)]) == 0
    return out


@pytest.fixture(scope="module")
def first_metrics(run_dir) -> dict:
    """The metrics of the 30-step run, read before the resume test overwrites them."""
    return json.loads((run_dir / "metrics.json").read_text())


def test_output_holds_adapter_tokenizer_template_recipe_metrics_example(run_dir, first_metrics, recipe_path):
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "chat_template.jinja",
                 "recipe.yaml", "metrics.json", "training_example.txt", "loss.png"):
        assert (run_dir / name).exists(), name
    assert (run_dir / "chat_template.jinja").read_text() == CHAT_TEMPLATE
    from training.recipe import load_recipe

    resolved = load_recipe(run_dir / "recipe.yaml")  # the saved recipe parses strictly, as written
    assert resolved.training["max_steps"] == STEPS and resolved.output_dir == str(run_dir)
    assert resolved.data.limit == 24 and resolved.model.base == "pocket:baseline"
    assert first_metrics["global_step"] == STEPS
    assert first_metrics["records"] == {"train": 24, "eval": 8, "dropped_too_long": 0}
    assert first_metrics["train_tokens"] > 0 and first_metrics["tokens_per_second"] > 0
    config = json.loads((run_dir / "adapter_config.json").read_text())
    targeted = {name.rsplit(".", 1)[-1] for name in config["target_modules"]}
    assert targeted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_loss_falls_over_30_steps(first_metrics):
    losses = [e["loss"] for e in first_metrics["log_history"] if "loss" in e]
    assert len(losses) == STEPS
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.5, (first, last)
    evals = [e["eval_loss"] for e in first_metrics["log_history"] if "eval_loss" in e]
    assert len(evals) >= 2 and evals[-1] < evals[0]


def test_rendered_training_text_keeps_the_think_block(run_dir, records):
    from transformers import AutoTokenizer

    example = (run_dir / "training_example.txt").read_text()
    read, trained = example.split("=== inside the loss")
    for part in (read, trained):
        assert OPEN_TAG in part and CLOSE_TAG in part
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    text = render_training_text(tokenizer, records[0])
    assert f"{OPEN_TAG}\n{records[0].monologue}\n{CLOSE_TAG}\n\n{records[0].final_answer}" in text


def test_native_template_that_opens_think_keeps_the_monologue(records, pocket_cache, r1_like_template):
    """A DeepSeek-R1-style template opens <think> in the generation prompt and drops think blocks from
    rendered assistant turns: the prompt-completion rows must still carry the whole monologue."""
    from transformers import AutoTokenizer

    from training.data import chat_rows

    tokenizer = AutoTokenizer.from_pretrained(pocket_cache / "pocket" / "baseline")
    tokenizer.chat_template = r1_like_template
    row = chat_rows(records[:1], tokenizer, mode="native")[0]
    assert row["prompt"].endswith(f"{OPEN_TAG}\n")
    assert row["completion"].startswith(records[0].monologue)
    assert f"{CLOSE_TAG}\n\n{records[0].final_answer}" in row["completion"]


def sft_trainer(recipe, records, eval_records=(), checkpoints=None):
    """The pipeline's steps 2-4 for `recipe` on these records: rows, model, TRL trainer (nothing trained)."""
    from pushback.specs import parse_spec
    from training.data import rows_for
    from training.layout import choose_layout
    from training.train import build_trainer, load_model, load_tokenizer, resolve_base

    base = resolve_base(parse_spec(recipe.model.base))
    layout = choose_layout(recipe, cuda=False)
    tokenizer = load_tokenizer(base, recipe)
    render = {"mode": recipe.model.chat_template, "system": recipe.data.system, "max_length": recipe.data.max_length}
    train, held = rows_for(recipe.method, records, tokenizer, **render), rows_for(recipe.method, eval_records,
                                                                                tokenizer, **render)
    model, peft_config = load_model(base, recipe, layout)
    return build_trainer(recipe, layout, model, tokenizer, train, held, peft_config, checkpoints=checkpoints,
                         quiet=True), tokenizer, model


def test_labels_are_exactly_the_assistant_spans_and_base_layers_are_4bit(records, recipe_path, tmp_path):
    import bitsandbytes as bnb
    import torch

    from training.recipe import load_recipe

    recipe = load_recipe(recipe_path, SETS)  # two sequences per pass: a padding-free batch on CPU
    trainer, tokenizer, model = sft_trainer(recipe, records[:6], checkpoints=tmp_path)
    for record, row in zip(records[:6], trainer.train_dataset):
        trained = [t for t, label in zip(row["input_ids"], row["labels"]) if label != -100]
        assert tokenizer.decode(trained) == assistant_text(record) + "<|im_end|>"
    # The padding-free collator joins rows into one sequence; no label crosses into the next example.
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert len(starts) == 3 and all(batch["labels"][0, s] == -100 for s in starts)
    assert not (batch["input_ids"] == tokenizer.pad_token_id).any()
    lora_layers = [m for m in trainer.model.modules() if hasattr(m, "lora_A") and hasattr(m, "base_layer")]
    assert len(lora_layers) == 7 * model.config.num_hidden_layers
    assert all(isinstance(m.base_layer, bnb.nn.Linear4bit) for m in lora_layers)
    assert all(m.base_layer.weight.quant_state.quant_type == "nf4" for m in lora_layers)
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "lm_head.modules_to_save" in n for n in trainable)
    assert all(p.dtype == torch.float32 for n, p in trainer.model.named_parameters() if n in trainable)


def test_eval_split_early_stopping_and_cosine_schedule_are_wired(records, recipe_path, tmp_path):
    from transformers import EarlyStoppingCallback

    from training.recipe import load_recipe

    recipe = load_recipe(recipe_path, ["training.eval_steps=2", "training.save_steps=2"])
    trainer, _, _ = sft_trainer(recipe, records[:4], records[4:6], checkpoints=tmp_path)
    assert trainer.args.lr_scheduler_type == "cosine" and trainer.args.eval_strategy == "steps"
    assert trainer.args.load_best_model_at_end and trainer.args.metric_for_best_model == "eval_loss"
    assert any(isinstance(c, EarlyStoppingCallback) for c in trainer.callback_handler.callbacks)
    assert len(trainer.eval_dataset) == 2
    assert trainer.args.use_cpu and not trainer.args.bf16  # the pocket recipe stays on the CPU, in fp32


def test_resume_continues_from_the_last_checkpoint(run_dir, first_metrics, recipe_path, capsys):
    assert (run_dir / "checkpoints" / f"checkpoint-{STEPS}").is_dir()
    # Starting over in a directory with checkpoints is refused rather than silently mixed.
    assert cli(["train", "--recipe", str(recipe_path), "--output", str(run_dir), *overrides(STEPS)]) == 1
    assert "--resume" in capsys.readouterr().err
    assert cli(["train", "--recipe", str(recipe_path), "--output", str(run_dir), "--resume",
                *overrides(RESUMED_STEPS)]) == 0
    assert "resumed from 30" in capsys.readouterr().out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == STEPS and metrics["global_step"] == RESUMED_STEPS
    steps = [e["step"] for e in metrics["log_history"] if "loss" in e]
    assert steps[:STEPS] == list(range(1, STEPS + 1))  # the history of the first session is kept
    assert steps[STEPS:] == list(range(STEPS + 1, RESUMED_STEPS + 1))  # and the new steps follow on


@pytest.fixture(scope="module")
def merged_dir(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("merged") / "fp32"
    assert cli(["merge", "--adapter", str(run_dir), "--out", str(out), "--dtype", "fp32"]) == 0
    return out


def test_merged_logits_match_the_adapter_on_the_unquantized_base(run_dir, merged_dir, records):
    """Tolerance: 1e-4 absolute on the logits in fp32 (merge is exact up to float rounding); a bf16
    save is checked against 5e-2 relative to the logit range (bf16 has 8 bits of mantissa)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.merge import load_unquantized_with_adapter

    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ids = tokenizer(render_training_text(tokenizer, records[1]), return_tensors="pt")["input_ids"][:, :128]
    reference = load_unquantized_with_adapter(run_dir)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    with torch.no_grad():
        expected, got = reference(input_ids=ids).logits, merged(input_ids=ids).logits
        plain = reference.get_base_model()
        with reference.disable_adapter():
            base_only = plain(input_ids=ids).logits
    assert (got - expected).abs().max().item() < 1e-4
    assert (base_only - expected).abs().max().item() > 1e-2  # the adapter really changed something
    # The merged model stops where the backends stop generating: EOS and every end-of-turn token it knows.
    assert merged.generation_config.eos_token_id == sorted({tokenizer.eos_token_id,
                                                            tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                                            tokenizer.convert_tokens_to_ids("<|endoftext|>")})
    assert (merged_dir / "chat_template.jinja").read_text() == CHAT_TEMPLATE
    assert json.loads((merged_dir / "merge.json").read_text())["dtype"] == "fp32"

    out = merged_dir.parent / "bf16"
    assert cli(["merge", "--adapter", str(run_dir), "--out", str(out)]) == 0  # bf16 is the default
    half = AutoModelForCausalLM.from_pretrained(out)
    assert half.dtype == torch.bfloat16
    with torch.no_grad():
        got_half = half.float()(input_ids=ids).logits
    scale = expected.abs().max().item()
    assert (got_half - expected).abs().max().item() < 5e-2 * scale


def test_ollama_export_writes_a_modelfile_and_refuses_adapters(merged_dir, run_dir, tmp_path, capsys):
    out = tmp_path / "ollama"
    assert cli(["export", "ollama", "--model", str(merged_dir), "--out", str(out), "--name", "friction-test"]) == 0
    modelfile = (out / "Modelfile").read_text()
    assert f"FROM {merged_dir.resolve()}" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    assert 'SYSTEM """You are a helpful assistant."""' in modelfile
    assert "<|im_start|>assistant" in modelfile and "{{ .Content }}" in modelfile
    assert "ollama create friction-test -f" in capsys.readouterr().out
    assert cli(["export", "ollama", "--model", str(run_dir), "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "LoRA adapter" in err and "pushback merge" in err and "Qwen" in err


def test_a_run_that_fails_leaves_no_output_that_looks_complete(recipe_path, tmp_path, monkeypatch):
    """Everything but the checkpoints is written to a stage beside the output and moved in only at the end: a run
    that fails on the way (here while writing its metrics) leaves no adapter, card or metrics behind."""
    import training.train as pipeline
    from training.recipe import load_recipe

    def broken(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pipeline, "metrics_for", broken)
    out = tmp_path / "adapter"
    recipe = load_recipe(recipe_path, [*SETS, "training.max_steps=2", "training.save_strategy=no",
                                       "training.eval_strategy=no", "training.load_best_model_at_end=false"])
    with pytest.raises(OSError, match="disk full"):
        pipeline.run_training(recipe, out, quiet=True, log=lambda _: None)
    left = {p.name for p in out.iterdir()} if out.exists() else set()
    assert not left & {"adapter_model.safetensors", "adapter_config.json", "README.md", "metrics.json", "recipe.yaml"}
    assert not list(tmp_path.glob(".*staging*"))


def test_the_run_says_its_layout_first(recipe_path, tmp_path):
    from training.recipe import load_recipe
    from training.train import run_training

    lines: list[str] = []
    recipe = load_recipe(recipe_path, [*SETS, "training.max_steps=1", "training.save_strategy=no",
                                       "training.eval_strategy=no", "training.load_best_model_at_end=false"])
    result = run_training(recipe, tmp_path / "adapter", quiet=True, log=lines.append)
    assert lines[0].startswith("batch layout: padding_free on CPU -- ") and "padding-free measured" in lines[0]
    assert lines[1].startswith("liger kernels: off")
    assert result.metrics["layout"]["batch_layout"] == "padding_free"


def test_merge_refuses_an_output_in_the_adapter_before_writing(run_dir, capsys):
    before = sorted(p.name for p in run_dir.iterdir())
    for out in (run_dir, run_dir / "merged"):
        assert cli(["merge", "--adapter", str(run_dir), "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert "choose a folder outside it" in err and "\n" not in err.strip()
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_one_line_errors_for_outputs_in_the_way(tmp_path, merged_dir, capsys):
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("keep me")
    assert cli(["pocket", "--tiny", "--out", str(in_the_way)]) == 1
    assert cli(["export", "ollama", "--model", str(merged_dir), "--out", str(in_the_way / "ollama")]) == 1
    assert cli(["merge", "--adapter", str(merged_dir), "--out", str(in_the_way)]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors), errors
    assert "a file is in the way" in errors[0] and "cannot write there" in errors[1]
    assert in_the_way.read_text() == "keep me"


def test_ollama_export_into_a_read_only_folder_is_one_line(merged_dir, read_only_dir, capsys):
    """Probe (issue 15): a read-only output folder was a traceback."""
    assert cli(["export", "ollama", "--model", str(merged_dir), "--out", str(read_only_dir / "ollama")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "\n" not in error and "Traceback" not in error
    assert not any(read_only_dir.iterdir())
