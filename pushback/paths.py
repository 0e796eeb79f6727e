"""Where things live: the repository's data, and the cache for built artefacts (the pocket pair: `pushback.pocket`)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
CURATED_DIR = DATA_DIR / "curated"
SUITES_DIR = DATA_DIR / "suites"


def curated_files() -> list[Path]:
    return sorted(CURATED_DIR.glob("*.jsonl"))


def cache_dir() -> Path:
    """`$PUSHBACK_CACHE`, else `$XDG_CACHE_HOME/pushback`, else `~/.cache/pushback`."""
    if os.environ.get("PUSHBACK_CACHE"):
        return Path(os.environ["PUSHBACK_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pushback"
