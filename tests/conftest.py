"""Shared fixtures. Nothing here reaches the Hub: models are built on disk from scratch."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Test artefacts people may want to look at (screenshots, reports) land here."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def tiny_texts() -> list[str]:
    from pushback.paths import curated_files
    from pushback.records import read_records

    texts = []
    for path in curated_files():
        for r in read_records(path).records:
            texts += [r.user_input, r.monologue, r.final_answer, r.baseline_answer]
    return texts or ["A few words to train a tokenizer on.", "Is the sky green? No, it is blue."] * 20


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_texts) -> Path:
    """A randomly initialised two-layer Qwen2 with a BPE tokenizer trained on the curated set."""
    from training.scratch import new_model, save_pretrained, train_tokenizer

    out = tmp_path_factory.mktemp("tiny-qwen2")
    tokenizer = train_tokenizer(tiny_texts, vocab_size=1024)
    save_pretrained(new_model(tokenizer, "tiny"), tokenizer, str(out))
    return out


@pytest.fixture(scope="session")
def pocket_cache(tmp_path_factory) -> Path:
    """`pushback pocket --tiny` built once into a private cache; PUSHBACK_CACHE points at it, so the
    specs `pocket:baseline` and `pocket:friction` resolve there for the whole session."""
    from training.pocket import build_pocket

    cache = tmp_path_factory.mktemp("pushback-cache")
    os.environ["PUSHBACK_CACHE"] = str(cache)
    build_pocket(cache / "pocket", tiny=True, seed=0)
    return cache


@pytest.fixture(scope="module")
def scripted():
    """The scripted OpenAI-compatible model (support/scripted.py) on loopback, for one test module."""
    from support.scripted import ScriptedServer

    with ScriptedServer(chunk_delay=0.02) as server:
        yield server


@pytest.fixture(scope="module")
def fixed_model(tiny_model_dir, tmp_path_factory) -> str:
    """The tiny model, always writing exactly max_new_tokens of plain answer (support/scripted.py)."""
    from support.scripted import fixed_length_model

    return str(fixed_length_model(tiny_model_dir, tmp_path_factory.mktemp("fixed")))


@pytest.fixture()
def server():
    """The loopback OpenAI-compatible server (support/openai_server.py), fast and with faults on request."""
    from support.openai_server import LocalOpenAIServer

    with LocalOpenAIServer(latency=0.005, hang_seconds=5, retry_after=0.05) as s:
        yield s


@pytest.fixture()
def unwritable_dir(tmp_path) -> Path:
    """A folder no file can be written in: read-only for a normal user; root writes anywhere but /proc."""
    if os.geteuid() == 0:
        return Path("/proc/self/pushback-no-such-folder")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    return folder
