"""The one way to call a model endpoint through LiteLLM, for the generator (many async calls) and for
the backends (a streamed reply for the Space, evaluation and the judge).

LiteLLM and the OpenAI SDK under it would retry on their own and apply timeouts per hidden attempt;
that is turned off (`max_retries=0`) and done here, so what happens under faults is known:

* transient (timeout, 429, 5xx, dropped connection, an empty reply): retried with exponential
  backoff and jitter up to `RetryPolicy.max_retries`; a 429's Retry-After is honoured;
* fatal (bad key, no permission, unknown model, a request the provider rejects): `FatalError` at
  once, so a run does not burn through a thousand failing calls;
* refused for this request only (a content-policy block): `CallFailed` at once.

A provider error is never returned as text: callers get a reply or an exception, and every message
that leaves here is redacted (`pushback.redaction`). A stream is retried only before its first chunk.
"""
from __future__ import annotations

import asyncio
import email.utils
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pushback.redaction import redact
from pushback.thinking import CLOSE_TAG, OPEN_TAG

Message = dict[str, Any]


class EndpointError(RuntimeError):
    """A call that did not give a reply; the message is already redacted."""


class FatalError(EndpointError):
    """Retrying cannot help (authentication, permission, unknown model, malformed request)."""


class CallFailed(EndpointError):
    """One call failed: retries exhausted, a non-retryable refusal, or a stream that broke off."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


class EmptyReply(RuntimeError):
    """The provider answered with nothing usable (`cause`: empty, declined ...); retried like a transient fault."""

    def __init__(self, message: str, cause: str = "empty"):
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 6  # retries after the first attempt; 0: one attempt only
    base_delay: float = 0.5  # seconds before the first retry, doubled each time
    max_delay: float = 30.0  # cap on one backoff wait
    max_retry_after: float = 120.0  # a longer Retry-After is cut to this
    timeout: float = 60.0  # seconds per attempt; there is no "no limit"

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be a whole number, 0 or more (got {self.max_retries!r})")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be more than 0 seconds (got {self.timeout!r})")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must be 0 or more")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with jitter: half fixed, half random, so waiters spread out."""
        ceiling = min(self.max_delay, self.base_delay * 2**attempt)
        return ceiling * (0.5 + 0.5 * rng.random())


@dataclass
class Meter:
    """What the calls have spent: calls, retries by cause, tokens, and cost where LiteLLM knows the price."""

    calls: int = 0
    succeeded: int = 0
    failed_calls: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    priced_calls: int = 0  # calls LiteLLM could price; cost is partial if fewer than `calls`

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost_known(self) -> bool:
        return self.calls > 0 and self.priced_calls == self.calls

    @classmethod
    def total(cls, meters: Iterable[Meter]) -> Meter:
        """The sum of several meters (one per worker process)."""
        total = cls()
        for meter in meters:
            total.calls += meter.calls
            total.succeeded += meter.succeeded
            total.failed_calls += meter.failed_calls
            total.retries.update(meter.retries)
            total.prompt_tokens += meter.prompt_tokens
            total.completion_tokens += meter.completion_tokens
            total.cost += meter.cost
            total.priced_calls += meter.priced_calls
        return total

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "succeeded": self.succeeded, "failed_calls": self.failed_calls,
                "retries": dict(self.retries),
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cost_usd": round(self.cost, 6) if self.priced_calls else None,
                "cost_complete": self.cost_known}


def import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download at import
    import litellm

    litellm.suppress_debug_info = True  # otherwise every exception prints a help banner to stdout
    return litellm


def classify(error: BaseException, litellm: Any) -> str:
    """'retry:<cause>', 'fatal' (stop) or 'refused' (give up on this request only)."""
    if isinstance(error, (asyncio.TimeoutError, litellm.Timeout)):
        return "retry:timeout"
    if isinstance(error, litellm.RateLimitError):
        return "retry:429"
    if isinstance(error, litellm.ContentPolicyViolationError):
        return "refused"
    if isinstance(error, (litellm.AuthenticationError, litellm.PermissionDeniedError, litellm.NotFoundError,
                          litellm.BadRequestError, litellm.UnprocessableEntityError)):
        return "fatal"
    if isinstance(error, EmptyReply):
        return f"retry:{error.cause}"
    if isinstance(error, litellm.APIConnectionError) or "connection error" in str(error).lower():
        return "retry:connection"  # LiteLLM reports a refused or dropped connection as a 500
    if isinstance(error, (litellm.InternalServerError, litellm.ServiceUnavailableError, litellm.BadGatewayError)):
        return "retry:5xx"
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and (status >= 500 or status in (408, 409)):
        return "retry:5xx"
    if isinstance(error, (ConnectionError, OSError)):
        return "retry:connection"
    return "fatal"


def retry_after(error: BaseException) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, or `retry-after` as seconds or a date)."""
    headers = getattr(error, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(error, "response", None), "headers", None)
    if not headers:
        return None
    if headers.get("retry-after-ms"):
        try:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        return max(0.0, email.utils.mktime_tz(parsed) - time.time()) if parsed else None


def _hint(error: BaseException, litellm: Any) -> str:
    if isinstance(error, litellm.AuthenticationError):
        return (" -- check the key: --api-key-env VAR (or @api_key_env=VAR in a model spec), or the provider's "
                "own variable (OPENAI_API_KEY, ANTHROPIC_API_KEY ...)")
    if isinstance(error, litellm.NotFoundError):
        return " -- check the model name and the api base"
    return ""


class Endpoint:
    """Plain-text chat completions (no tools, no response_format), so every provider works.

    `complete` (async) returns a whole reply; `stream` (sync) yields its text as it arrives, with a
    reasoning channel (DeepSeek, Ollama thinking models) wrapped back into a `<think>` block."""

    def __init__(self, model: str, *, api_base: str | None = None, api_key: str | None = None,
                 temperature: float = 0.8, policy: RetryPolicy = RetryPolicy(), seed: int = 0,
                 name: str | None = None, on_call: Callable[[], None] | None = None):
        self.litellm = import_litellm()
        self.model = model
        self.name = name or model  # how messages name it (a model spec, for the backends)
        self.api_base = api_base
        self.api_key = api_key
        self.temperature = temperature
        self.policy = policy
        self.meter = Meter()
        self.rng = random.Random(seed)
        self.on_call = on_call or (lambda: None)
        self._lock = threading.Lock()  # the meter and the jitter, when threads stream at once

    @property
    def secrets(self) -> tuple[str | None, ...]:
        """What must never be shown: the key, and a password in the endpoint's URL."""
        password = urlsplit(self.api_base).password if self.api_base else None
        return self.api_key, password

    def redact(self, text: str) -> str:
        return redact(text, *self.secrets)

    def request(self, messages: list[Message], *, max_tokens: int, temperature: float | None = None,
                seed: int | None = None) -> dict[str, Any]:
        """LiteLLM's arguments for one call; the SDK's own retries off."""
        # drop_params: a provider that does not take `seed` (or a reasoning model that fixes its
        # temperature) gets the call without it instead of rejecting it.
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                                  "temperature": self.temperature if temperature is None else temperature,
                                  "timeout": self.policy.timeout, "max_retries": 0, "drop_params": True}
        if seed is not None:
            kwargs["seed"] = seed
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        elif self.api_base and self.model.startswith("openai/"):
            # The OpenAI SDK wants some key even for a local server; other providers keep reading theirs.
            kwargs["api_key"] = "not-needed"
        return kwargs

    def describe(self, error: BaseException) -> str:
        text = self.redact(" ".join(str(error).split()))
        return f"{type(error).__name__}: {text[:300]}"

    def _failure(self, error: BaseException, attempt: int) -> float:
        """After a failed attempt: raise if the call is over (fatal, refused, retries spent), else the
        seconds to wait before the next attempt. `from None`: the provider's own message, unredacted,
        must not ride along on the exception."""
        kind, brief = classify(error, self.litellm), self.describe(error)
        if kind == "fatal":
            raise FatalError(self.redact(f"{self.name}: {brief}{_hint(error, self.litellm)}")) from None
        with self._lock:
            if kind == "refused":
                self.meter.failed_calls += 1
                raise CallFailed(self.redact(f"{self.name}: {brief}"), "content_policy") from None
            cause = kind.split(":", 1)[1]
            if attempt >= self.policy.max_retries:
                self.meter.failed_calls += 1
                message = f"{self.name}: gave up after {attempt + 1} attempts; last: {brief}"
                raise CallFailed(self.redact(message), cause) from None
            self.meter.retries[cause] += 1
            wait = self.policy.backoff(attempt, self.rng)
            asked = retry_after(error) if cause == "429" else None
            if asked is not None:  # honour it, with a little jitter so waiters do not return together
                wait = max(wait, min(asked, self.policy.max_retry_after) * (1 + 0.1 * self.rng.random()))
        return wait

    def _counted(self) -> None:
        with self._lock:
            self.meter.calls += 1
        self.on_call()

    # --- a whole reply, async (the generator) --------------------------------------------------------

    async def complete(self, messages: list[Message], *, max_tokens: int = 400, seed: int | None = None,
                       accept: Callable[[str], str] | None = None) -> str:
        """The reply's text. `accept` cleans a reply and raises `EmptyReply` for an unusable one (retried)."""
        kwargs = self.request(messages, max_tokens=max_tokens, seed=seed)
        attempt = 0
        while True:  # ends with a reply, or with the exception `_failure` raises
            try:
                text = await self._attempt(kwargs)
                text = accept(text) if accept else text
                self.meter.succeeded += 1
                return text
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - classified by `_failure`; never turned into text
                wait = self._failure(error, attempt)
            await asyncio.sleep(wait)
            attempt += 1

    async def _attempt(self, kwargs: dict[str, Any]) -> str:
        self._counted()
        # The SDK's own timeout should fire first; this guard also covers a stalled body read.
        response = await asyncio.wait_for(self.litellm.acompletion(**kwargs), self.policy.timeout + 5)
        usage = getattr(response, "usage", None)
        if usage is not None:
            self.meter.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
            self.meter.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
        cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        if cost is not None:
            self.meter.cost += float(cost)
            self.meter.priced_calls += 1
        choices = getattr(response, "choices", None) or []
        message = getattr(choices[0], "message", None) if choices else None
        text = (getattr(message, "content", None) or "") if message is not None else ""
        reasoning = getattr(message, "reasoning_content", None) if message is not None else None
        if not text.strip() and reasoning:
            raise EmptyReply("the model returned reasoning but no answer (raise max_tokens?)")
        if not text.strip():
            raise EmptyReply("empty reply")
        return text

    # --- a streamed reply, sync (the backends) ---------------------------------------------------------

    def stream(self, messages: list[Message], *, max_tokens: int, temperature: float | None = None,
               seed: int | None = None, stop: threading.Event | None = None) -> Iterator[str]:
        """Text deltas of one reply. Faults before the first delta are retried by the policy; a stream that
        breaks off after it raises `CallFailed` (what was shown cannot be taken back). Stops when `stop` is set."""
        stop = stop or threading.Event()
        kwargs = self.request(messages, max_tokens=max_tokens, temperature=temperature, seed=seed)
        attempt = 0
        while True:  # ends with the whole reply, a stop, or the exception `_failure` raises
            self._counted()
            response, started, finished = None, False, False
            try:
                response = self.litellm.completion(stream=True, **kwargs)
                for text in _deltas(response, stop):
                    started = True
                    yield text
                finished = not stop.is_set()
                with self._lock:
                    self.meter.succeeded += 1
                return
            except Exception as error:  # noqa: BLE001 - classified by `_failure`; never turned into text
                if started:
                    with self._lock:
                        self.meter.failed_calls += 1
                    raise CallFailed(self.redact(f"{self.name}: the reply broke off: {self.describe(error)}"),
                                     "broken") from None
                wait = self._failure(error, attempt)
            finally:
                if response is not None and not finished:  # stopped, abandoned or failed: free the connection
                    _close(response)
            if stop.wait(wait):
                return
            attempt += 1


def _deltas(response: Any, stop: threading.Event) -> Iterator[str]:
    in_reasoning = False
    for part in response:
        if stop.is_set():
            return
        if not part.choices:
            continue
        delta = part.choices[0].delta
        # Providers that return reasoning apart (DeepSeek, Ollama thinking models): re-wrap it.
        reasoning = getattr(delta, "reasoning_content", None)
        if reasoning:
            if not in_reasoning:
                in_reasoning = True
                yield OPEN_TAG
            yield reasoning
        if delta.content:
            if in_reasoning:
                in_reasoning = False
                yield CLOSE_TAG
            yield delta.content
    if in_reasoning:
        yield CLOSE_TAG


def _close(response: Any) -> None:
    close = getattr(response, "close", None) or getattr(getattr(response, "completion_stream", None), "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # noqa: BLE001, S110 - closing a broken connection may fail too; nothing to keep
            pass
