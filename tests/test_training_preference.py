"""Preference tuning (DPO, ORPO) through `pushback train`, on the tiny pocket pair with real 4-bit loading and
real TRL steps: the pairs, what the loss covers, one model in memory, and an adapter that every other command
(eval and the Space through the backends, merge, export, publish) takes as it takes an SFT adapter."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pushback.chat import END_OF_TURN, assistant_text
from pushback.cli import main as cli
from pushback.splits import curated_split
from pushback.thinking import CLOSE_TAG, OPEN_TAG

SMALL = ["data.limit=8", "data.eval_limit=4", "training.max_steps=4", "training.eval_steps=2",
         "training.save_steps=2", "training.logging_steps=1", "training.per_device_train_batch_size=2",
         "training.gradient_accumulation_steps=1"]


def sets(*items: str) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def records():
    """Training records of both kinds: friction (rejected = eager) and benign (rejected = over-cautious)."""
    train, _ = curated_split()
    friction = [r for r in train if r.category != "benign"][:4]
    benign = [r for r in train if r.category == "benign"][:4]
    return friction + benign


def preference_trainer(name: str, records, pocket_cache, tmp_path, *extra: str, mode: str | None = None):
    from pushback.specs import parse_spec
    from training.data import rows_for
    from training.layout import choose_layout
    from training.recipe import load_recipe
    from training.train import build_trainer, load_model, load_tokenizer, resolve_base

    recipe = load_recipe(name, ["training.eval_strategy=no", "training.load_best_model_at_end=false",
                                "run.early_stopping_patience=null", *extra])
    base = resolve_base(parse_spec(recipe.model.base))
    layout = choose_layout(recipe, cuda=False)
    tokenizer = load_tokenizer(base, recipe)
    rows = rows_for(recipe.method, records, tokenizer, mode=mode or recipe.model.chat_template, system="plain",
                    max_length=4096)
    model, peft_config = load_model(base, recipe, layout)
    return build_trainer(recipe, layout, model, tokenizer, rows, rows_for(recipe.method, [], tokenizer,
                                                                          mode="pushback", system="plain",
                                                                          max_length=4096),
                         peft_config, checkpoints=tmp_path, quiet=True), tokenizer, rows


def test_pairs_of_both_kinds_from_the_one_pair_builder(records, pocket_cache):
    from transformers import AutoTokenizer

    from training.data import rows_for, use_our_template

    tokenizer = AutoTokenizer.from_pretrained(pocket_cache / "pocket" / "baseline")
    use_our_template(tokenizer, "pushback")
    rows = rows_for("dpo", records, tokenizer, mode="pushback", system="plain", max_length=None)
    assert rows.kinds == {"friction": 4, "benign": 4} and rows.no_rejected == 0
    for record, row in zip(records, rows.rows):
        assert row["prompt"].endswith("<|im_start|>assistant\n") and record.user_input in row["prompt"]
        assert row["chosen"] == assistant_text(record) + END_OF_TURN  # monologue, answer, end of turn
        rejected = record.overcautious_answer if record.category == "benign" else record.baseline_answer
        assert row["rejected"] == rejected + END_OF_TURN and row["chosen"] != row["rejected"]
    stripped = records[4].model_copy(update={"overcautious_answer": None})
    assert rows_for("dpo", [stripped], tokenizer, mode="pushback", system="plain", max_length=None).no_rejected == 1


def test_native_template_pairs_keep_the_monologue_after_an_opened_think(records, pocket_cache, r1_like_template):
    from transformers import AutoTokenizer

    from training.data import rows_for

    tokenizer = AutoTokenizer.from_pretrained(pocket_cache / "pocket" / "baseline")
    tokenizer.chat_template = r1_like_template
    row = rows_for("dpo", records[:1], tokenizer, mode="native", system="plain", max_length=None).rows[0]
    assert row["prompt"].endswith(f"{OPEN_TAG}\n")
    assert row["chosen"].startswith(records[0].monologue) and OPEN_TAG not in row["chosen"]
    assert f"{CLOSE_TAG}\n\n{records[0].final_answer}{tokenizer.eos_token}" in row["chosen"]


def test_dpo_loss_covers_the_completion_with_its_monologue_never_the_prompt(records, pocket_cache, tmp_path):
    trainer, tokenizer, rows = preference_trainer("pocket-dpo", records, pocket_cache, tmp_path)
    for record, row, tokenized in zip(records, rows.rows, trainer.train_dataset):
        assert tokenizer.decode(tokenized["prompt_ids"]) == row["prompt"]
        chosen = tokenizer.decode(tokenized["chosen_ids"])
        assert chosen == assistant_text(record) + END_OF_TURN and record.monologue in chosen
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    for i, tokenized in enumerate([trainer.train_dataset[0], trainer.train_dataset[1]] * 2):  # chosen, then rejected
        side = tokenized["chosen_ids"] if i < 2 else tokenized["rejected_ids"]
        prompt, mask = len(tokenized["prompt_ids"]), batch["completion_mask"][i]
        assert mask[:prompt].sum() == 0  # no prompt token is inside the loss
        assert mask[prompt:prompt + len(side)].tolist() == [1] * len(side)  # every completion token is
        assert mask[prompt + len(side):].sum() == 0  # padding is not
        assert batch["input_ids"][i, prompt:prompt + len(side)].tolist() == side


def test_orpo_labels_cover_the_completion_with_its_monologue_never_the_prompt(records, pocket_cache, tmp_path):
    trainer, tokenizer, _ = preference_trainer("pocket-orpo", records, pocket_cache, tmp_path)
    for record, row in zip(records, trainer.train_dataset):
        prompt = len(row["prompt_input_ids"])
        for side, text in (("chosen", assistant_text(record)),
                           ("rejected", record.overcautious_answer if record.category == "benign"
                            else record.baseline_answer)):
            labels = row[f"{side}_labels"]
            assert labels[:prompt] == [-100] * prompt
            assert tokenizer.decode([t for t in labels if t != -100]) == text + END_OF_TURN


def test_dpo_keeps_one_model_in_memory(records, pocket_cache, tmp_path):
    """DPO's reference is the policy with its adapter switched off: no second model is loaded."""
    import bitsandbytes as bnb
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    trainer, _, _ = preference_trainer("pocket-dpo", records[:2], pocket_cache, tmp_path)
    assert trainer.ref_model is None and isinstance(trainer.model, PeftModel)
    assert list(trainer.model.peft_config) == ["default"]  # a new LoRA: the reference is the base alone
    quantized = [m for m in trainer.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    plain = AutoModelForCausalLM.from_pretrained(pocket_cache / "pocket" / "friction")
    linear = [n for n, m in plain.named_modules() if type(m).__name__ == "Linear" and "lm_head" not in n]
    assert len(quantized) == len(linear)  # one copy of each base layer
    base = {n: p for n, p in trainer.model.named_parameters() if "lora_" not in n and "modules_to_save" not in n}
    assert sum(p.numel() for p in base.values()) <= sum(p.numel() for p in plain.parameters())


def test_dpo_from_an_sft_adapter_continues_it_against_its_frozen_copy(records, pocket_cache, tmp_path, capsys):
    """The SFT adapter goes on training; its frozen copy (adapter-sized, not a model) is the reference, and
    it is not saved: the result is one adapter on the SFT base, loadable as base+adapter."""
    sft, dpo = tmp_path / "sft", tmp_path / "dpo"
    assert cli(["train", "--recipe", "pocket", "--output", str(sft),
                *sets("data.limit=4", "training.max_steps=2", "training.eval_strategy=no",
                      "training.save_strategy=no", "training.load_best_model_at_end=false",
                      "run.early_stopping_patience=null")]) == 0
    assert cli(["train", "--recipe", "pocket-dpo", "--output", str(dpo),
                *sets("model.base=pocket:baseline", f"model.adapter={sft}", "training.save_strategy=no",
                      "training.eval_strategy=no", "training.load_best_model_at_end=false",
                      "run.early_stopping_patience=null", "data.limit=4", "training.max_steps=2")]) == 0
    assert "reward margin" in capsys.readouterr().out
    assert not (dpo / "ref").exists()
    trainer, _, _ = preference_trainer("pocket-dpo", records[:2], pocket_cache, tmp_path / "ck",
                                       "model.base=pocket:baseline", f"model.adapter={sft}")
    assert trainer.ref_model is None and list(trainer.model.peft_config) == ["default", "ref"]
    sizes = {name: sum(p.numel() for n, p in trainer.model.named_parameters() if f".{name}." in n)
             for name in ("default", "ref")}
    assert sizes["ref"] == sizes["default"] > 0  # the reference is adapter-sized: a copy of the SFT adapter
    assert all(not p.requires_grad for n, p in trainer.model.named_parameters() if ".ref." in n)
    config = json.loads((dpo / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == json.loads((sft / "adapter_config.json").read_text())[
        "base_model_name_or_path"]
    metrics = json.loads((dpo / "metrics.json").read_text())
    assert metrics["start_adapter"] == str(sft) and metrics["base_model"] == "pocket:baseline"
    assert "the starting SFT adapter, frozen" in (dpo / "README.md").read_text()
    # An adapter trained on another base is refused before training.
    assert cli(["train", "--recipe", "pocket-dpo", "--output", str(tmp_path / "x"),
                *sets(f"model.adapter={sft}")]) == 1
    assert "was trained on" in capsys.readouterr().err


@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory, pocket_cache) -> Path:
    out = tmp_path_factory.mktemp("dpo") / "adapter"
    assert cli(["train", "--recipe", "pocket-dpo", "--output", str(out), *sets(*SMALL)]) == 0
    return out


def test_pocket_dpo_leaves_a_complete_output_with_rewards(dpo_run):
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "chat_template.jinja",
                 "recipe.yaml", "metrics.json", "training_example.txt", "loss.png", "README.md"):
        assert (dpo_run / name).exists(), name
    assert not list(dpo_run.parent.glob(".*staging*"))
    metrics = json.loads((dpo_run / "metrics.json").read_text())
    assert metrics["method"] == "dpo" and metrics["global_step"] == 4 and metrics["base_model"] == "pocket:friction"
    preference = metrics["preference"]
    assert preference["beta"] == 0.1 and preference["pairs"]["train"] == 8
    assert preference["pairs"]["friction"] + preference["pairs"]["benign"] == 8
    for part in ("train_first", "train_last", "eval"):
        assert set(preference["rewards"][part]) == {"rewards/chosen", "rewards/rejected", "rewards/margins",
                                                    "rewards/accuracies"}
    assert metrics["train_tokens"] > 0 and metrics["layout"]["batch_layout"] == "pad_to_longest"
    card = (dpo_run / "README.md").read_text()
    assert "DPO (beta=0.1) on 8 preference pairs" in card and "- dpo" in card
    assert "the base with the adapter switched off" in card
    example = (dpo_run / "training_example.txt").read_text()
    assert "[chosen]" in example and "[rejected]" in example and OPEN_TAG in example.split("[chosen]")[1]


def test_dpo_resumes_from_its_checkpoint(dpo_run, capsys):
    assert cli(["train", "--recipe", "pocket-dpo", "--output", str(dpo_run), "--resume",
                *sets(*SMALL[:2], *SMALL[3:], "training.max_steps=6")]) == 0
    assert "resumed from 4" in capsys.readouterr().out
    metrics = json.loads((dpo_run / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 4 and metrics["global_step"] == 6


def test_the_dpo_adapter_loads_as_base_plus_adapter_merges_and_exports(dpo_run, pocket_cache, tmp_path):
    """What `pushback eval` and the Space do with a spec: the backends load base+adapter and generate."""
    from pushback.backends import GenerationParams, clear_loaded, load_backend

    friction = pocket_cache / "pocket" / "friction"
    clear_loaded()
    backend = load_backend(f"{friction}+{dpo_run}")
    reply = backend.generate([{"role": "user", "content": "Is the sky green?"}], GenerationParams(max_new_tokens=8))
    assert isinstance(reply, str)
    clear_loaded()
    merged = tmp_path / "merged"
    assert cli(["merge", "--adapter", str(dpo_run), "--out", str(merged), "--dtype", "fp32"]) == 0
    assert json.loads((merged / "metrics.json").read_text())["method"] == "dpo"
    assert cli(["export", "ollama", "--model", str(merged), "--out", str(tmp_path / "ollama")]) == 0
    from training.publish import Repos, stage

    staged = stage(adapter=dpo_run, merged=merged, dataset=None, repos=Repos.from_prefix("someone/dpo"),
                   stage_dir=tmp_path / "stage")
    assert "DPO (beta=0.1)" in (staged["adapter"][0] / "README.md").read_text()
    assert "DPO (beta=0.1)" in (staged["merged"][0] / "README.md").read_text()


def test_pocket_orpo_trains_and_counts_its_tokens(pocket_cache, tmp_path):
    out = tmp_path / "orpo"
    assert cli(["train", "--recipe", "pocket-orpo", "--output", str(out),
                *sets(*SMALL[:2], "training.max_steps=2", "training.eval_steps=2", "training.save_steps=2",
                      "training.logging_steps=1")]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "orpo" and metrics["train_tokens"] > 0
    assert "rewards/margins" in metrics["preference"]["rewards"]["train_last"]
    assert "ORPO (beta=0.1)" in (out / "README.md").read_text()


@pytest.mark.parametrize("name", ["pocket-dpo", "pocket-orpo"])
def test_length_grouped_pairs_are_batched_by_our_token_lengths(name, records, pocket_cache, tmp_path):
    """On CUDA preference pairs are batched by length; the sampler reads the rows' `length` column."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    trainer, _, rows = preference_trainer(name, records, pocket_cache, tmp_path, "run.batch_layout=group_by_length",
                                          "training.per_device_train_batch_size=2")
    loader = trainer.get_train_dataloader()
    sampler = loader.batch_sampler.sampler
    assert isinstance(sampler, LengthGroupedSampler)
    assert list(sampler.lengths) == [row["length"] for row in rows.rows]
    batch = next(iter(loader))
    assert "length" not in batch or name == "pocket-orpo"  # DPO's collator leaves it out; ORPO's ignores it
