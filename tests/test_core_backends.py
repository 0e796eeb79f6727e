"""Loading specs and streaming from real (tiny) weights on disk."""
from __future__ import annotations

import threading

import pytest

from pushback.backends import BackendError, GenerationParams, load_backend, quantization_kwargs, with_system
from pushback.chat import SYSTEM_FRICTION, SYSTEM_PLAIN

HELLO = [{"role": "user", "content": "Is the sky green?"}]


def test_stream_yields_text_and_matches_generate(tiny_model_dir):
    backend = load_backend(str(tiny_model_dir))
    params = GenerationParams(max_new_tokens=12, temperature=0)
    stream = backend.stream(HELLO, params)
    chunks = list(stream)
    assert chunks and not stream.opened
    assert "".join(chunks) == backend.generate(HELLO, params)
    assert backend.generate_batch([HELLO, HELLO], params) == ["".join(chunks)] * 2
    assert backend.count_tokens("".join(chunks)) > 0


def test_stop_event_ends_generation_early(tiny_model_dir):
    backend = load_backend(str(tiny_model_dir))
    stop = threading.Event()
    # A repetition penalty below 1 keeps the random model from emitting its end token early.
    params = GenerationParams(max_new_tokens=400, temperature=1.0, seed=0, repetition_penalty=0.5)
    received = 0
    stream = backend.stream(HELLO, params, stop=stop)
    for _ in stream:
        received += 1
        if received == 3:
            stop.set()
    assert received < 60  # stopped near the 3rd chunk, far from 400 tokens


def test_models_share_weights_across_specs(tiny_model_dir):
    plain = load_backend(str(tiny_model_dir))
    prompted = load_backend(f"{tiny_model_dir}@system=friction")
    assert plain is not prompted and plain.model is prompted.model
    assert with_system(HELLO, prompted.spec.system)[0]["content"] == SYSTEM_FRICTION
    assert with_system(HELLO, None)[0]["content"] == SYSTEM_PLAIN


def test_errors_name_the_spec(tmp_path, monkeypatch):
    monkeypatch.setenv("PUSHBACK_CACHE", str(tmp_path))
    with pytest.raises(BackendError, match="pocket pair is not built yet"):
        load_backend("pocket:friction")
    with pytest.raises(BackendError, match="cannot load"):
        load_backend(str(tmp_path))  # a directory with no model in it


def test_precision_defaults():
    import torch

    assert quantization_kwargs(None, "cpu") == {"dtype": torch.float32}
    assert "quantization_config" in quantization_kwargs(None, "cuda")
    assert quantization_kwargs("4bit", "cpu")["quantization_config"].bnb_4bit_quant_type == "nf4"
    assert quantization_kwargs("bf16", "cpu") == {"dtype": torch.bfloat16}


def test_local_models_load_one_at_a_time_and_come_out_whole(tiny_model_dir, tmp_path):
    """Parallel `from_pretrained` of different models left weights on the meta device or uninitialised
    (NaN sampling errors under load): local weights load one at a time."""
    import shutil

    import torch

    copies = [str(shutil.copytree(tiny_model_dir, tmp_path / f"copy-{i}")) for i in range(3)]
    errors: list[BaseException] = []

    def load(spec: str) -> None:
        try:
            load_backend(spec)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=load, args=(spec,)) for spec in copies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for spec in copies:
        model = load_backend(spec).model
        assert all(p.device.type == "cpu" and torch.isfinite(p).all() for p in model.parameters()), spec


@pytest.mark.parametrize("precision, layer, dtype", [
    ("4bit", "Linear4bit", None), ("8bit", "Linear8bitLt", None), ("bf16", "Linear", "bfloat16"),
])
def test_precisions_load_real_quantized_layers_and_generate(tiny_model_dir, precision, layer, dtype):
    backend = load_backend(f"{tiny_model_dir}@{precision}")
    assert type(backend.model.model.layers[0].mlp.down_proj).__name__ == layer
    if dtype:
        assert str(next(backend.model.parameters()).dtype) == f"torch.{dtype}"
    assert backend.count_tokens(backend.generate(HELLO, GenerationParams(max_new_tokens=6, temperature=0))) > 0


def test_base_plus_adapter_and_a_bare_adapter_directory(tiny_model_dir, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    adapter = tmp_path / "adapter"
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    get_peft_model(base, LoraConfig(r=4, target_modules="all-linear")).save_pretrained(adapter)  # B = 0: same outputs
    params = GenerationParams(max_new_tokens=8, temperature=0)
    plain = load_backend(str(tiny_model_dir)).generate(HELLO, params)
    for spec in (f"{tiny_model_dir}+{adapter}", str(adapter)):  # a bare adapter dir names its base itself
        backend = load_backend(spec)
        assert isinstance(backend.model, PeftModel)
        assert backend.generate(HELLO, params) == plain
