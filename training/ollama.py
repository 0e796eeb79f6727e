"""`pushback export ollama --model MERGED_DIR --out DIR [--name NAME]`: a Modelfile for Ollama.

Ollama imports safetensors directly (`FROM <dir>`) for Qwen2-architecture models. Its `ADAPTER`
instruction accepts LoRA adapters only on llama and gemma2 bases, so a Qwen-based friction adapter
must be merged first (`pushback merge`); this command says so instead of writing a Modelfile that
`ollama create` would reject. The TEMPLATE reproduces our ChatML training format exactly, so the
model is prompted the way it was trained, and generation stops at the end of the turn.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from pushback.backends import GenerationParams
from pushback.chat import END_OF_TURN, system_prompt
from pushback.files import write_atomic

# Our ChatML (pushback.chat.CHAT_TEMPLATE) in Go-template form: the same tokens, newlines and order.
OLLAMA_TEMPLATE = """{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|im_start|>{{ .Role }}
{{ .Content }}{{ if not $last }}<|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_end|>
<|im_start|>assistant
{{ end }}
{{- end }}"""

STOP_TOKENS = (END_OF_TURN, "<|endoftext|>", "<|im_start|>")
ADAPTER_BASES = ("llama", "gemma2")  # the only architectures Ollama's ADAPTER instruction accepts


class ExportError(ValueError):
    """A model directory Ollama cannot import as given; the message says what to do instead."""


def trained_system_prompt(model_dir: Path) -> str:
    """The system prompt the weights were trained with (from the recipe copied in by merge)."""
    recipe = model_dir / "recipe.yaml"
    name = "plain"
    if recipe.exists():
        import yaml

        name = ((yaml.safe_load(recipe.read_text()) or {}).get("data") or {}).get("system") or "plain"
    return system_prompt(name) or ""


def check_importable(model_dir: Path) -> None:
    if not model_dir.is_dir():
        raise ExportError(f"{model_dir}: not a directory")
    if (model_dir / "adapter_config.json").exists():
        base = json.loads((model_dir / "adapter_config.json").read_text()).get("base_model_name_or_path", "?")
        raise ExportError(
            f"{model_dir} is a LoRA adapter (base {base}). Ollama's ADAPTER instruction accepts adapters only for "
            f"{' and '.join(ADAPTER_BASES)} bases, not Qwen-based ones: merge it first with\n"
            f"  pushback merge --adapter {model_dir} --out MERGED_DIR --dtype bf16\n"
            f"and export MERGED_DIR.")
    config = model_dir / "config.json"
    if not config.exists() or not any(model_dir.glob("*.safetensors")):
        raise ExportError(f"{model_dir}: expected config.json and *.safetensors (a `pushback merge` output)")


def modelfile(model_dir: Path, system: str) -> str:
    lines = [
        "# Written by `pushback export ollama`. The template is the ChatML format the model was trained on.",
        f"FROM {model_dir.resolve()}",
        f'TEMPLATE """{OLLAMA_TEMPLATE}"""',
    ]
    if system:
        lines.append(f'SYSTEM """{system}"""')
    lines += [f'PARAMETER stop "{token}"' for token in STOP_TOKENS]
    sampling = GenerationParams()  # the sampling the Space and evaluation use
    lines += [f"PARAMETER temperature {sampling.temperature}", f"PARAMETER top_p {sampling.top_p}",
              f"PARAMETER repeat_penalty {sampling.repetition_penalty}", "PARAMETER num_ctx 4096"]
    return "\n".join(lines) + "\n"


def export_ollama(model_dir: str | Path, out: str | Path, *, name: str = "pushback-friction") -> Path:
    model_dir, out = Path(model_dir), Path(out)
    check_importable(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "Modelfile", modelfile(model_dir, trained_system_prompt(model_dir)))
    commands = (f"ollama create {shlex.quote(name)} -f {shlex.quote(str((out / 'Modelfile').resolve()))}\n"
                f"# optional, smaller: add --quantize q4_K_M to the line above\n"
                f"ollama run {shlex.quote(name)} \"Since the sky is green, what colour are clouds?\"\n"
                f"# then in the Space or evaluation: litellm:ollama_chat/{name}\n")
    write_atomic(out / "commands.sh", "#!/bin/sh\nset -e\n" + commands)
    (out / "commands.sh").chmod(0o755)
    return out


def add_parser(parser: argparse.ArgumentParser) -> None:
    runtimes = parser.add_subparsers(dest="subcommand", required=True, metavar="{ollama}")
    o = runtimes.add_parser("ollama", help="write an Ollama Modelfile for merged weights")
    o.add_argument("--model", required=True, help="merged model directory")
    o.add_argument("--out", required=True)
    o.add_argument("--name", default="pushback-friction", help="name for `ollama create`")


def main(args: argparse.Namespace) -> int:
    try:
        out = export_ollama(args.model, args.out, name=args.name)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a read-only or missing folder, a file in the way
        print(f"error: --out {args.out}: cannot write there ({e.strerror or type(e).__name__})", file=sys.stderr)
        return 1
    print(f"wrote {out / 'Modelfile'}")
    print("create and run it with:")
    print((out / "commands.sh").read_text().split("\n", 2)[2].rstrip())
    return 0
