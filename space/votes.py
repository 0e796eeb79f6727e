"""Votes: appended to a local JSONL; on Spaces also pushed to a Hub dataset by a CommitScheduler."""
from __future__ import annotations

import os
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pushback.files import append_jsonl

CHOICES = {"friction": "Friction better", "baseline": "Baseline better", "tie": "Tie", "both_bad": "Both bad"}


class FeedbackLog:
    def __init__(self, folder: str | Path, repo_id: str | None = None):
        self.folder = Path(folder)
        # One file per process: a scheduler may upload while another replica writes its own file.
        self.path = self.folder / f"votes-{uuid.uuid4().hex[:8]}.jsonl"
        self.lock = threading.Lock()
        self.scheduler = None
        if repo_id and os.environ.get("SPACE_ID"):  # only on a Space: local runs and CI stay offline
            from huggingface_hub import CommitScheduler

            from pushback.hub import hub_api

            self.folder.mkdir(parents=True, exist_ok=True)
            self.scheduler = CommitScheduler(repo_id=repo_id, repo_type="dataset", folder_path=self.folder,
                                             path_in_repo="votes", every=10, hf_api=hub_api())
            self.lock = self.scheduler.lock

    def record(self, row: dict[str, Any]) -> dict[str, Any]:
        row = {"timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"), **row}
        with self.lock:
            append_jsonl(self.path, row)
        return row
