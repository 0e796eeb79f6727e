"""Shared by the Space tests and `bench/space.py`: a scripted OpenAI-compatible model, a tiny local
model that always writes exactly `max_new_tokens` tokens, and launching the app on a free port.

The scripted model is the generation wing's real HTTP server (`support/openai_server.py`) with its
replies swapped for a script keyed on words in the prompt, so a test knows what each column says.
"""
from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

from support.openai_server import LocalOpenAIServer, serve_until_killed

from pushback.chat import SYSTEM_FRICTION
from pushback.pressure import FOLLOW_UPS
from pushback.thinking import CLOSE_TAG, OPEN_TAG

MONOLOGUE = ("The visitor assumes something that may not hold. Check the premise before answering, "
             "then help with what is actually true.")
ANSWER = "Careful: that premise is shaky. Here is what is known, and how to check it yourself."
# An answer that would run code if it were rendered as HTML rather than shown as text.
INJECTION = ('Try this: <script>window.__pwned = 1</script> '
             '<img src=x onerror="window.__pwned = 2"> <b>not bold</b> and `a < b` stays code.')


# Under a push back (a follow-up from pushback.pressure): the friction-prompted model holds, any other caves.
HOLD = "I understand the doubt, but I'll hold on this: the premise is still wrong, and here is how to check it."
CAVE = "You're right, I apologise for my mistake. The premise holds after all."
PUSH_BACKS = {text for _, text in FOLLOW_UPS.values()}


def exfiltration(url: str) -> str:
    """Markdown that makes a browser fetch `url` if it is rendered as an image (or invites a click as a link)."""
    return f"![chart]({url}?q=the+conversation) and [details]({url}?click=1)"


def scripted_reply(prompt: str, system: str = "") -> str:
    """What the scripted model says to `prompt`: a monologue and an answer (keywords pick variants;
    "exfiltrate URL" puts Markdown images of URL in both)."""
    lowered = prompt.lower()
    if prompt in PUSH_BACKS:
        return f"<think>\nThe visitor pushes back. Check again.\n</think>\n\n{HOLD if system == SYSTEM_FRICTION else CAVE}"
    if "exfiltrate " in lowered:
        url = prompt.split("exfiltrate ", 1)[1].split()[0]
        return f"<think>\nSee {exfiltration(url)}\n</think>\n\nHere: {exfiltration(url)}"
    if "inject" in lowered:
        return f"<think>\nThe answer below holds markup: <i>show it as text</i>.\n</think>\n\n{INJECTION}"
    if "endless" in lowered:  # long enough that only Stop ends it
        return "<think>\n" + " ".join(f"thought{i}" for i in range(20_000)) + "\n</think>\n\nnever reached"
    return f"<think>\n{MONOLOGUE}\n</think>\n\n{ANSWER}"


class _ScriptWriter:
    def reply(self, messages: list[dict[str, Any]]) -> str:
        user = [m for m in messages if m.get("role") == "user"]
        system = next((str(m.get("content", "")) for m in messages if m.get("role") == "system"), "")
        return scripted_reply(str(user[-1].get("content", "")) if user else "", system)


class ScriptedServer(LocalOpenAIServer):
    """The real streaming server, answering from `scripted_reply` (word by word, `chunk_delay` apart)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._writer = _ScriptWriter()

    def spec(self, system: str | None = None) -> str:
        """A model spec for this server (LiteLLM's OpenAI-compatible provider)."""
        return f"litellm:openai/scripted@api_base={self.url}" + (f"@system={system}" if system else "")


def fixed_length_model(source: Path, out: Path, *, also_suppress: tuple[str, ...] = ()) -> Path:
    """A copy of a tiny model that never ends early (its end tokens suppressed) and never writes a think
    tag: every reply is exactly `max_new_tokens` of plain answer, so timings, Stop tests and message
    counts do not depend on what random weights happen to sample. Tokens in `also_suppress` are never
    generated either."""
    from transformers import AutoTokenizer

    shutil.copytree(source, out, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(out)
    banned = {tokenizer.convert_tokens_to_ids(t)
              for t in ("<|im_end|>", "<|endoftext|>", OPEN_TAG, CLOSE_TAG, *also_suppress)}
    path = out / "generation_config.json"
    config = json.loads(path.read_text()) if path.exists() else {}
    config["suppress_tokens"] = sorted(i for i in banned | {tokenizer.eos_token_id} if isinstance(i, int))
    path.write_text(json.dumps(config, indent=2))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(demo: Any) -> str:
    """Serve a Blocks app on 127.0.0.1 from this process's threads; returns its URL. (`build_demo`
    already set up the queue with the Space's limits; calling `.queue()` again would reset them.)"""
    from space import launch_options

    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                show_error=True, **launch_options())
    return demo.local_url


def thinking_template_model(source: Path, out: Path) -> Path:
    """A copy of a tiny model whose chat template opens `<think>` in the prompt (as DeepSeek-R1
    distills do), so its reply starts inside the monologue. It never writes a think tag or an end
    token itself, so the whole reply is monologue whatever the random weights prefer."""
    from transformers import AutoTokenizer


    fixed_length_model(source, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokenizer.chat_template = tokenizer.chat_template.replace(
        "{{ '<|im_start|>assistant\\n' }}{%- endif -%}", "{{ '<|im_start|>assistant\\n<think>\\n' }}{%- endif -%}")
    assert tokenizer.chat_template.endswith("<think>\\n' }}{%- endif -%}"), "template changed: update this helper"
    tokenizer.save_pretrained(out)
    return out


def warm(config: Any) -> None:
    """The app's own warm-up (models loaded, LiteLLM imported and exercised), waited for, so tests
    time streaming rather than loading."""
    from space import warm_up

    for thread in warm_up(config):
        thread.join()


def generation_threads(before: set) -> list:
    """Threads started since `before` that still stream or generate (`side:*`, `generate:*`)."""
    import threading

    return [t for t in set(threading.enumerate()) - before if t.name.startswith(("generate:", "side:"))]


def wait_for_generation_threads(before: set, timeout: float) -> list:
    """Wait up to `timeout` seconds for generation threads started since `before` to end; returns the
    ones still alive."""
    import time

    deadline = time.monotonic() + timeout
    while (left := generation_threads(before)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def main() -> None:
    """`python -m support.scripted --chunk-delay 0.02`: serve the scripted model from its own
    process (benchmarks keep it off their own GIL); prints its URL, serves until killed."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--chunk-delay", type=float, default=0.02, help="seconds between streamed words")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before the first word")
    args = parser.parse_args()
    server = ScriptedServer(chunk_delay=args.chunk_delay, latency=args.latency)

    serve_until_killed(server)


if __name__ == "__main__":
    main()
