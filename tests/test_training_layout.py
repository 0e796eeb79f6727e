"""The batch layout chosen for the hardware (and said), the CPU kept for small models, the largest micro-batch
that fits, and the GPU benchmark's own code run at toy scale on this CPU."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.layout import Layout, choose_layout, divisors, packs_without_dense_mask
from training.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent


def recipe(name: str = "qwen2.5-0.5b-instruct", *sets: str):
    return load_recipe(name, list(sets))


@pytest.mark.parametrize("name, sets, cuda, layout", [
    ("qwen2.5-0.5b-instruct", [], False, "padding_free"),  # CPU: as measured there
    ("qwen2.5-0.5b-instruct", [], True, "group_by_length"),  # sdpa would attend over a pack with a dense mask
    ("qwen2.5-0.5b-instruct", ["model.attn_implementation=flash_attention_2"], True, "padding_free"),
    ("qwen2.5-0.5b-instruct", ["model.attn_implementation=flash_attention_3"], True, "padding_free"),
    ("qwen2.5-0.5b-instruct", ["run.batch_layout=pad_to_max"], True, "pad_to_max"),  # a recipe may force it
    ("qwen2.5-0.5b-dpo", [], True, "group_by_length"),  # TRL's DPO trainer pads its pairs
    ("pocket-dpo", [], False, "pad_to_longest"),
    ("pocket-orpo", [], True, "pad_to_longest"),  # run.device: cpu wins over a visible GPU
])
def test_the_layout_for_the_hardware(name, sets, cuda, layout) -> None:
    chosen = choose_layout(recipe(name, *sets), cuda=cuda)
    assert chosen.name == layout
    lines = chosen.describe()
    assert lines[0].startswith(f"batch layout: {layout} on ") and chosen.reason in lines[0]
    assert lines[1].startswith("liger kernels: ")


def test_a_hub_attention_kernel_packs_only_with_the_kernels_package() -> None:
    kernels = importlib.util.find_spec("kernels") is not None
    assert packs_without_dense_mask("kernels-community/flash-attn") is kernels
    assert not packs_without_dense_mask("sdpa") and not packs_without_dense_mask("eager")


def test_liger_is_auto_on_cuda_when_installed_and_never_on_cpu() -> None:
    installed = importlib.util.find_spec("liger_kernel") is not None
    assert not choose_layout(recipe(), cuda=False).liger
    on_gpu = choose_layout(recipe(), cuda=True)
    assert on_gpu.liger is installed and ("not installed" in on_gpu.liger_reason) is not installed
    assert not choose_layout(recipe("qwen2.5-0.5b-instruct", "run.liger=off"), cuda=True).liger
    if not installed:
        with pytest.raises(ValueError, match=r'pip install "pushback-ai\[gpu\]"'):
            choose_layout(recipe("qwen2.5-0.5b-instruct", "run.liger=on"), cuda=True)


def test_each_layout_sets_trl_fields() -> None:
    def config(name: str, method: str = "sft", batch: int = 4):
        return Layout("cuda", name, "", False, "").config(method, per_device_batch=batch, max_length=2048)

    assert config("group_by_length")["train_sampling_strategy"] == "group_by_length"
    assert config("group_by_length")["padding_free"] is False
    assert config("pad_to_max")["pad_to_multiple_of"] == 2048
    assert config("padding_free")["padding_free"] is True and config("padding_free")["max_length"] is None
    assert config("padding_free", batch=1)["padding_free"] is False  # one row per pass: nothing to pack
    assert config("pad_to_longest", "orpo")["max_length"] == 2050  # ORPO needs one; every row fits it
    assert "padding_free" not in config("group_by_length", "dpo")


def test_small_models_stay_on_the_cpu_where_a_gpu_is_visible(monkeypatch) -> None:
    """The pocket build and recipes run on the CPU even with a GPU: their many tiny steps are slower there
    (the `--tiny` build: 25 s on an H200 machine's CPUs, over 60 s on its GPU)."""
    import torch

    from pushback import backends
    from training.pocket import PLANS, _baseline_recipe, on_cpu
    from training.train import trl_config

    for chosen in (recipe("pocket"), recipe("pocket-dpo"), _baseline_recipe("baseline", PLANS["tiny"], 0, 1, 4)):
        layout = choose_layout(chosen, cuda=True)
        assert layout.device == "cpu"
        config = trl_config(chosen, layout, checkpoints=Path("unused"), evaluate=False, row={"messages": []})
        assert config.use_cpu and not config.bf16 and not config.fp16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert backends._device() == "cuda"
    with on_cpu():  # the build's quality check loads its models through the backends
        assert backends._device() == "cpu"
    assert backends._device() == "cuda"


def test_divisors_keep_the_effective_batch() -> None:
    assert divisors(16) == [1, 2, 4, 8, 16] and divisors(12) == [1, 2, 3, 4, 6, 12]


def test_the_micro_batch_probe_trains_the_longest_rows_and_stops_at_the_memory_it_is_given(pocket_cache):
    """The probe runs real forward and backward passes on the longest rows; here the GPU's memory reading is
    replaced by one that grows with the batch, as it does on a GPU."""
    import torch

    from pushback.specs import parse_spec
    from training.data import Rows
    from training.train import build_trainer, fit_micro_batch, load_model, load_tokenizer, resolve_base

    chosen = recipe("pocket", "training.per_device_train_batch_size=2", "training.gradient_accumulation_steps=4",
                    "training.eval_strategy=no", "training.load_best_model_at_end=false",
                    "run.early_stopping_patience=null")
    base = resolve_base(parse_spec(chosen.model.base))
    layout = choose_layout(chosen, cuda=False)
    tokenizer = load_tokenizer(base, chosen)
    rows = [{"text": "word " * n, "length": n} for n in (40, 10, 80, 20, 60, 30, 50, 70)]
    model, peft_config = load_model(base, chosen, layout)
    trainer = build_trainer(chosen, layout, model, tokenizer, Rows(rows), Rows([]), peft_config,
                            checkpoints=pocket_cache / "probe", quiet=True)
    seen: list[int] = []
    original = trainer.data_collator

    def collate(features):
        seen.append(len(features))
        return original(features)

    trainer.data_collator = collate
    per_row = 10 * 2**30  # a pretend GPU of 80 GiB: 10 GiB per row of the batch
    fit_micro_batch(trainer, [r["length"] for r in rows], log=lambda _: None,
                    memory=lambda: (per_row * seen[-1], 80 * 2**30))
    assert seen == [1, 2, 4, 8]  # each divisor of 8 tried, up to the one over 85% of memory
    assert (trainer.args.per_device_train_batch_size, trainer.args.gradient_accumulation_steps) == (4, 2)
    assert all(p.grad is None for p in trainer.model.parameters())  # the probes' gradients were thrown away
    next(iter(trainer.get_train_dataloader()))
    assert seen[-1] == 4  # training itself batches what the probe chose, not the recipe's first guess

    def out_of_memory():
        if seen[-1] >= 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return 1, 80 * 2**30

    seen.clear()
    trainer.args.per_device_train_batch_size, trainer.args.gradient_accumulation_steps = 8, 1
    fit_micro_batch(trainer, [r["length"] for r in rows], log=lambda _: None, memory=out_of_memory)
    assert (trainer.args.per_device_train_batch_size, trainer.args.gradient_accumulation_steps) == (1, 8)


def run_bench(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_qlora.py"), "--shape", "tiny", "--device", "cpu",
                           "--seq", "48", "--steps", "2", "--effective", "2", "--micro", "1", "--out", str(out),
                           *extra], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_the_gpu_bench_runs_and_is_correct_at_toy_scale_on_cpu(tmp_path: Path) -> None:
    done = run_bench(tmp_path, "--variants", "TRL default", "ours")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_qlora-tiny-cpu.json").read_text())
    assert (tmp_path / "gpu_qlora-tiny-cpu.png").exists()
    default, ours = report["results"]
    assert default["variant"] == "TRL default" and default["batch_layout"] == "pad_to_longest"
    assert ours["variant"] == "ours" and ours["batch_layout"] == "padding_free"
    for result in (default, ours):
        assert result["real_tokens"] > 0 and result["real_tokens_per_second"] > 0 and result["timed_steps"] == 1
    assert report["summary"]["speedup_vs_trl_default"] == round(
        ours["real_tokens_per_second"] / default["real_tokens_per_second"], 2)
    assert report["provenance"]["command"].startswith("python bench/gpu_qlora.py --shape tiny")
    assert report["provenance"]["fingerprints"]["file:training/recipes/deepseek-r1-distill-qwen-7b.yaml"]
    assert "[ours]" in done.stdout and "wrote" in done.stdout


def test_the_gpu_bench_records_a_failing_variant_and_keeps_going(tmp_path: Path, monkeypatch) -> None:
    """A variant that runs out of memory is recorded as such, ours is retried without Liger after another
    error, and the JSON says all of it."""
    import torch

    spec = importlib.util.spec_from_file_location("gpu_qlora_bench", ROOT / "bench" / "gpu_qlora.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script sets sys.path[0]; put it back after
    spec.loader.exec_module(bench)
    measure = bench.measure

    def measure_or_oom(name, *args, liger_off=False):
        if name == "pad to max":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")
        if name == "ours" and not liger_off:
            raise RuntimeError("a Triton kernel failed (simulated)")
        return measure(name, *args, liger_off=liger_off)

    monkeypatch.setattr(bench, "measure", measure_or_oom)
    monkeypatch.setattr(sys, "argv", ["bench/gpu_qlora.py", "--shape", "tiny", "--device", "cpu", "--seq", "48",
                                      "--steps", "2", "--effective", "2", "--micro", "1", "--out", str(tmp_path),
                                      "--variants", "pad to max", "ours"])
    assert bench.main() == 1  # not every variant ran
    report = json.loads((tmp_path / "gpu_qlora-tiny-cpu.json").read_text())
    assert report["results"][0] == {"variant": "pad to max", "error": "out of memory"}
    assert report["results"][1] == {"variant": "ours", "error": "RuntimeError: a Triton kernel failed (simulated)"}
    retry = report["results"][2]  # ours is measured once more without Liger rather than lost
    assert retry["variant"] == "ours (liger off after an error)" and retry["real_tokens_per_second"] > 0


def test_the_gpu_bench_fails_fast_without_a_gpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_qlora.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and "no CUDA GPU is visible" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())
