"""`python app.py` as the Space runs it, offline: configured by environment variables, and with nothing
configured (the Hub unreachable, so the pocket pair), serving a page whose models were loaded first."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.scripted import fixed_length_model, free_port

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def app_py(env: dict[str, str], log: Path):
    """`python app.py` with `env` (offline) on a free port; yields (url, page html) once it serves."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PUSHBACK_") or k == "PUSHBACK_CACHE"},
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_OFFLINE": "1", **env}
    app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert app.poll() is None, f"app.py exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "app.py did not serve its page in 120 s"
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/", page
    finally:
        app.terminate()
        app.wait(timeout=20)


@pytest.mark.slow
def test_app_py_starts_offline_on_configured_models(tiny_model_dir, tmp_path):
    model = fixed_length_model(tiny_model_dir, tmp_path / "model")  # never ends early
    env = {"PUSHBACK_BASELINE": str(model), "PUSHBACK_FRICTION": f"{model}@system=friction",
           "PUSHBACK_FEEDBACK_DIR": str(tmp_path / "votes")}
    with app_py(env, tmp_path / "app.log") as (url, page):
        assert "Push-Back AI" in page
        from gradio_client import Client

        # Two columns: the friction spec is the baseline prompted with the friction system prompt already.
        outputs = Client(url, verbose=False).predict("Is the sky green?", api_name="/chat")
        for chat in outputs[:2]:  # the visitor's turn, then the model's reply (a monologue block if one was sampled)
            assert len(chat) >= 2 and chat[0]["role"] == "user" and chat[-1]["role"] == "assistant", chat
            assert "Is the sky green?" in str(chat[0]["content"]) and "'text': ''" not in str(chat[-1]["content"])
        assert "tok/s" in outputs[2], outputs[2]
    assert "Configured by PUSHBACK_BASELINE, PUSHBACK_FRICTION" in (tmp_path / "app.log").read_text()


@pytest.mark.slow
def test_app_py_with_nothing_configured_and_no_hub_serves_the_pocket_pair_loaded_first(pocket_cache, tmp_path):
    with app_py({"PUSHBACK_FEEDBACK_DIR": str(tmp_path / "votes")}, tmp_path / "app.log") as (url, page):
        assert "Offline demo models" in page and "cannot be reached" in page
        log = (tmp_path / "app.log").read_text()
        loaded = [log.index(f"warm-up: pocket:{name} loaded") for name in ("baseline", "friction")]
        assert max(loaded) < log.index("Running on"), log  # every model loaded before the page served
        assert "models: baseline pocket:baseline · friction pocket:friction" in log
