"""Where a measured figure comes from: every benchmark result and every `pushback eval` run carries this
block, so a figure can be traced to the code, the inputs, the machine and the command that produced it.

    {"commit": "1befa12...", "dirty": false, "fingerprints": {"pocket_plan": "9f3c...", ...},
     "hardware": {"cpu": "...", "cores": 2, "gpu": null}, "command": "python bench/pocket.py --seeds 3",
     "date": "2026-12-04T16:20:00+00:00"}

`fingerprints` names what was measured (the pocket plan, a recipe file, the classifier's weights...) by
a hash of it; `bench/readme_table.py` compares them with the current code's to tell which result is stale.
"""
from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pushback.paths import REPO_ROOT
from pushback.redaction import redact


def git_commit(root: Path = REPO_ROOT) -> tuple[str | None, bool]:
    """(commit, dirty) of the checkout, or (None, False) outside git. `PUSHBACK_COMMIT` names it where the
    checkout is a copy whose .git is not the source's (a lent GPU machine receives such a copy)."""
    if os.environ.get("PUSHBACK_COMMIT"):
        return os.environ["PUSHBACK_COMMIT"], False
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, False
    return commit, dirty


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    """The machine a figure was measured on: CPU model and cores, and the GPU if torch sees one."""
    gpu = None
    if "torch" in sys.modules or os.environ.get("PUSHBACK_PROBE_GPU"):
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": _cpu_name(), "cores": cores, "gpu": gpu}


def describe_hardware(info: dict[str, Any]) -> str:
    """`1x NVIDIA H200` or `2-core CPU (Intel Xeon ...)`: how a README row names its machine."""
    if info.get("gpu"):
        return f"GPU: {info['gpu']}"
    return f"{info.get('cores')}-core CPU"


def fingerprint_bytes(*parts: bytes | str) -> str:
    digest = hashlib.sha1()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
    return digest.hexdigest()[:16]


def fingerprint_file(path: str | os.PathLike[str]) -> str:
    return fingerprint_bytes(Path(path).read_bytes())


def provenance(fingerprints: dict[str, str] | None = None, argv: list[str] | None = None) -> dict[str, Any]:
    """The block to store beside a result (`"provenance": provenance({...})`)."""
    commit, dirty = git_commit()
    args = sys.argv if argv is None else argv
    program = Path(args[0]).name if args else "python"
    if program in ("pushback", "__main__.py"):  # the console script, or `python -m pushback`
        command = shlex.join(["pushback", *args[1:]])
    elif program.endswith(".py"):
        try:
            program = str(Path(args[0]).resolve().relative_to(REPO_ROOT))
        except ValueError:
            pass
        command = "python " + shlex.join([program, *args[1:]])
    else:
        command = shlex.join([program, *args[1:]])
    # A command line may carry credentials (a URL with user:password, a pasted key): never store them.
    return {"commit": commit, "dirty": dirty, "fingerprints": dict(fingerprints or {}), "hardware": hardware(),
            "command": redact(command), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
