"""`pushback votes report`: win rates and Bradley-Terry ratings with bootstrap intervals, from a votes
file, a folder, or the Space's Hub dataset (only the last hop to the Hub is fake)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pushback.cli import main
from space.leaderboard import Battle, standings

TRUE = {"strong": 1200.0, "good": 1100.0, "fair": 1000.0, "weak": 850.0}


def synthetic_votes(n: int, seed: int = 0, blind: bool = True, ties: float = 0.1) -> list[dict]:
    """Battles between random pairs, decided by the Bradley-Terry model with ratings TRUE; a share `ties`
    of them tied whatever the ratings (which pulls fitted ratings together, as ties do in an arena)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.sample(sorted(TRUE), 2)
        p_a = 1 / (1 + 10 ** ((TRUE[b] - TRUE[a]) / 400))
        winner = "tie" if rng.random() < ties else ("model_a" if rng.random() < p_a else "model_b")
        rows.append({"model_a": a, "model_b": b, "winner": winner, "blind": blind, "prompt": "x"})
    return rows


def write_votes(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_synthetic_votes_recover_the_known_ranking():
    battles = [Battle(r["model_a"], r["model_b"], r["winner"], True) for r in synthetic_votes(3000, ties=0)]
    table = standings(battles, rounds=200, seed=0)
    assert [s.model for s in table] == sorted(TRUE, key=TRUE.get, reverse=True)
    mean = sum(TRUE.values()) / len(TRUE)
    for s in table:  # the true rating (centred as the fit is) lies in the 95% interval
        assert s.low <= TRUE[s.model] - mean + 1000 <= s.high, s
        assert s.high - s.low < 80  # 3000 votes pin a rating down to tens of points
    assert sum(s.battles for s in table) == 2 * 3000 and table[0].win_rate > 0.6 > table[-1].win_rate + 0.3
    assert all(s.ties == 0 and s.wins + s.losses == s.battles for s in table)


def test_report_on_a_votes_folder_counts_blind_votes_and_writes_table_plot_and_json(tmp_path, capsys):
    folder = tmp_path / "feedback"
    write_votes(folder / "votes-1.jsonl", synthetic_votes(400, seed=1))
    write_votes(folder / "sub" / "votes-2.jsonl", synthetic_votes(100, seed=2, blind=False))
    # A row written before votes named model_a/model_b: a named vote, read as one.
    legacy = {"vote": "friction", "specs": {"baseline": "fair", "friction": "strong", "prompted": "x"}, "prompt": "y"}
    write_votes(folder / "old.jsonl", [legacy])
    out = tmp_path / "report"
    assert main(["votes", "report", str(folder), "--out", str(out), "--rounds", "50"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].startswith("1. strong")
    result = json.loads((out / "leaderboard.json").read_text())
    assert result["battles"] == 400 and result["skipped"]["named votes (use --include-named to count them)"] == 101
    assert result["provenance"]["fingerprints"].keys() == {"votes:votes-1.jsonl", "votes:votes-2.jsonl", "votes:old.jsonl"}
    assert "| 1 | `strong` |" in (out / "leaderboard.md").read_text()
    assert (out / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"

    assert main(["votes", "report", str(folder), "--out", str(out), "--rounds", "50", "--include-named"]) == 0
    assert json.loads((out / "leaderboard.json").read_text())["battles"] == 501


def test_report_on_the_spaces_hub_dataset(tmp_path, monkeypatch, capsys):
    """The Hub's last hop is a fake serving the dataset's files, as `HfApi` lists and downloads them."""
    import pushback.hub

    stored = tmp_path / "hub-copy"
    write_votes(stored / "votes" / "votes-abc.jsonl", synthetic_votes(300, seed=3))
    (stored / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n")

    class FakeHub:
        def list_repo_files(self, repo_id, repo_type=None):
            assert (repo_id, repo_type) == ("me/pushback-votes", "dataset")
            return [str(p.relative_to(stored)) for p in sorted(stored.rglob("*")) if p.is_file()]

        def hf_hub_download(self, repo_id, filename, repo_type=None):
            return str(stored / filename)

    monkeypatch.setattr(pushback.hub, "hub_api", FakeHub)
    out = tmp_path / "report"
    assert main(["votes", "report", "me/pushback-votes", "--out", str(out), "--rounds", "50"]) == 0
    result = json.loads((out / "leaderboard.json").read_text())
    assert result["source"] == "me/pushback-votes" and result["battles"] == 300
    assert [s["model"] for s in result["standings"]][0] == "strong"


@pytest.mark.parametrize(("content", "message"), [
    ('{"model_a": "x", "model_b": "y", "winner": "model_a"}\n{"prompt": "not a vote"}\n',
     r"votes.jsonl:2: not a vote \(no model_a, model_b, winner\)$"),
    ('{"model_a": "x", "model_b": "y", "winner": "A"}\n', r"votes.jsonl:1: winner 'A' is not one of"),
    ('{"model_a": "x", "model_b": "y", "winner": "tie"}\n', r"no battles to rate among 1 votes \(only blind"),
    ("[1]\n", r"votes.jsonl:1: expected a JSON object, got list$"),
])
def test_bad_votes_get_one_line_naming_the_place(tmp_path, capsys, content, message):
    import re

    path = tmp_path / "votes.jsonl"
    path.write_text(content)
    assert main(["votes", "report", str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_an_unreachable_hub_or_a_missing_source_is_one_line(tmp_path, capsys):
    # The real client under HF_HUB_OFFLINE=1 refuses to connect, as an offline machine would fail.
    assert main(["votes", "report", "me/pushback-votes", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("error: cannot read the Hub dataset me/pushback-votes (")
    assert main(["votes", "report", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)]) == 1
    assert "no such file or folder, and not a Hub dataset id" in capsys.readouterr().err
