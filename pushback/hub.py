"""The one boundary to the Hugging Face Hub: create a repo and upload a folder as one commit.

The token comes from `HF_TOKEN` or the Hub login and is never printed; tests replace `hub_api()`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pushback.redaction import redact

RepoType = str  # "model" | "dataset" | "space"


class HubError(ValueError):
    """The Hub could not be reached or refused the request; one line, token-free. A ValueError, as the
    commands that push already report those as one line."""


def hub_api() -> Any:
    from huggingface_hub import HfApi

    return HfApi()


def hub_errors() -> tuple[type[BaseException], ...]:
    """What huggingface_hub raises when the Hub cannot be reached or says no: its HTTP errors, the offline
    mode (`OfflineModeIsEnabled`, an OSError), and its HTTP client's connection errors (httpx2 in
    huggingface_hub 2.x, httpx in 1.x), which are not OSErrors."""
    from huggingface_hub.errors import HfHubHTTPError

    errors: list[type[BaseException]] = [HfHubHTTPError, OSError]
    for client in ("httpx2", "httpx", "requests"):
        try:
            module = __import__(client)
        except ImportError:
            continue
        errors.append(module.RequestException if client == "requests" else module.HTTPError)
    return tuple(errors)


def folder_tree(folder: str | Path) -> list[tuple[str, int]]:
    """(relative path, size in bytes) of every file that an upload would send, hidden files aside."""
    root = Path(folder)
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    return [(str(p.relative_to(root)), p.stat().st_size) for p in files
            if not any(part.startswith(".") for part in p.relative_to(root).parts)]


def format_tree(repo_id: str, repo_type: RepoType, folder: str | Path) -> str:
    rows = folder_tree(folder)
    total = sum(size for _, size in rows)
    lines = [f"{repo_type} {repo_id}  ({len(rows)} files, {_human(total)})"]
    lines += [f"  {name}  {_human(size)}" for name, size in rows]
    return "\n".join(lines)


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def push_folder(folder: str | Path, repo_id: str, *, repo_type: RepoType = "model", private: bool = False,
                dry_run: bool = False, message: str = "Upload with pushback") -> str | None:
    """Create the repo if needed and upload the folder in one commit; return the commit URL. `HubError` when
    the Hub cannot be reached or refuses."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a directory")
    if "/" not in repo_id or repo_id.count("/") != 1:
        raise ValueError(f"--repo {repo_id!r}: expected OWNER/NAME")
    print(format_tree(repo_id, repo_type, folder))
    if dry_run:
        print("dry run: nothing uploaded")
        return None
    api = hub_api()
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                                   commit_message=message, ignore_patterns=[".*", "**/.*"])
    except hub_errors() as e:
        text = redact(" ".join(str(e).split()))[:300]
        raise HubError(f"{repo_type} {repo_id}: the push failed ({type(e).__name__}: {text}); check the network, "
                       "HF_HUB_OFFLINE and the token (HF_TOKEN or `hf auth login`)") from None
    url = getattr(commit, "commit_url", None) or str(commit)
    print(f"uploaded: {url}")
    return url
