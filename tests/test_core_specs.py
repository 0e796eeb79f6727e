"""Model-spec strings: every form of DESIGN.md, and clear errors for malformed ones."""
from __future__ import annotations

import pytest

from pushback.specs import SpecError, parse_spec


@pytest.mark.parametrize("raw, kind, model, adapter, precision, system", [
    ("Qwen/Qwen2.5-0.5B-Instruct", "hub", "Qwen/Qwen2.5-0.5B-Instruct", None, None, None),
    ("gpt2", "hub", "gpt2", None, None, None),
    ("Qwen/Qwen2.5-0.5B-Instruct+user/friction-adapter", "hub", "Qwen/Qwen2.5-0.5B-Instruct", "user/friction-adapter", None, None),
    ("Qwen/Qwen2.5-0.5B-Instruct+user/friction-adapter@4bit", "hub", "Qwen/Qwen2.5-0.5B-Instruct", "user/friction-adapter", "4bit", None),
    ("litellm:ollama_chat/qwen2.5", "litellm", "ollama_chat/qwen2.5", None, None, None),
    ("pocket:baseline", "pocket", "baseline", None, None, None),
    ("pocket:baseline@system=friction", "pocket", "baseline", None, None, "friction"),
    ("org/model@bf16@system=Be brief.", "hub", "org/model", None, "bf16", "Be brief."),
    ("./runs/merged@8bit", "local", "./runs/merged", None, "8bit", None),
])
def test_valid_specs(raw, kind, model, adapter, precision, system):
    spec = parse_spec(raw)
    assert (spec.kind, spec.model, spec.adapter, spec.precision, spec.system) == (kind, model, adapter, precision, system)


def test_local_directory_and_endpoint(tmp_path):
    spec = parse_spec(f"{tmp_path}+{tmp_path}")
    assert spec.kind == "local" and spec.adapter == str(tmp_path)
    spec = parse_spec("litellm:openai/qwen@api_base=http://127.0.0.1:8000/v1@api_key_env=MY_KEY")
    assert (spec.api_base, spec.api_key_env) == ("http://127.0.0.1:8000/v1", "MY_KEY")
    assert parse_spec("pocket:friction").label == "pocket:friction"


@pytest.mark.parametrize("raw, message", [
    ("", "empty"),
    ("pocket:large", "unknown pocket model 'large'"),
    ("has spaces in it", "neither an existing directory nor a Hub id"),
    ("a/b/c", "neither an existing directory nor a Hub id"),
    ("org/model@5bit", "unknown or empty option"),
    ("org/model@system=", "unknown or empty option"),
    ("org/model@4bit@bf16", "two precisions"),
    ("litellm:", "needs a model"),
    ("litellm:openai/x@4bit", "applies to local weights"),
    ("org/model@api_base=http://x", "apply only to litellm"),
    ("ftp:thing", "unknown scheme 'ftp'"),
    ("+org/adapter", "base model is empty"),
    ("org/model+", "adapter is empty"),
])
def test_malformed_specs_say_what_is_wrong(raw, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(raw)
