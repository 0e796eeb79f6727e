"""The CLI as a user runs it: `pushback --help`, `validate`, `dataset build`, `dataset push`."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pushback.cli import COMMANDS, build_parser, main

DATA = Path(__file__).parent / "data"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pushback", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_command_without_heavy_imports():
    start = time.perf_counter()
    out = run("--help")
    assert out.returncode == 0
    for command in COMMANDS:
        assert command in out.stdout
    probe = subprocess.run([sys.executable, "-c", "import sys, pushback.cli; pushback.cli.build_parser();"
                            "print(sorted(m for m in ('torch','transformers','trl','gradio','litellm','datasets') if m in sys.modules))"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "[]"
    assert time.perf_counter() - start < 10  # generous: a cold interpreter on a loaded CI machine


def test_every_wing_declares_its_own_flags():
    import argparse
    import importlib

    core = Path(__file__).resolve().parents[1] / "pushback" / "cli.py"
    assert "add_argument" not in core.read_text()  # the core declares no wing's flags
    for command, (module, _) in COMMANDS.items():
        parser = build_parser(command)
        wing = importlib.import_module(module)
        assert callable(wing.main) and callable(wing.add_parser), module
        actions = [a for a in parser._subparsers._group_actions[0].choices[command]._actions
                   if not isinstance(a, argparse._HelpAction)]
        assert actions, f"{command}: {module}.add_parser declared nothing"


def test_validate_good_file_prints_counts():
    out = run("validate", str(DATA / "sample.jsonl"))
    assert out.returncode == 0, out.stderr
    assert "valid records" in out.stdout and "category:" in out.stdout and "benign twins:" in out.stdout
    assert "length (words):" in out.stdout


def test_validate_bad_files_lists_every_problem():
    out = run("validate", str(DATA / "bad" / "bad_records.jsonl"), str(DATA / "bad" / "empty.jsonl"))
    assert out.returncode == 1
    for line in range(2, 11):
        assert f"bad_records.jsonl:{line}:" in out.stderr
    assert "empty.jsonl: file is empty" in out.stderr


def test_dataset_build_loads_with_declared_features(tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    out = tmp_path / "ds"
    assert main(["dataset", "build", str(DATA / "sample.jsonl"), "--out", str(out), "--test-size", "0.25", "--seed", "1"]) == 0
    ds = datasets.load_dataset(str(out))
    assert set(ds) == {"train", "test"} and ds["train"].num_rows + ds["test"].num_rows == 14
    card = DatasetCard.load(out / "README.md")
    features = datasets.Features._from_yaml_list(card.data.dataset_info["features"])
    assert ds["train"].features == features == ds["test"].features
    meta = card.data.to_dict()
    assert meta["license"] and meta["language"] == ["en"] and meta["task_categories"] and meta["tags"]
    assert meta["size_categories"] == ["n<1K"]
    assert [c["config_name"] for c in meta["configs"]] == ["default"]
    assert {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]} == {
        "train": ds["train"].num_rows, "test": ds["test"].num_rows}
    body = card.text
    for heading in ("## Dataset structure", "### Counts per category and split", "## How the records were made",
                    "## Intended use", "## Limitations", "Over-refusal", "## Sample record", "## Credit"):
        assert heading in body
    # Twins stay on the same side of the split.
    rows = {r["id"]: split for split in ds for r in ds[split]}
    for split in ds:
        for r in ds[split]:
            if r["metadata"]["twin_of"]:
                assert rows[r["metadata"]["twin_of"]] == split


def test_dataset_build_refuses_bad_records(tmp_path, capsys):
    assert main(["dataset", "build", str(DATA / "bad" / "bad_records.jsonl"), "--out", str(tmp_path / "x")]) == 1
    assert "bad_records.jsonl:2:" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


class FakeHub:
    """Stands in for `HfApi` at the last network hop; records what would have been sent."""

    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw["repo_id"], kw))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/datasets/{kw['repo_id']}/commit/abc"})()


@pytest.fixture
def built(tmp_path):
    out = tmp_path / "ds"
    assert main(["dataset", "build", str(DATA / "sample.jsonl"), "--out", str(out)]) == 0
    return out


def test_dataset_push_is_one_commit_and_never_prints_the_token(built, monkeypatch, capsys):
    import pushback.hub

    token = "hf_" + "x" * 34
    monkeypatch.setenv("HF_TOKEN", token)
    fake = FakeHub()
    monkeypatch.setattr(pushback.hub, "hub_api", lambda: fake)
    assert main(["dataset", "push", str(built), "--repo", "me/friction", "--private"]) == 0
    assert [c[0] for c in fake.calls] == ["create_repo", "upload_folder"]
    assert fake.calls[0][2] == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert fake.calls[1][2]["folder_path"] == str(built)
    out = capsys.readouterr()
    assert "data/train-00000-of-00001.parquet" in out.out and token not in out.out + out.err


def test_dataset_push_dry_run_uploads_nothing(built, monkeypatch, capsys):
    import pushback.hub

    monkeypatch.setattr(pushback.hub, "hub_api", lambda: pytest.fail("dry run reached the Hub"))
    assert main(["dataset", "push", str(built), "--repo", "me/friction", "--dry-run"]) == 0
    assert "README.md" in capsys.readouterr().out


def test_dataset_push_checks_its_arguments(built, tmp_path, capsys):
    assert main(["dataset", "push", str(tmp_path / "nowhere"), "--repo", "me/x"]) == 1
    assert main(["dataset", "push", str(built), "--repo", "no-owner"]) == 1
    assert "OWNER/NAME" in capsys.readouterr().err
