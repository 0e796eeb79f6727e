"""`python app.py` as the Space runs it: configured by environment variables, offline, serving a page."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support.scripted import fixed_length_model, free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_app_py_starts_offline_on_configured_models(tiny_model_dir, tmp_path):
    port, model = free_port(), fixed_length_model(tiny_model_dir, tmp_path / "model")  # never ends early
    env = {**os.environ, "PUSHBACK_BASELINE": str(model), "PUSHBACK_FRICTION": f"{model}@system=friction", "PUSHBACK_FEEDBACK_DIR": str(tmp_path / "votes"),
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_OFFLINE": "1"}
    log = tmp_path / "app.log"
    app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert app.poll() is None, f"app.py exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "app.py did not serve its page in 90 s"
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.3)
        assert "Push-Back AI" in page
        from gradio_client import Client

        outputs = Client(f"http://127.0.0.1:{port}/", verbose=False).predict("Is the sky green?", api_name="/chat")
        for chat in outputs[:3]:  # the visitor's turn, then the model's reply (a monologue block if one was sampled)
            assert len(chat) >= 2 and chat[0]["role"] == "user" and chat[-1]["role"] == "assistant", chat
            assert "Is the sky green?" in str(chat[0]["content"]) and "'text': ''" not in str(chat[-1]["content"])
        assert "tok/s" in outputs[3], outputs[3]
    finally:
        app.terminate()
        app.wait(timeout=20)
