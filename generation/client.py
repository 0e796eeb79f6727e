"""One chat call through LiteLLM, with retries we control and a meter of calls, tokens and cost.

LiteLLM and the OpenAI SDK under it would retry on their own and apply timeouts per hidden attempt;
we turn that off (`max_retries=0`) and retry here, so what happens under faults is known:

* transient (timeout, 429, 5xx, dropped connection, an empty reply): retried with exponential
  backoff and jitter up to `RetryPolicy.max_retries`; a 429's Retry-After is honoured;
* fatal for the run (bad key, no permission, unknown model, a request the provider rejects):
  `FatalError` at once, so a run does not burn through a thousand failing calls;
* fatal for the record (a content-policy block): `CallFailed` at once.

A provider error is never returned as text: callers get a reply or an exception.
"""
from __future__ import annotations

import asyncio
import email.utils
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pushback.chat import Message


class FatalError(RuntimeError):
    """The run cannot go on (authentication, permission, unknown model, malformed request)."""


class CallFailed(RuntimeError):
    """One call, and so its record, failed: retries exhausted or a non-retryable refusal."""

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
    max_retries: int = 6
    base_delay: float = 0.5  # seconds before the first retry, doubled each time
    max_delay: float = 30.0  # cap on one backoff wait
    max_retry_after: float = 120.0  # a longer Retry-After is cut to this
    timeout: float = 60.0  # seconds per attempt

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with jitter: half fixed, half random, so waiters spread out."""
        ceiling = min(self.max_delay, self.base_delay * 2**attempt)
        return ceiling * (0.5 + 0.5 * rng.random())


@dataclass
class Meter:
    """What the run has spent: calls, retries by cause, tokens, and cost where LiteLLM knows the price."""

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


def _kind(error: BaseException, litellm: Any) -> str:
    """'retry:<cause>', 'fatal' (stop the run) or 'record' (give up on this record)."""
    if isinstance(error, (asyncio.TimeoutError, litellm.Timeout)):
        return "retry:timeout"
    if isinstance(error, litellm.RateLimitError):
        return "retry:429"
    if isinstance(error, litellm.ContentPolicyViolationError):
        return "record"
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


_KEY_LIKE = re.compile(r"\b(?:sk|rk|pk|hf|gsk|xai)[-_][A-Za-z0-9_*.\-]{6,}")


def redact(text: str, secret: str | None = None) -> str:
    """Provider messages may echo (part of) a key: never let one reach a log, a summary or a file."""
    if secret:
        text = text.replace(secret, "***")
    return _KEY_LIKE.sub("***", text)


def _brief(error: BaseException, secret: str | None = None) -> str:
    text = redact(" ".join(str(error).split()), secret)
    return f"{type(error).__name__}: {text[:300]}"


def _hint(error: BaseException, litellm: Any) -> str:
    if isinstance(error, litellm.AuthenticationError):
        return (" -- check the key: --api-key-env VAR, or the provider's own variable "
                "(OPENAI_API_KEY, ANTHROPIC_API_KEY ...)")
    if isinstance(error, litellm.NotFoundError):
        return " -- check the model name and --api-base"
    return ""


class ChatClient:
    """Plain-text chat completions (no tools, no response_format), so every provider works."""

    def __init__(self, model: str, *, api_base: str | None = None, api_key: str | None = None,
                 temperature: float = 0.8, policy: RetryPolicy = RetryPolicy(), seed: int = 0,
                 on_call: Callable[[], None] | None = None):
        self.litellm = import_litellm()
        self.model = model
        self.api_base = api_base
        self.api_key = api_key
        self.temperature = temperature
        self.policy = policy
        self.meter = Meter()
        self.rng = random.Random(seed)
        self.on_call = on_call or (lambda: None)

    def _kwargs(self, messages: list[Message], max_tokens: int, seed: int | None) -> dict[str, Any]:
        # drop_params: a provider that does not take `seed` (or a reasoning model that fixes its
        # temperature) gets the call without it instead of rejecting it.
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                                  "temperature": self.temperature, "timeout": self.policy.timeout,
                                  "max_retries": 0, "drop_params": True}
        if seed is not None:
            kwargs["seed"] = seed
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        elif self.api_base and self.model.startswith("openai/"):
            kwargs["api_key"] = "not-needed"  # OpenAI-compatible local servers want some key
        return kwargs

    async def complete(self, messages: list[Message], *, max_tokens: int = 400, seed: int | None = None,
                       accept: Callable[[str], str] | None = None) -> str:
        """The reply's text. `accept` cleans a reply and raises `EmptyReply` for an unusable one (retried)."""
        kwargs = self._kwargs(messages, max_tokens, seed)
        for attempt in range(self.policy.max_retries + 1):
            try:
                text = await self._attempt(kwargs)
                text = accept(text) if accept else text
                self.meter.succeeded += 1
                return text
            except asyncio.CancelledError:
                raise
            except Exception as error:  # classified below; never turned into text
                kind, brief = _kind(error, self.litellm), _brief(error, self.api_key)
                if kind == "fatal":
                    raise FatalError(f"{self.model}: {brief}{_hint(error, self.litellm)}") from error
                if kind == "record":
                    self.meter.failed_calls += 1
                    raise CallFailed(f"{self.model}: {brief}", "content_policy") from error
                cause = kind.split(":", 1)[1]
                if attempt == self.policy.max_retries:
                    self.meter.failed_calls += 1
                    message = f"{self.model}: gave up after {attempt + 1} attempts; last: {brief}"
                    raise CallFailed(message, cause) from error
                self.meter.retries[cause] += 1
                wait = self.policy.backoff(attempt, self.rng)
                asked = retry_after(error) if cause == "429" else None
                if asked is not None:  # honour it, with a little jitter so waiters do not return together
                    wait = max(wait, min(asked, self.policy.max_retry_after) * (1 + 0.1 * self.rng.random()))
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _attempt(self, kwargs: dict[str, Any]) -> str:
        self.meter.calls += 1
        self.on_call()
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
