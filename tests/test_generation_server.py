"""The local OpenAI-compatible server itself: plain and streamed answers, faults, and script mode."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.openai_server import LocalOpenAIServer

from pushback.endpoint import import_litellm

REPO = Path(__file__).resolve().parent.parent


def _post(url: str, body: dict, key: str = "x") -> tuple[int, dict, dict]:
    request = urllib.request.Request(f"{url}/chat/completions", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def _persona_request(persona: str) -> list[dict]:
    text = f"Task: think as one persona\nPersona: {persona}\n<message>\nIs the sky green?\n</message>"
    return [{"role": "user", "content": text}]


def test_plain_and_streamed_answers_agree_through_litellm():
    litellm = import_litellm()
    with LocalOpenAIServer() as server:
        kwargs = {"model": "openai/local", "api_base": server.url, "api_key": "x", "max_retries": 0,
                  "messages": _persona_request("limitation_acknowledger")}
        plain = litellm.completion(**kwargs).choices[0].message.content
        chunks = litellm.completion(stream=True, stream_options={"include_usage": True}, **kwargs)
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert plain == streamed and "can't verify" in plain and "Is the sky green" in plain


def test_prompts_are_unique_per_category_and_answers_fit_each_call():
    with LocalOpenAIServer() as server:
        ask = {"messages": [{"role": "user", "content": "Task: write a user message\nCategory: harmful"}]}
        prompts = [_post(server.url, ask)[2]["choices"][0]["message"]["content"] for _ in range(50)]
        final_request = "Task: write the final answer\nCategory: ambiguous\n<message>\nFix it\n</message>"
        final = _post(server.url, {"messages": [{"role": "user", "content": final_request}]})
    assert len(set(prompts)) == 50
    assert "more to go on" in final[2]["choices"][0]["message"]["content"]
    assert final[2]["usage"]["total_tokens"] > 0


def test_faults_are_served_as_asked():
    with LocalOpenAIServer(retry_after=1.5, hang_seconds=0.3, api_key="right") as server:
        server.scripted_faults = ["429", "500"]
        status, headers, body = _post(server.url, {"messages": [{"role": "user", "content": "hi"}]}, key="right")
        assert status == 429 and headers["retry-after"] == "2" and headers["retry-after-ms"] == "1500"
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert _post(server.url, {"messages": [{"role": "user", "content": "hi"}]}, key="right")[0] == 500
        assert _post(server.url, {"messages": [{"role": "user", "content": "hi"}]}, key="wrong")[0] == 401
        server.scripted_faults = ["hang"]
        start = time.perf_counter()
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            _post(server.url, {"messages": [{"role": "user", "content": "hi"}]}, key="right")
        assert time.perf_counter() - start >= 0.3  # nothing came back while it hung
        assert _post(server.url, {"messages": [{"role": "user", "content": "hi"}]}, key="right")[0] == 200
    assert dict(server.counts) == {"requests": 5, "429": 1, "500": 1, "401": 1, "hang": 1, "ok": 1}
    with pytest.raises(ValueError, match="unknown kind"):
        LocalOpenAIServer(faults=("418",))


def test_runs_as_a_script_and_reports_its_url():
    command = [sys.executable, "-m", "support.openai_server", "--latency", "0.01"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.split()[-1]
        with urllib.request.urlopen(f"{url}/models", timeout=5) as response:
            assert json.loads(response.read())["data"][0]["id"] == "local"
        assert _post(url, {"messages": [{"role": "user", "content": "hello"}]})[0] == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
