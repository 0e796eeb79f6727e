"""Which models the Space compares, and its limits: from env vars or YAML files.

Where the two models come from (the first that names them wins):

1. `PUSHBACK_BASELINE` / `PUSHBACK_FRICTION`, or a YAML file named by `PUSHBACK_CONFIG`: used as given.
2. The Space's own config, `space.yaml` beside app.py: real models from the Hub. They are checked on
   the Hub first. Where the Hub cannot be reached, the offline pocket pair stands in (built on first
   start); where only the friction model cannot be fetched, the friction column is the baseline with
   the friction system prompt (`@system=friction`).

Settings in `space.yaml`, then `PUSHBACK_CONFIG`'s file, then env vars: later ones win. Model specs are
parsed here, once; the rest of the Space passes `ModelSpec`s around.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from pushback.backends import GenerationParams
from pushback.paths import REPO_ROOT, cache_dir
from pushback.specs import ModelSpec, SpecError, parse_spec

SPACE_FILE = REPO_ROOT / "space.yaml"
ENV_KEYS = {"baseline": "PUSHBACK_BASELINE", "friction": "PUSHBACK_FRICTION", "blind": "PUSHBACK_BLIND",
            "feedback_repo": "PUSHBACK_FEEDBACK_REPO", "feedback_dir": "PUSHBACK_FEEDBACK_DIR"}
POCKET = (parse_spec("pocket:baseline"), parse_spec("pocket:friction"))
TRUE = ("1", "true", "yes", "on")


def as_spec(value: ModelSpec | str) -> ModelSpec:
    return value if isinstance(value, ModelSpec) else parse_spec(value)


def prompted_friction(spec: ModelSpec) -> ModelSpec:
    """`spec` with the friction system prompt (unless it sets its own)."""
    if spec.system is not None:
        return spec
    return replace(spec, system="friction", raw=f"{spec.raw}@system=friction")


@dataclass(frozen=True)
class SpaceConfig:
    baseline: ModelSpec = POCKET[0]  # a spec string is parsed on construction
    friction: ModelSpec = POCKET[1]
    prompted_column: bool = True  # a third column: the baseline prompted with the friction system prompt
    blind: bool = False  # blind arena: two columns, "Model A" and "Model B", names shown after the vote
    max_prompt_chars: int = 2000
    max_turns: int = 6
    max_new_tokens: int = 384
    temperature: float = GenerationParams.temperature
    concurrency: int = 4  # conversations generating at once; more wait in the queue
    cpu_threads: int = 1  # torch threads per generation on CPU: the columns already generate in parallel
    queue_size: int = 64
    feedback_dir: str | None = None  # votes go here; None: the cache (`pushback.paths.cache_dir()/feedback`)
    feedback_repo: str | None = None  # a Hub dataset for votes, used only on Spaces
    feedback_private: bool = True  # the votes dataset is created private unless this is false
    why: str = ""  # why these models run, for the banner

    def __post_init__(self) -> None:
        object.__setattr__(self, "baseline", as_spec(self.baseline))
        object.__setattr__(self, "friction", as_spec(self.friction))

    @property
    def uses_pocket(self) -> bool:
        return any(spec.kind == "pocket" for spec in (self.baseline, self.friction))

    @property
    def prompted(self) -> ModelSpec:
        return prompted_friction(self.baseline)

    @property
    def feedback_folder(self) -> Path:
        return Path(self.feedback_dir).expanduser() if self.feedback_dir else cache_dir() / "feedback"

    def columns(self) -> dict[str, tuple[str, ModelSpec]]:
        """key -> (title, spec), in display order."""
        cols = {"baseline": ("Baseline", self.baseline), "friction": ("Friction model", self.friction)}
        if self.prompted_column and self.prompted != self.friction:
            cols["prompted"] = ("Prompted friction (baseline + friction system prompt)", self.prompted)
        return cols


def _from_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: cannot read the Space config ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings")
    known = {f.name for f in fields(SpaceConfig)} - {"why"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return {key: (value, str(path)) for key, value in data.items()}


def _hub_repos(spec: ModelSpec) -> list[str]:
    """The Hub repositories a spec loads from (none for a directory, an endpoint or the pocket pair)."""
    repos = [spec.model] if spec.kind == "hub" else []
    if spec.adapter and not Path(spec.adapter).expanduser().exists():
        repos.append(spec.adapter)
    return repos


def _unreachable(spec: ModelSpec, api: Any) -> str | None:
    """Why a spec's Hub repositories cannot be fetched (None: they can)."""
    for repo in _hub_repos(spec):
        try:
            api.model_info(repo, timeout=10)
        except Exception as e:  # noqa: BLE001 - offline, not found, gated, a timeout: all mean "not this model"
            return f"{repo}: {type(e).__name__}"
    return None


def choose_models(baseline: ModelSpec, friction: ModelSpec, hub: Callable[[], Any]) -> tuple[ModelSpec, ModelSpec, str]:
    """The Space's own models where the Hub serves them; else prompted friction or the offline pocket pair.
    `hub` returns the Hub client (`pushback.hub.hub_api`; tests give a fake)."""
    api = hub()
    missing = _unreachable(baseline, api)
    if missing:
        return (*POCKET, f"The Hub cannot be reached ({missing}), so the offline *pocket* pair built on this "
                         "machine stands in: tiny models that show the format and the streaming, not real quality.")
    missing = _unreachable(friction, api)
    if missing:
        return (baseline, prompted_friction(baseline),
                f"Real models from the Hub, as `space.yaml` names them. The friction model could not be fetched "
                f"({missing}), so the friction column is the baseline with the friction system prompt.")
    return baseline, friction, "Real models from the Hub, as `space.yaml` names them."


def _parse(value: Any, where: str) -> Any:
    try:
        return as_spec(str(value))
    except SpecError as e:
        raise ValueError(f"{where}: {e}") from None


def load_config(path: str | Path | None = None, env: Mapping[str, str] = os.environ, *,
                space_file: Path | None = SPACE_FILE, hub: Callable[[], Any] | None = None) -> SpaceConfig:
    """The Space's settings (see the module docstring). `hub` gives the Hub client used to check the Space's
    own models (default `pushback.hub.hub_api`)."""
    layers = [_from_yaml(space_file)] if space_file is not None and space_file.exists() else []
    path = path or env.get("PUSHBACK_CONFIG")
    if path:
        layers.append(_from_yaml(Path(path)))
    layers.append({key: (env[var], var) for key, var in ENV_KEYS.items() if env.get(var)})
    settings: dict[str, tuple[Any, str]] = {}
    for layer in layers:
        settings.update(layer)
    if "blind" in settings and isinstance(settings["blind"][0], str):
        settings["blind"] = (settings["blind"][0].strip().lower() in TRUE, settings["blind"][1])
    values = {key: value for key, (value, _) in settings.items()}
    for key in ("baseline", "friction"):
        if key in settings:
            values[key] = _parse(*settings[key])
    given = {where for key, (_, where) in settings.items() if key in ("baseline", "friction")
             and where != str(space_file)}
    if given:
        values["why"] = f"Configured by {', '.join(sorted(given))}."
    elif "baseline" not in values and "friction" not in values:
        values["why"] = "Nothing names the models (no `space.yaml`), so the offline *pocket* pair runs."
    else:
        if hub is None:
            from pushback.hub import hub_api as hub
        defaults = SpaceConfig(**values)
        values["baseline"], values["friction"], values["why"] = choose_models(defaults.baseline, defaults.friction, hub)
    return SpaceConfig(**values)
