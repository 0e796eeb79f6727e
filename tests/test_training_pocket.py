"""The pocket pair (`pushback pocket --tiny`, built once per session by the `pocket_cache` fixture):
plain transformers directories, reachable as `pocket:baseline` / `pocket:friction`, the friction model
thinks in a well-formed block and the baseline does not, and the build is cached and deterministic."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pushback.chat import CHAT_TEMPLATE
from pushback.cli import main as cli
from pushback.splits import curated_split
from pushback.thinking import split_thinking


@pytest.fixture(scope="module")
def held_out_prompts() -> list[list[dict[str, str]]]:
    _, held = curated_split()
    return [[{"role": "user", "content": r.user_input}] for r in held[:12]]


def test_both_models_load_with_plain_transformers(pocket_cache: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for name in ("baseline", "friction"):
        directory = pocket_cache / "pocket" / name
        model = AutoModelForCausalLM.from_pretrained(directory)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        assert model.config.model_type == "qwen2"
        assert tokenizer.chat_template == CHAT_TEMPLATE
        assert tokenizer.convert_tokens_to_ids("<think>") != tokenizer.unk_token_id


def test_friction_thinks_and_the_baseline_does_not(pocket_cache: Path, held_out_prompts):
    from pushback.backends import GenerationParams, load_backend

    params = GenerationParams(max_new_tokens=96, temperature=0.7, seed=1)
    friction = load_backend("pocket:friction").generate_batch(held_out_prompts, params)
    baseline = load_backend("pocket:baseline").generate_batch(held_out_prompts, params)
    friction_share = sum(split_thinking(t).well_formed for t in friction) / len(friction)
    baseline_share = sum(split_thinking(t).well_formed for t in baseline) / len(baseline)
    assert friction_share >= 0.75, friction
    assert baseline_share <= 0.05, baseline
    assert all(split_thinking(t).answer for t in baseline)  # the baseline still answers


def test_the_build_recorded_its_quality_check_and_is_cached(pocket_cache: Path, capsys):
    manifest = json.loads((pocket_cache / "pocket" / "pocket.json").read_text())
    assert manifest["tiny"] is True and manifest["seed"] == 0
    assert manifest["quality"]["friction_well_formed"] >= 0.9
    assert manifest["quality"]["baseline_well_formed"] <= 0.05
    assert set(manifest["timings"]) == {"tokenizer", "baseline", "friction", "quality"}
    assert cli(["pocket", "--tiny", "--out", str(pocket_cache / "pocket")]) == 0
    out = capsys.readouterr().out
    assert "already built" in out and "well-formed <think> monologue" in out


@pytest.mark.slow
def test_the_build_is_deterministic_for_a_seed(pocket_cache: Path, tmp_path: Path):
    from safetensors.torch import load_file

    from training.pocket import build_pocket

    again = build_pocket(tmp_path / "pocket", tiny=True, seed=0, log=lambda _: None)
    assert not again.cached
    for name in ("baseline", "friction"):
        first = load_file(pocket_cache / "pocket" / name / "model.safetensors")
        second = load_file(again.out / name / "model.safetensors")
        assert first.keys() == second.keys()
        assert all((first[k] == second[k]).all() for k in first), name


def test_an_out_that_names_a_file_is_one_line_and_the_file_is_untouched(tmp_path: Path, capsys):
    """Probe (issue 15): `pocket --out FILE` was a traceback."""
    target = tmp_path / "notes.txt"
    target.write_text("keep me\n")
    assert cli(["pocket", "--tiny", "--out", str(target)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: --out {target}") and "\n" not in error
    assert target.read_text() == "keep me\n"
