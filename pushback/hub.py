"""The one boundary to the Hugging Face Hub: create a repo and upload a folder as one commit.

The token comes from `HF_TOKEN` or the Hub login and is never printed; tests replace `hub_api()`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

RepoType = str  # "model" | "dataset" | "space"


def hub_api() -> Any:
    from huggingface_hub import HfApi

    return HfApi()


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
    """Create the repo if needed and upload the folder in one commit; return the commit URL."""
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
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                               commit_message=message, ignore_patterns=[".*", "**/.*"])
    url = getattr(commit, "commit_url", None) or str(commit)
    print(f"uploaded: {url}")
    return url
