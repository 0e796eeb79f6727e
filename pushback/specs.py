"""Model specs: one string names a model everywhere (Space, evaluation, CLI).

    Qwen/Qwen2.5-0.5B-Instruct                  a Hub id
    ./runs/merged                               a local directory
    Qwen/Qwen2.5-0.5B-Instruct+user/adapter     a base plus a LoRA adapter
    litellm:ollama_chat/qwen2.5                 any LiteLLM provider
    pocket:baseline, pocket:friction            the offline pair built by `pushback pocket`
    ...@4bit @8bit @bf16 @fp16 @fp32            precision / quantisation
    ...@system=friction (or plain, or any text) the system prompt
    ...@api_base=http://host:port/v1            endpoint for a litellm: spec
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["hub", "local", "litellm", "pocket"]
POCKET_MODELS = ("baseline", "friction")
PRECISIONS = ("4bit", "8bit", "bf16", "fp16", "fp32")
_VALUED_OPTIONS = ("system", "api_base", "api_key_env")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class SpecError(ValueError):
    """A model spec that cannot mean anything; the message says which part and why."""


@dataclass(frozen=True)
class ModelSpec:
    raw: str
    kind: Kind
    model: str  # Hub id, local path, LiteLLM model string, or pocket name
    adapter: str | None = None
    precision: str | None = None  # None: the backend picks (4-bit on CUDA, full precision on CPU)
    system: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None

    @property
    def label(self) -> str:
        """A short name for columns, reports and cards."""
        name = self.model if self.kind != "pocket" else f"pocket:{self.model}"
        if self.kind == "litellm":
            name = f"litellm:{self.model}"
        if self.adapter:
            name += f"+{self.adapter}"
        return name + "".join(f"@{o}" for o in (self.precision, self.system and f"system={self.system}") if o)


def _looks_like_path(text: str) -> bool:
    return text.startswith(("/", "./", "../", "~")) or Path(text).expanduser().exists()


def _check_model_name(name: str, part: str, raw: str) -> Kind:
    if not name:
        raise SpecError(f"model spec {raw!r}: the {part} is empty")
    if _looks_like_path(name):
        return "local"
    if not _HUB_ID.match(name):
        raise SpecError(
            f"model spec {raw!r}: the {part} {name!r} is neither an existing directory nor a Hub id like 'owner/name'"
        )
    return "hub"


def parse_spec(raw: str) -> ModelSpec:
    """Parse a model spec string; raise `SpecError` naming the malformed part."""
    text = (raw or "").strip()
    if not text:
        raise SpecError("model spec is empty: give a Hub id, a directory, base+adapter, litellm:MODEL or pocket:NAME")
    body, *options = text.split("@")
    body = body.strip()
    fields: dict[str, str | None] = {}
    for option in options:
        option = option.strip()
        key, has_value, value = option.partition("=")
        if not has_value and key in PRECISIONS:
            if fields.get("precision"):
                raise SpecError(f"model spec {raw!r}: two precisions given (@{fields['precision']} and @{key})")
            fields["precision"] = key
        elif has_value and key in _VALUED_OPTIONS and value.strip():
            fields[key] = value.strip()
        else:
            known = ", ".join([f"@{p}" for p in PRECISIONS] + [f"@{k}=..." for k in _VALUED_OPTIONS])
            raise SpecError(f"model spec {raw!r}: unknown or empty option @{option!r}; known options: {known}")

    scheme, colon, rest = body.partition(":")
    if colon and scheme == "pocket":
        if rest not in POCKET_MODELS:
            raise SpecError(f"model spec {raw!r}: unknown pocket model {rest!r}; choose pocket:baseline or pocket:friction")
        kind, model, adapter = "pocket", rest, None
    elif colon and scheme == "litellm":
        if not rest.strip():
            raise SpecError(f"model spec {raw!r}: litellm: needs a model, e.g. litellm:ollama_chat/qwen2.5")
        kind, model, adapter = "litellm", rest.strip(), None
    else:
        if colon and not _looks_like_path(body) and "/" not in scheme:
            raise SpecError(f"model spec {raw!r}: unknown scheme {scheme!r}: (known: litellm:, pocket:)")
        base, plus, adapter_part = body.partition("+")
        kind = _check_model_name(base.strip(), "base model", raw)
        if plus:
            _check_model_name(adapter_part.strip(), "adapter", raw)
        model, adapter = base.strip(), (adapter_part.strip() if plus else None)
    if kind == "litellm" and fields.get("precision"):
        raise SpecError(f"model spec {raw!r}: @{fields['precision']} applies to local weights, not to a litellm: endpoint")
    if kind != "litellm" and (fields.get("api_base") or fields.get("api_key_env")):
        raise SpecError(f"model spec {raw!r}: @api_base/@api_key_env apply only to litellm: specs")
    return ModelSpec(raw=text, kind=kind, model=model, adapter=adapter, **fields)  # type: ignore[arg-type]
