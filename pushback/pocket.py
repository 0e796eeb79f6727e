"""The offline pocket pair as the rest of the house sees it: where it lives, whether it is built, and
how to get it built. Building is the `pushback pocket` command's business (the training wing); the
Space and the pocket recipe reach it through this seam, never by importing the training wing."""
from __future__ import annotations

from pathlib import Path

from pushback.paths import cache_dir

MANIFEST = "pocket.json"  # written last by a build: a pair without it is not (or not yet) built
MODELS = ("baseline", "friction")


def pocket_dir() -> Path:
    return cache_dir() / "pocket"


def is_built(directory: Path | None = None) -> bool:
    """Both models and the build's manifest are in `directory` (default: the cache)."""
    directory = directory or pocket_dir()
    return (directory / MANIFEST).exists() and all((directory / m / "config.json").exists() for m in MODELS)


def ensure_built() -> Path:
    """The cached pair's directory, built first (with progress, minutes on a CPU) if it is missing.
    A pair that exists is used as it is; `pushback pocket --force` rebuilds it."""
    if not is_built():
        from pushback.cli import main  # runs the command the training wing registers

        if main(["pocket"]) != 0:
            raise RuntimeError(f"building the pocket pair in {pocket_dir()} failed (see above); "
                               "run `pushback pocket` to retry")
    return pocket_dir()
