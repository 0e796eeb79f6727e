"""Votes: appended to a local JSONL (under the cache unless configured); on Spaces also pushed to a Hub
dataset by a CommitScheduler, created private unless configured otherwise.

Each row is one battle in Chatbot Arena's terms: `model_a` and `model_b` (the specs shown as the first
and second column, or as "Model A" and "Model B" in a blind vote), `winner` (`model_a`, `model_b`, `tie`,
`tie (bothbad)`) and `blind`; plus the conversation's last turn, as the visitor saw it.
"""
from __future__ import annotations

import os
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pushback.files import append_jsonl

# A button's choice -> the battle's winner field. "a" and "b" are the first and second column shown.
WINNERS = {"a": "model_a", "b": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}
SCHEDULE_MINUTES = 10


class FeedbackLog:
    def __init__(self, folder: str | Path, repo_id: str | None = None, *, private: bool = True):
        self.folder = Path(folder)
        self.repo_id = repo_id
        self.private = private
        # One file per process: a scheduler may upload while another replica writes its own file.
        self.path = self.folder / f"votes-{uuid.uuid4().hex[:8]}.jsonl"
        self.lock = threading.Lock()
        self.scheduler = None
        if repo_id and os.environ.get("SPACE_ID"):  # only on a Space: local runs and CI stay offline
            from huggingface_hub import CommitScheduler

            from pushback.hub import hub_api

            self.folder.mkdir(parents=True, exist_ok=True)
            self.scheduler = CommitScheduler(repo_id=repo_id, repo_type="dataset", folder_path=self.folder,
                                             path_in_repo="votes", every=SCHEDULE_MINUTES, private=private,
                                             hf_api=hub_api())
            self.lock = self.scheduler.lock

    def notice(self) -> str:
        """What the page says about where votes go."""
        where = f"in `{self.folder}` on the machine serving this page"
        if self.scheduler is not None:
            kind = "private" if self.private else "**public**"
            where += f", and pushed every {SCHEDULE_MINUTES} minutes to the {kind} Hub dataset `{self.repo_id}`"
        return (f"<sub>A vote stores this conversation's last turn with it: your prompt, every column's answer "
                f"and monologue, and the model names, {where}. Don't vote on anything you want to keep private.</sub>")

    def record(self, row: dict[str, Any]) -> dict[str, Any]:
        row = {"timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"), **row}
        with self.lock:
            append_jsonl(self.path, row)
        return row
