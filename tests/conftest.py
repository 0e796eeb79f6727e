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
    from training.from_scratch import new_model, save_pretrained, train_tokenizer

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
def one_torch_thread():
    """Tiny models train faster on one thread (and far faster on a busy 2-core machine); put it back after."""
    from training.train import cpu_threads

    with cpu_threads(1):
        yield


@pytest.fixture(scope="session")
def r1_like_template() -> str:
    """A DeepSeek-R1-style chat template: opens <think> in the generation prompt and drops think blocks from
    rendered assistant turns (what `chat_template: native` must cope with)."""
    return ("{% for m in messages %}{% if m['role'] == 'user' %}<|im_start|>{{ m['content'] }}"
            "{% elif m['role'] == 'assistant' %}<|im_end|>{{ m['content'].split('</think>')[-1] }}{% endif %}"
            "{% endfor %}{% if add_generation_prompt %}<|im_end|><think>\n{% endif %}")


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
def read_only_dir(tmp_path) -> Path:
    """A folder nobody may write in, for root too: mode 0555, and the immutable flag when running as root
    (root ignores the mode). Skipped only where neither can be set."""
    import shutil
    import subprocess

    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable and (not shutil.which("chattr")
                      or subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0):
        folder.chmod(0o755)
        pytest.skip("running as root without the right to set the immutable flag: no read-only folder possible")
    try:
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        folder.chmod(0o755)
