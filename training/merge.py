"""`pushback merge --adapter DIR --out DIR [--dtype bf16]`: fold a LoRA adapter into its base.

The base is reloaded unquantized (merging onto the 4-bit model drifts most), the merge is done in
fp32 and the result cast to `--dtype`, then saved as safetensors with the tokenizer, our chat
template, a generation config that stops at the end of a turn, and the training records of the
adapter (recipe, metrics) so the merged model's card can cite them."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from pushback.backends import DTYPES, torch_dtype
from pushback.chat import stop_token_ids
from pushback.files import write_atomic

# Files of a `pushback train` output that describe how the weights were made; they travel with the merge.
PROVENANCE = ("recipe.yaml", "metrics.json", "training_example.txt", "loss.png")


def adapter_base(adapter: Path) -> str:
    config = adapter / "adapter_config.json"
    if not config.exists():
        raise FileNotFoundError(f"{adapter}: no adapter_config.json (is this a `pushback train` output?)")
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{config}: base_model_name_or_path is empty; cannot tell which base to merge into")
    return base


def load_unquantized_with_adapter(adapter: Path) -> Any:
    """The adapter on its base in fp32 and unquantized: the reference the merged weights must match."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(adapter_base(adapter), dtype=torch.float32)
    return PeftModel.from_pretrained(base, str(adapter)).eval()


def check_out(adapter: Path, out: Path) -> None:
    """Refuse an output that would write into the adapter (merged weights beside or over its files)."""
    a, o = adapter.resolve(), out.resolve()
    if o == a or a in o.parents:
        raise ValueError(f"--out {out} is {'the adapter folder' if o == a else 'inside the adapter folder'} "
                         f"{adapter}; choose a folder outside it")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: a file is in the way; choose a directory")


def merge_adapter(adapter: str | Path, out: str | Path, *, dtype: str = "bf16",
                  provenance: dict[str, Any] | None = None) -> Path:
    """The adapter folded into its unquantized base, saved to `out` (staged beside it, moved in when whole).
    `provenance` overrides what merge.json says about the inputs (the pocket build names its base
    `pocket:baseline`, where it ends up, not the directory it was built in)."""
    from transformers import AutoTokenizer

    from training.train import move_in

    if dtype not in DTYPES:
        raise ValueError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    adapter, out = Path(adapter), Path(out)
    check_out(adapter, out)
    model = load_unquantized_with_adapter(adapter)
    merged = model.merge_and_unload().to(torch_dtype(dtype))
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    merged.config.use_cache = True  # training turned it off; generation wants it
    merged.generation_config.eos_token_id = stop_token_ids(tokenizer)
    merged.generation_config.pad_token_id = tokenizer.pad_token_id
    stage = out.parent / f".{out.name}.staging"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        merged.save_pretrained(stage)
        tokenizer.save_pretrained(stage)
        for name in PROVENANCE:
            if (adapter / name).exists():
                shutil.copy2(adapter / name, stage / name)
        info = {"base_model": adapter_base(adapter), "adapter": str(adapter.resolve()), "dtype": dtype,
                **(provenance or {})}
        write_atomic(stage / "merge.json", json.dumps(info, indent=2) + "\n")
        move_in(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", required=True, help="adapter directory (output of pushback train)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--dtype", default="bf16", choices=DTYPES)


def main(args: argparse.Namespace) -> int:
    try:
        out = merge_adapter(args.adapter, args.out, dtype=args.dtype)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"merged model saved to {out} ({args.dtype}); load it with AutoModelForCausalLM.from_pretrained")
    return 0
