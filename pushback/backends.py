"""Load any model spec and stream its replies: local/Hub weights (optionally + LoRA adapter, 4-bit,
8-bit, bf16), the offline pocket pair, or any LiteLLM provider. Used by the Space, evaluation and
the pocket build's quality check alike. Heavy imports happen inside the functions that need them.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from pushback.chat import (CHAT_TEMPLATE, SYSTEM_PLAIN, Message, opens_think, prompt_ids, prompt_text,
                           stop_token_ids, system_prompt)
from pushback.endpoint import Endpoint, EndpointError, FatalError, RetryPolicy
from pushback.pocket import pocket_dir
from pushback.specs import ModelSpec, parse_spec
from pushback.thinking import OPEN_TAG


def load_once(fn: Callable) -> Callable:
    """Cache a loader by its arguments; concurrent first calls with the same arguments load once.
    Failures are not cached."""
    cache: dict[tuple, Any] = {}
    locks: dict[tuple, threading.Lock] = {}
    guard = threading.Lock()

    @wraps(fn)
    def wrapper(*args: Any) -> Any:
        with guard:
            lock = locks.setdefault(args, threading.Lock())
        with lock:
            if args not in cache:
                cache[args] = fn(*args)
            return cache[args]

    wrapper.cache_clear = cache.clear  # type: ignore[attr-defined]
    wrapper.is_cached = lambda *args: args in cache  # type: ignore[attr-defined]
    return wrapper


class BackendError(RuntimeError):
    """A model that cannot be loaded or called; the message says which spec and why. `fatal`: retrying
    cannot help (a bad key, an unknown model), so a caller that retries should stop."""

    def __init__(self, message: str, *, fatal: bool = False):
        super().__init__(message)
        self.fatal = fatal


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    repetition_penalty: float = 1.1
    seed: int | None = None

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0


class TextStream:
    """Text deltas of one reply. `opened` tells the `<think>` parser whether the prompt opened the block."""

    def __init__(self, chunks: Iterator[str], *, opened: bool, stop: threading.Event):
        self._chunks = chunks
        self.opened = opened
        self.stop_event = stop

    def __iter__(self) -> Iterator[str]:
        return self._chunks

    def stop(self) -> None:
        self.stop_event.set()

    def text(self) -> str:
        return "".join(self)


def with_system(messages: Sequence[Message], system: str | None) -> list[Message]:
    """Put the spec's system prompt first, replacing any the caller sent."""
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    given = next((m["content"] for m in messages if m.get("role") == "system"), None)
    chosen = system_prompt(system) or given or SYSTEM_PLAIN  # the prompt our models were trained with
    return [{"role": "system", "content": chosen}, *rest]


class Backend:
    spec: ModelSpec

    @property
    def label(self) -> str:
        return self.spec.label

    def stream(self, messages: Sequence[Message], params: GenerationParams = GenerationParams(),
               stop: threading.Event | None = None) -> TextStream:
        raise NotImplementedError

    def generate(self, messages: Sequence[Message], params: GenerationParams = GenerationParams()) -> str:
        return self.stream(messages, params).text()

    def generate_batch(self, conversations: Sequence[Sequence[Message]],
                       params: GenerationParams = GenerationParams()) -> list[str]:
        return [self.generate(c, params) for c in conversations]

    def count_tokens(self, text: str) -> int:
        return len(text.split())


# --- local weights (Hub id, directory, base+adapter, pocket) --------------------------------------


DEVICE_VARIABLE = "PUSHBACK_DEVICE"  # `cpu` keeps local weights on the CPU even where a GPU is visible


def _device() -> str:
    import torch

    if os.environ.get(DEVICE_VARIABLE) == "cpu":
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}  # our names -> torch's


def torch_dtype(name: str):
    """The torch dtype for `bf16`, `fp16` or `fp32`."""
    import torch

    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return getattr(torch, DTYPES[name])


def quantization_kwargs(precision: str | None, device: str) -> dict[str, Any]:
    """from_pretrained kwargs for a precision: 4-bit NF4 on CUDA by default, full precision on CPU."""
    import torch

    precision = precision or ("4bit" if device == "cuda" else "fp32")
    compute = torch.bfloat16 if device == "cuda" else torch.float32
    if precision == "4bit":
        from transformers import BitsAndBytesConfig

        return {"quantization_config": BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute,
            bnb_4bit_use_double_quant=True), "dtype": compute}
    if precision == "8bit":
        from transformers import BitsAndBytesConfig

        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True), "dtype": compute}
    return {"dtype": torch_dtype(precision)}


def resolve_weights(spec: ModelSpec) -> tuple[str, str | None]:
    """(base, adapter) locations for a spec; a bare adapter directory names its own base."""
    if spec.kind == "pocket":
        path = pocket_dir() / spec.model
        if not (path / "config.json").exists():
            raise BackendError(f"{spec.raw}: the pocket pair is not built yet at {path}; run `pushback pocket`")
        return str(path), None
    base = str(Path(spec.model).expanduser()) if spec.kind == "local" else spec.model
    adapter_config = Path(base) / "adapter_config.json"
    if spec.adapter is None and adapter_config.exists():
        return json.loads(adapter_config.read_text())["base_model_name_or_path"], base
    return base, spec.adapter


def _stop_criteria(*events: threading.Event):
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopOnEvent(StoppingCriteria):
        """Ends `generate` itself when Stop is pressed (closing the stream alone would not)."""

        def __call__(self, input_ids, scores, **kwargs):
            stopped = any(event.is_set() for event in events)
            return torch.full((input_ids.shape[0],), stopped, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopOnEvent()])


# transformers' `from_pretrained` (and its lazy imports) is not thread-safe: two models loading in
# parallel threads came out with weights left on the meta device (NaN sampling) or "cannot import
# name" errors. Local weights therefore load one at a time; endpoint backends never take this lock.
_FROM_PRETRAINED = threading.Lock()


@load_once
def load_weights(base: str, adapter: str | None, precision: str | None) -> tuple[Any, Any]:
    """(model, tokenizer), loaded once per process: columns that share weights share memory."""
    with _FROM_PRETRAINED:
        return _load_weights(base, adapter, precision)


def _load_weights(base: str, adapter: str | None, precision: str | None) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = _device()
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(adapter or base)  # an adapter dir carries our template
        except (OSError, ValueError):
            tokenizer = AutoTokenizer.from_pretrained(base)
        kwargs = quantization_kwargs(precision, device)
        if "quantization_config" in kwargs or device == "cuda":
            kwargs["device_map"] = {"": 0} if device == "cuda" else {"": "cpu"}
        model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
    except (OSError, ValueError, ImportError, RuntimeError) as e:
        where = f"{base}+{adapter}" if adapter else base
        raise BackendError(f"cannot load {where} ({type(e).__name__}: {e})") from e
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # decoder-only batches pad on the left
    return model.eval(), tokenizer


class TransformersBackend(Backend):
    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.model, self.tokenizer = load_weights(*resolve_weights(spec), spec.precision)
        # Stop on the end of the turn as well as on EOS: chat models end turns with their own token.
        self.end_ids = stop_token_ids(self.tokenizer)

    def _prompts(self, conversations: Sequence[Sequence[Message]]) -> tuple[list[str], Any]:
        """(prompt texts, model inputs). The inputs encode message text as text (`prompt_ids`); the texts
        only tell whether the template opened `<think>`."""
        conversations = [with_system(c, self.spec.system) for c in conversations]
        texts = [prompt_text(self.tokenizer, c) for c in conversations]
        return texts, prompt_ids(self.tokenizer, conversations).to(self.model.device)

    def _generate_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "eos_token_id": self.end_ids,
                                  "pad_token_id": self.tokenizer.pad_token_id, "do_sample": params.do_sample,
                                  "repetition_penalty": params.repetition_penalty}
        if params.do_sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        return kwargs

    def stream(self, messages: Sequence[Message], params: GenerationParams = GenerationParams(),
               stop: threading.Event | None = None) -> TextStream:
        import torch
        from transformers import TextIteratorStreamer

        stop = stop or threading.Event()
        (prompt,), inputs = self._prompts([messages])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        errors: list[BaseException] = []
        abandoned = threading.Event()  # this reader left early; `stop` may be shared with other streams

        def run() -> None:
            try:
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                with torch.inference_mode():
                    self.model.generate(**inputs, streamer=streamer, stopping_criteria=_stop_criteria(stop, abandoned),
                                        **self._generate_kwargs(params))
            except BaseException as e:  # surfaced to the reader below, not lost in the thread
                errors.append(e)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True, name=f"generate:{self.label}")
        thread.start()

        def chunks() -> Iterator[str]:
            try:
                for chunk in streamer:
                    if chunk:
                        yield chunk
            finally:
                abandoned.set()  # a reader that leaves early stops its generation too
                thread.join(timeout=60)
            if errors:
                raise BackendError(f"{self.spec.raw}: generation failed ({type(errors[0]).__name__}: {errors[0]})")

        return TextStream(chunks(), opened=opens_think(prompt), stop=stop)

    def generate_batch(self, conversations: Sequence[Sequence[Message]],
                       params: GenerationParams = GenerationParams()) -> list[str]:
        """One padded `generate` call for many prompts (left padding, as decoder-only models need)."""
        import torch

        prompts, inputs = self._prompts(conversations)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **self._generate_kwargs(params))
        texts = self.tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        # A template that opened <think> in the prompt: put the tag back so every caller parses the same way.
        return [(OPEN_TAG + t if opens_think(p) else t) for p, t in zip(prompts, texts)]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0


# --- LiteLLM (Ollama, vLLM, TGI, OpenAI, ...) ------------------------------------------------------

# A person (Space) or a run (eval, judge) waits on each reply: a few quick retries, then a clear error.
ENDPOINT_POLICY = RetryPolicy(max_retries=2, base_delay=0.5, max_delay=4.0, max_retry_after=10.0, timeout=120.0)


class LiteLLMBackend(Backend):
    """A `litellm:` spec, called through `pushback.endpoint` (its retries, timeout and redaction)."""

    def __init__(self, spec: ModelSpec, policy: RetryPolicy = ENDPOINT_POLICY):
        self.spec = spec
        api_key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
        if spec.api_key_env and not api_key:
            raise BackendError(f"{spec.raw}: environment variable {spec.api_key_env} is not set", fatal=True)
        self.endpoint = Endpoint(spec.model, api_base=spec.api_base, api_key=api_key, policy=policy, name=spec.raw)

    def stream(self, messages: Sequence[Message], params: GenerationParams = GenerationParams(),
               stop: threading.Event | None = None) -> TextStream:
        stop = stop or threading.Event()
        deltas = self.endpoint.stream(with_system(messages, self.spec.system), max_tokens=params.max_new_tokens,
                                      temperature=params.temperature, seed=params.seed, stop=stop)

        def chunks() -> Iterator[str]:
            try:
                yield from deltas
            except EndpointError as e:  # already redacted and naming the spec
                raise BackendError(str(e), fatal=isinstance(e, FatalError)) from None
            finally:
                deltas.close()

        return TextStream(chunks(), opened=False, stop=stop)


# --- loading ----------------------------------------------------------------------------------


@load_once
def _load(raw: str) -> Backend:
    spec = parse_spec(raw)
    if spec.kind == "litellm":
        return LiteLLMBackend(spec)
    return TransformersBackend(spec)


def load_backend(spec: str | ModelSpec) -> Backend:
    """A backend for a spec; loaded once per process and shared (Space columns, evaluation runs)."""
    return _load(spec.raw if isinstance(spec, ModelSpec) else parse_spec(spec).raw)


def is_loaded(spec: str | ModelSpec) -> bool:
    """Whether `load_backend(spec)` would return at once (the model is loaded in this process)."""
    return _load.is_cached(spec.raw if isinstance(spec, ModelSpec) else parse_spec(spec).raw)


def clear_loaded() -> None:
    """Forget every loaded model, e.g. after rebuilding weights at the same path in this process."""
    _load.cache_clear()
    load_weights.cache_clear()


def device_summary() -> str:
    import torch

    if torch.cuda.is_available():
        return f"CUDA ({torch.cuda.get_device_name(0)})"
    return f"CPU ({os.cpu_count()} cores)"
