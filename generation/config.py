"""What a `pushback generate` run is asked to do: its settings, checked before anything else happens,
and how many worker processes `--workers auto` means."""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pushback.endpoint import RetryPolicy

RECORDS_PER_WORKER = 16  # `--workers auto`: one process per this many records in flight (measured: bench/generation.py)
WORKERS_PER_CPU = 2  # `--workers auto` at most; more only compete for the cores (measured: bench/generation.py)


@dataclass
class GenerateConfig:
    model: str
    out: Path
    n: int
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)  # the value; never printed or saved
    api_key_env: str | None = None  # its name, which may be saved
    concurrency: int = 16
    categories: list[str] | None = None
    twins: bool = False
    temperature: float = 0.8
    seed: int = 0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    templates_dir: str | None = None
    few_shot: int = 2
    progress: bool = True
    workers: int | None = None  # worker processes; None: auto (`auto_workers`)
    start_method: str | None = None  # multiprocessing start method; None: `generation.workers.default_start_method`

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers is not None else auto_workers(self.concurrency)

    def public(self) -> dict[str, Any]:
        """Settings fit for a stats file: no key, no credentials in the URL."""
        return {"model": self.model, "api_base": _without_credentials(self.api_base), "api_key_env": self.api_key_env,
                "n": self.n, "out": str(self.out), "concurrency": self.concurrency, "workers": self.worker_count,
                "categories": self.categories,
                "twins": self.twins, "temperature": self.temperature, "seed": self.seed,
                "timeout_s": self.policy.timeout, "max_retries": self.policy.max_retries,
                "templates": self.templates_dir, "few_shot": self.few_shot}


def _without_credentials(url: str | None) -> str | None:
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username or parts.password:
        parts = parts._replace(netloc=(parts.hostname or "") + (f":{parts.port}" if parts.port else ""))
    return urlunsplit(parts._replace(query=""))


def available_cpus() -> int:
    """CPUs this process may run on (a container or `taskset` may allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def auto_workers(concurrency: int) -> int:
    """One process per RECORDS_PER_WORKER records in flight, at most WORKERS_PER_CPU per CPU.

    A LiteLLM call costs a few ms of Python CPU, and LiteLLM builds each request in a thread of the
    event loop's executor: the more calls one process has in flight, the longer each waits for its
    turn, long before the process uses a whole core. Several smaller pools per core keep those waits
    short; past about two per core they only compete for the cores."""
    return max(1, min(WORKERS_PER_CPU * available_cpus(), math.ceil(concurrency / RECORDS_PER_WORKER)))


def parse_workers(text: str | int | None) -> int | None:
    """`--workers`: a positive number, or "auto" (None)."""
    if text is None or str(text).strip().lower() == "auto":
        return None
    try:
        workers = int(text)
    except ValueError:
        raise ValueError(f"--workers: expected a number or auto, got {text!r}") from None
    if workers < 1:
        raise ValueError(f"--workers must be at least 1 (got {workers})")
    return workers


def check_config(config: GenerateConfig) -> None:
    """Every setting that cannot work, named by its flag, before a file is touched or a call made."""
    if config.n < 1 or config.concurrency < 1:
        raise ValueError(f"--n and --concurrency must be at least 1 (got {config.n} and {config.concurrency})")
    if config.workers is not None and not 1 <= config.workers <= config.concurrency:
        raise ValueError(f"--workers must be between 1 and --concurrency ({config.concurrency}): each worker needs "
                         f"at least one record in flight (got {config.workers})")
    if config.few_shot < 0:
        raise ValueError(f"--few-shot must be 0 or more (got {config.few_shot})")
    if not config.temperature >= 0:  # the upper limit is the provider's (1 for some, 2 for others)
        raise ValueError(f"--temperature must be 0 or more (got {config.temperature})")


def retry_policy(max_retries: int, timeout: float) -> RetryPolicy:
    """The policy for `--max-retries` and `--timeout`, with errors that name the flags."""
    if max_retries < 0:
        raise ValueError(f"--max-retries must be 0 or more (got {max_retries}); 0 means one attempt per call")
    if not timeout > 0 or math.isinf(timeout):
        raise ValueError(f"--timeout must be a number of seconds above 0 (got {timeout}); there is no 'no limit'")
    return RetryPolicy(max_retries=max_retries, timeout=timeout)


def config_from_args(args: argparse.Namespace) -> GenerateConfig:
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ValueError(f"--api-key-env: environment variable {args.api_key_env} is not set or empty")
    return GenerateConfig(
        model=args.model, out=Path(args.out), n=args.n, api_base=args.api_base, api_key=api_key,
        api_key_env=args.api_key_env, concurrency=args.concurrency, categories=args.categories, twins=args.twins,
        temperature=args.temperature, seed=args.seed, policy=retry_policy(args.max_retries, args.timeout),
        templates_dir=args.templates, few_shot=args.few_shot, workers=parse_workers(args.workers))
