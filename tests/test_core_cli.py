"""The CLI as a user runs it: `pushback --help`, `validate`, `dataset build`, `dataset push`."""
from __future__ import annotations

import re
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
    info = {entry["config_name"]: entry for entry in card.data.dataset_info}
    features = datasets.Features._from_yaml_list(info["default"]["features"])
    assert ds["train"].features == features == ds["test"].features
    meta = card.data.to_dict()
    assert meta["license"] and meta["language"] == ["en"] and meta["task_categories"] and meta["tags"]
    assert meta["size_categories"] == ["n<1K"]
    assert [c["config_name"] for c in meta["configs"]] == ["default", "preference"]
    assert {s["name"]: s["num_examples"] for s in info["default"]["splits"]} == {
        "train": ds["train"].num_rows, "test": ds["test"].num_rows}
    pairs = datasets.load_dataset(str(out), "preference")
    assert pairs["train"].features == datasets.Features._from_yaml_list(info["preference"]["features"])
    assert {s["name"]: s["num_examples"] for s in info["preference"]["splits"]} == {
        "train": pairs["train"].num_rows, "test": pairs["test"].num_rows}
    body = card.text
    for heading in ("## Dataset structure", "### Counts per category and split", "### Preference pairs",
                    "## How the records were made",
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


def test_dataset_build_writes_preference_pairs_of_both_kinds_on_the_same_split(tmp_path):
    """Issue 11's check on the curated set: `load_dataset(DIR, "preference")` gives >= 600 pairs of both kinds,
    none with chosen equal to rejected, built by `pushback.chat.preference_pair` on the SFT config's split."""
    import datasets

    from pushback.chat import preference_pair
    from pushback.paths import curated_files
    from pushback.records import load_records

    out = tmp_path / "ds"
    assert main(["dataset", "build", *map(str, curated_files()), "--out", str(out)]) == 0
    sft, pairs = datasets.load_dataset(str(out)), datasets.load_dataset(str(out), "preference")
    assert set(pairs) == set(sft) == {"train", "test"}
    rows = [row for split in pairs for row in pairs[split]]
    kinds = {"benign" if row["category"] == "benign" else "friction" for row in rows}
    assert len(rows) >= 600 and kinds == {"benign", "friction"}
    assert not [row["id"] for row in rows if row["chosen"] == row["rejected"]]
    for split in sft:  # the same records on the same side
        assert set(pairs[split]["id"]) == {row["id"] for row in sft[split] if row["category"] != "benign"
                                          or row["overcautious_answer"]}
    records = {r.id: r for r in load_records(curated_files())}
    for row in rows:
        assert {k: row[k] for k in ("prompt", "chosen", "rejected")} == preference_pair(records[row["id"]])
    friction = next(row for row in rows if row["category"] == "harmful")
    benign = next(row for row in rows if row["category"] == "benign")
    assert friction["chosen"][0]["content"].startswith("<think>")  # the monologue is part of the chosen reply
    assert friction["rejected"][0]["content"] == records[friction["id"]].baseline_answer
    assert benign["rejected"][0]["content"] == records[benign["id"]].overcautious_answer
    assert benign["prompt"][-1] == {"role": "user", "content": records[benign["id"]].user_input}


def test_validate_counts_pairs_and_overcautious_lengths_and_reads_a_bom(tmp_path):
    import statistics

    from pushback.paths import curated_files
    from pushback.records import load_records

    records = load_records(curated_files())
    words = [len(r.overcautious_answer.split()) for r in records if r.overcautious_answer]
    benign = sum(r.category == "benign" for r in records)
    out = run("validate", *map(str, curated_files()))
    assert out.returncode == 0, out.stderr
    assert (f"preference pairs: {len(records) - benign + len(words)} ({len(records) - benign} friction: "
            f"final vs baseline answer; {len(words)} benign: final vs overcautious answer; "
            f"{benign - len(words)} benign record(s) without an overcautious_answer)") in out.stdout
    assert re.search(rf"overcautious_answer +min +{min(words)} +median +{int(statistics.median(words))} .* max +"
                     rf"{max(words)}\n", out.stdout)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + (DATA / "sample.jsonl").read_bytes())
    out = run("validate", str(bom))
    assert out.returncode == 0 and "14 valid records" in out.stdout, out.stderr


def _bad_input(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes((DATA / "sample.jsonl").read_bytes() + data)
    return path


@pytest.mark.parametrize("data, message", [
    (b"[" * 100_000 + b"]" * 100_000 + b"\n", ":15: JSON nested deeper than 200 levels"),
    (b'{"user_input": "caf\xe9"}\n', ":15: not valid UTF-8 (byte 0xe9"),
])
def test_validate_and_dataset_build_name_the_line_of_deep_or_undecodable_json(tmp_path, capsys, data, message):
    bad = _bad_input(tmp_path, "bad.jsonl", data)
    out = run("validate", str(bad))
    assert out.returncode == 1 and f"{bad}{message}" in out.stderr and "Traceback" not in out.stderr
    assert main(["dataset", "build", str(bad), "--out", str(tmp_path / "ds")]) == 1
    assert f"{bad}{message}" in capsys.readouterr().err and not (tmp_path / "ds").exists()


def test_dataset_build_refuses_an_output_that_is_or_holds_an_input(tmp_path, capsys):
    source = tmp_path / "records.jsonl"
    source.write_bytes((DATA / "sample.jsonl").read_bytes())
    before = source.read_bytes()
    assert main(["dataset", "build", str(source), "--out", str(source)]) == 1
    assert "is a file" in capsys.readouterr().err
    assert main(["dataset", "build", str(source), "--out", str(tmp_path)]) == 1
    assert "would hold the input" in capsys.readouterr().err
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("my notes\n")
    assert main(["dataset", "build", str(source), "--out", str(tmp_path / "notes")]) == 1
    assert "folder of other files" in capsys.readouterr().err
    assert source.read_bytes() == before and (tmp_path / "notes" / "README.md").read_text() == "my notes\n"


def test_dataset_build_into_a_read_only_folder_is_one_line(read_only_dir, capsys):
    assert main(["dataset", "build", str(DATA / "sample.jsonl"), "--out", str(read_only_dir / "ds")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: --out {read_only_dir / 'ds'}: cannot write in") and "\n" not in error
    assert not any(read_only_dir.iterdir())


def test_a_rebuild_replaces_a_built_dataset_whole_and_a_failed_one_keeps_it(built, capsys):
    card = (built / "README.md").read_text()
    assert main(["dataset", "build", str(DATA / "bad" / "bad_records.jsonl"), "--out", str(built)]) == 1
    assert (built / "README.md").read_text() == card  # the failed build left the previous one as it was
    assert main(["dataset", "build", str(DATA / "sample.jsonl"), "--out", str(built), "--seed", "3"]) == 0
    assert "seed 3" in (built / "README.md").read_text()
    assert not [p for p in built.parent.iterdir() if p.name.startswith(".")]  # no stage or old copy left behind


class UnreachableHub(FakeHub):
    """The Hub's client with no network: what huggingface_hub 2.x raises there (checked on this machine:
    httpx2.ConnectError, "Name or service not known"); huggingface_hub 1.x raises httpx's."""

    def create_repo(self, repo_id, **kw):
        try:
            import httpx2 as client
        except ImportError:
            import httpx as client
        raise client.ConnectError("[Errno -2] Name or service not known")


@pytest.mark.parametrize("hub", ["offline mode", "no network"])
def test_dataset_push_that_cannot_reach_the_hub_is_one_line_without_the_token(built, monkeypatch, capsys, hub):
    import huggingface_hub.constants
    from huggingface_hub import HfApi

    import pushback.hub

    token = "hf_" + "y" * 34
    monkeypatch.setenv("HF_TOKEN", token)
    if hub == "offline mode":  # the real client, made sure to stay offline: it raises before any request
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        monkeypatch.setattr(pushback.hub, "hub_api", lambda: HfApi(token=token))
    else:
        monkeypatch.setattr(pushback.hub, "hub_api", UnreachableHub)
    assert main(["dataset", "push", str(built), "--repo", "me/friction"]) == 1
    printed = capsys.readouterr()
    error = printed.err.strip()
    assert error.startswith("error: dataset me/friction: the push failed (") and "\n" not in error
    assert ("OfflineModeIsEnabled" if hub == "offline mode" else "ConnectError") in error
    assert token not in printed.out + printed.err and "Traceback" not in printed.err
