"""`pushback publish`: three staged repos that load, cards that parse with the keys the Hub needs, and a
token that appears nowhere. Only the last hop (`pushback.hub.hub_api`) is faked."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pushback.cli import main as cli
from pushback.paths import curated_files

TOKEN = "hf_FAKEtoken_do_not_leak_0123456789"


class FakeHub:
    """Records what would be sent; copies each folder at upload time so the test sees exactly that."""

    def __init__(self, keep: Path):
        self.keep = keep
        self.created: list[tuple[str, str, bool]] = []
        self.uploaded: dict[str, Path] = {}

    def create_repo(self, repo_id, repo_type="model", private=False, exist_ok=False):
        self.created.append((repo_id, repo_type, private))

    def upload_folder(self, folder_path, repo_id, repo_type="model", commit_message="", ignore_patterns=None):
        copy = self.keep / repo_id.replace("/", "__")
        shutil.copytree(folder_path, copy)
        self.uploaded[repo_id] = copy
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, pocket_cache) -> tuple[Path, Path]:
    """A few QLoRA steps on the pocket baseline, then merged: the folders publish takes."""
    from training.train import cpu_threads

    with cpu_threads(1):
        root = tmp_path_factory.mktemp("publish-run")
        sets = ["data.limit=8", "data.eval_limit=4", "training.max_steps=4", "training.eval_steps=2",
                "training.save_steps=2", "training.per_device_train_batch_size=2",
                "training.gradient_accumulation_steps=1", "training.logging_steps=1"]
        args = ["train", "--recipe", "pocket", "--output", str(root / "adapter")]
        assert cli(args + [a for s in sets for a in ("--set", s)]) == 0
        assert cli(["merge", "--adapter", str(root / "adapter"), "--out", str(root / "merged")]) == 0
    return root / "adapter", root / "merged"


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dataset") / "built"
    assert cli(["dataset", "build", *map(str, curated_files()), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory, trained) -> Path:
    """An evaluation output in the shape `pushback eval` writes: two models in one file."""
    out = tmp_path_factory.mktemp("eval")
    entry = {"task": {"type": "text-generation", "name": "Calibrated friction"},
             "dataset": {"name": "Push-Back AI curated (test)", "type": "pushback-curated", "split": "test"}}
    rows = [{**entry, "metrics": [{"type": "friction_balanced_accuracy", "value": 0.5, "name": "Friction balanced accuracy"}],
             "model": "baseline", "spec": "pocket:baseline"},
            {**entry, "metrics": [{"type": "friction_balanced_accuracy", "value": 0.81, "name": "Friction balanced accuracy"},
                                  {"type": "broken", "value": None}],
             "model": "friction", "spec": str(trained[1])}]
    (out / "eval_results.json").write_text(json.dumps(rows))
    return out


@pytest.fixture(scope="module")
def published(tmp_path_factory, trained, dataset_dir, eval_dir):
    """Run `pushback publish` with a fake token and a fake Hub; keep everything it printed and staged."""
    mp = pytest.MonkeyPatch()
    keep = tmp_path_factory.mktemp("hub")
    hub = FakeHub(keep)
    mp.setenv("HF_TOKEN", TOKEN)
    mp.setattr("pushback.hub.hub_api", lambda: hub)
    stage = tmp_path_factory.mktemp("stage")
    adapter, merged = trained
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(["publish", "--adapter", str(adapter), "--merged", str(merged), "--dataset", str(dataset_dir),
                    "--eval", str(eval_dir), "--repo-prefix", "someone/pocket-friction", "--stage", str(stage),
                    "--private"])
    mp.undo()
    assert code == 0, err.getvalue()
    return hub, stage, out.getvalue() + err.getvalue()


def card_metadata(path: Path) -> dict:
    from huggingface_hub import ModelCard

    card = ModelCard.load(path)
    return card.data.to_dict()


def test_three_repos_pushed_each_as_one_commit(published):
    hub, stage, output = published
    assert hub.created == [("someone/pocket-friction-lora", "model", True),
                           ("someone/pocket-friction-merged", "model", True),
                           ("someone/pocket-friction-data", "dataset", True)]
    assert set(hub.uploaded) == {repo for repo, _, _ in hub.created}
    for repo in hub.uploaded:
        assert f"{repo}  (" in output  # the tree of each repo is printed before it is pushed
    assert "adapter_model.safetensors" in output and "model.safetensors" in output


def test_the_token_leaks_nowhere(published):
    hub, stage, output = published
    assert TOKEN not in output
    for root in (stage, hub.keep):
        for file in root.rglob("*"):
            if file.is_file():
                assert TOKEN.encode() not in file.read_bytes(), file


def test_staged_adapter_loads_with_peft_on_the_base_from_disk(published, trained):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    hub, _, _ = published
    staged = hub.uploaded["someone/pocket-friction-lora"]
    assert not (staged / "checkpoints").exists()
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "chat_template.jinja",
                 "recipe.yaml", "metrics.json", "README.md"):
        assert (staged / name).exists(), name
    base_path = json.loads((staged / "adapter_config.json").read_text())["base_model_name_or_path"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path), staged)
    merged = AutoModelForCausalLM.from_pretrained(hub.uploaded["someone/pocket-friction-merged"])
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        difference = (model(input_ids=ids).logits - merged.float()(input_ids=ids).logits).abs().max().item()
    assert difference < 0.1  # the merged repo is bf16; the adapter on its fp32 base agrees to bf16 precision


def test_staged_dataset_loads(published):
    from datasets import load_dataset

    hub, _, _ = published
    data = load_dataset(str(hub.uploaded["someone/pocket-friction-data"]))
    assert set(data) == {"train", "test"} and len(data["train"]) > len(data["test"]) > 0
    assert {"user_input", "agents", "final_answer", "baseline_answer"} <= set(data["train"].column_names)


def test_cards_parse_and_carry_the_required_keys(published):
    hub, _, _ = published
    adapter = card_metadata(hub.uploaded["someone/pocket-friction-lora"] / "README.md")
    merged = card_metadata(hub.uploaded["someone/pocket-friction-merged"] / "README.md")
    assert adapter["library_name"] == "peft" and merged["library_name"] == "transformers"
    for meta in (adapter, merged):
        assert meta["pipeline_tag"] == "text-generation"
        assert meta["license"] == "apache-2.0"
        assert meta["datasets"] == ["someone/pocket-friction-data"]
        assert "friction" in meta["tags"]
        # The base is a local pocket model, not a Hub repo: no base_model key the Hub would reject.
        assert "base_model" not in meta and "base_model_relation" not in meta
        index = meta["model-index"][0]
        values = [m["value"] for r in index["results"] for m in r["metrics"]]
        assert values == [0.81]  # the friction model's entry, not the baseline's; the broken metric skipped
    text = (hub.uploaded["someone/pocket-friction-lora"] / "README.md").read_text()
    assert "pocket:baseline" in text and "lora.r" in text and "Over-refusal" in text
    assert "PeftModel.from_pretrained" in text
    dataset_card = yaml.safe_load((hub.uploaded["someone/pocket-friction-data"] / "README.md").read_text().split("---")[1])
    assert dataset_card["configs"]


def test_a_hub_base_gets_base_model_and_relation(trained, tmp_path):
    """The same run described as if its base were on the Hub: adapter vs finetune relations."""
    from model_card import build_card

    adapter, merged = trained
    for directory, kind, relation in ((adapter, "adapter", "adapter"), (merged, "merged", "finetune")):
        copy = tmp_path / kind
        shutil.copytree(directory, copy)
        for name, key in (("metrics.json", "base_model"), ("merge.json", "base_model")):
            if (copy / name).exists():
                data = json.loads((copy / name).read_text())
                data[key] = "Qwen/Qwen2.5-0.5B-Instruct"
                (copy / name).write_text(json.dumps(data))
        (copy / "README.md").write_text(build_card(copy, kind=kind, repo_id=f"someone/x-{kind}"))
        meta = card_metadata(copy / "README.md")
        assert meta["base_model"] == "Qwen/Qwen2.5-0.5B-Instruct"
        assert meta["base_model_relation"] == relation
        assert meta["license"] == "apache-2.0"
        assert "model-index" not in meta  # no evaluation given: no made-up results


def test_dry_run_pushes_nothing_and_bad_inputs_are_clear(trained, tmp_path, monkeypatch, capsys):
    def no_hub():
        raise AssertionError("a dry run must not reach the Hub")

    monkeypatch.setattr("pushback.hub.hub_api", no_hub)
    adapter, merged = trained
    assert cli(["publish", "--adapter", str(adapter), "--repo-prefix", "someone/x", "--dry-run"]) == 0
    assert "dry run: nothing uploaded" in capsys.readouterr().out
    assert cli(["publish", "--adapter", str(merged), "--repo-prefix", "someone/x", "--dry-run"]) == 1
    assert "adapter_config.json" in capsys.readouterr().err
    assert cli(["publish", "--merged", str(merged), "--repo-prefix", "no-owner", "--dry-run"]) == 1
    assert "OWNER/NAME" in capsys.readouterr().err


def test_a_refused_push_is_an_error_message_not_a_traceback(trained, monkeypatch, capsys):
    import httpx
    from huggingface_hub.errors import HfHubHTTPError

    class Refusing:
        def create_repo(self, repo_id, **kwargs):
            url = f"https://huggingface.co/api/repos/create/{repo_id}"
            response = httpx.Response(401, request=httpx.Request("POST", url))
            raise HfHubHTTPError("401 Client Error: Unauthorized (invalid token)", response=response)

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr("pushback.hub.hub_api", lambda: Refusing())
    assert cli(["publish", "--adapter", str(trained[0]), "--repo-prefix", "someone/x"]) == 1
    captured = capsys.readouterr()
    assert "the push failed" in captured.err and "Unauthorized" in captured.err
    assert TOKEN not in captured.out + captured.err


def test_training_reads_a_built_dataset_and_its_split_is_the_projects_split(dataset_dir):
    """`data.source` may be a `pushback dataset build` directory: its train/test splits are used as they
    are, and they are the very split training makes from the JSONL files (one split everywhere)."""
    from training.data import load_split

    from_dataset = load_split([str(dataset_dir)])
    from_files = load_split(["data/curated/*.jsonl"])
    assert from_dataset.source == str(dataset_dir)
    assert [r.id for r in from_dataset.train] == [r.id for r in from_files.train]
    assert [r.id for r in from_dataset.eval] == [r.id for r in from_files.eval]
    assert from_dataset.train[0] == from_files.train[0]  # the records survive parquet unchanged
