"""Which models the Space compares, and its limits: from env vars or a YAML file.

    PUSHBACK_BASELINE=Qwen/Qwen2.5-0.5B-Instruct
    PUSHBACK_FRICTION=Qwen/Qwen2.5-0.5B-Instruct+you/friction-lora
    PUSHBACK_CONFIG=space.yaml        (any field below; env vars win)

With nothing configured the offline pocket pair is used.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

import yaml

from pushback.backends import GenerationParams
from pushback.specs import SpecError, parse_spec

ENV_KEYS = {"baseline": "PUSHBACK_BASELINE", "friction": "PUSHBACK_FRICTION",
            "feedback_repo": "PUSHBACK_FEEDBACK_REPO", "feedback_dir": "PUSHBACK_FEEDBACK_DIR"}


@dataclass(frozen=True)
class SpaceConfig:
    baseline: str = "pocket:baseline"
    friction: str = "pocket:friction"
    prompted_column: bool = True  # a third column: the baseline prompted with the friction system prompt
    max_prompt_chars: int = 2000
    max_turns: int = 6
    max_new_tokens: int = 384
    temperature: float = GenerationParams.temperature
    concurrency: int = 4  # conversations generating at once; more wait in the queue
    cpu_threads: int = 1  # torch threads per generation on CPU: the columns already generate in parallel
    queue_size: int = 64
    feedback_dir: str = "feedback"
    feedback_repo: str | None = None  # a Hub dataset for votes, used only on Spaces
    configured: bool = False  # False: nothing was set, the pocket pair stands in

    @property
    def uses_pocket(self) -> bool:
        return any(spec.startswith("pocket:") for spec in (self.baseline, self.friction))

    @property
    def prompted(self) -> str:
        """The baseline spec with the friction system prompt (unless the spec sets its own)."""
        try:
            has_system = parse_spec(self.baseline).system is not None
        except SpecError:
            return self.baseline  # the column shows the spec error
        return self.baseline if has_system else f"{self.baseline}@system=friction"

    def columns(self) -> dict[str, tuple[str, str]]:
        """key -> (title, spec), in display order."""
        cols = {"baseline": ("Baseline", self.baseline), "friction": ("Friction model", self.friction)}
        if self.prompted_column:
            cols["prompted"] = ("Prompted friction (baseline + friction system prompt)", self.prompted)
        return cols


def _from_yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings")
    known = {f.name for f in fields(SpaceConfig)} - {"configured"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return data


def load_config(path: str | Path | None = None, env: Mapping[str, str] = os.environ) -> SpaceConfig:
    settings: dict = {}
    path = path or env.get("PUSHBACK_CONFIG")
    if path:
        settings.update(_from_yaml(Path(path)))
    settings.update({key: env[var] for key, var in ENV_KEYS.items() if env.get(var)})
    configured = "baseline" in settings or "friction" in settings
    return replace(SpaceConfig(**settings), configured=configured)
