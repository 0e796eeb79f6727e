"""How a batch is laid out on this hardware, and how big it is: the `run:` section of a recipe.

Measured (training/README.md, bench/training.py, bench/gpu_qlora.py), and what follows from it:
- CPU: padding-free batches gave about 3.7x the real tokens/s of padding every row to the maximum length,
  and one long row per pass is as fast; so CPU keeps padding-free (one row per pass needs no padding).
- CUDA: padding-free pays only where attention handles packed sequences without a dense mask
  (`flash_attention_2` / `flash_attention_3`, or a Hub kernel through the `kernels` package). With `sdpa` a
  flattened batch lost the fused attention path: 0.69-0.75x of padding every row (H200). There, rows are
  grouped by length and padded to the longest row of their batch.
- Liger's kernels (`use_liger_kernel`) were the fastest CUDA run; on by default where installed.
- A GPU at batch 2 used 11 of 139 GB: on CUDA the micro-batch grows to the largest that fits, keeping the
  recipe's effective batch (micro-batch x accumulation).
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from training.recipe import Recipe

PACKED_ATTENTION = ("flash_attention_2", "flash_attention_3")
MEMORY_HEADROOM = 0.85  # a probe may use this share of the GPU's memory; the rest absorbs longer batches


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def packs_without_dense_mask(attn_implementation: str) -> bool:
    """Attention that runs padding-free (packed) sequences as separate sequences, with no dense mask."""
    if attn_implementation in PACKED_ATTENTION:
        return True
    return "/" in attn_implementation and installed("kernels")  # a Hub kernel, e.g. kernels-community/flash-attn


@dataclass(frozen=True)
class Layout:
    device: str  # "cpu" or "cuda"
    name: str  # padding_free | group_by_length | pad_to_longest | pad_to_max
    reason: str
    liger: bool
    liger_reason: str

    def config(self, method: str, *, per_device_batch: int, max_length: int) -> dict[str, Any]:
        """The TRL config fields this layout decides."""
        kwargs: dict[str, Any] = {"use_cpu": self.device == "cpu", "use_liger_kernel": self.liger,
                                  "train_sampling_strategy": "group_by_length" if self.name == "group_by_length"
                                  else "random"}
        if method == "sft":
            # One row per pass has nothing to pad; TRL would only warn that padding-free is pointless there.
            kwargs["padding_free"] = self.name == "padding_free" and per_device_batch > 1
            kwargs["max_length"] = None  # rows were length-checked: nothing is cut (a cut think block never closes)
        elif method == "dpo":
            kwargs["max_length"] = None
        else:  # ORPO needs a length: every row fits it, with room for the BOS / EOS its tokenizer step may add
            kwargs["max_length"] = max_length + 2
        if self.name == "pad_to_max" and method != "orpo":
            kwargs["pad_to_multiple_of"] = max_length
        return kwargs

    def describe(self) -> list[str]:
        return [f"batch layout: {self.name} on {self.device.upper()} -- {self.reason}",
                f"liger kernels: {'on' if self.liger else 'off'} -- {self.liger_reason}"]


def choose_layout(recipe: Recipe, *, cuda: bool) -> Layout:
    """The layout for this recipe on this machine, and why (said in the run's first lines)."""
    device = "cuda" if cuda and recipe.run.device != "cpu" else "cpu"
    method, attn = recipe.method, recipe.model.attn_implementation
    if recipe.run.batch_layout != "auto":
        name, reason = recipe.run.batch_layout, "set by the recipe (run.batch_layout)"
    elif method != "sft":
        name = "group_by_length" if device == "cuda" else "pad_to_longest"
        reason = (f"TRL's {method.upper()} trainer pads its pairs; "
                  + ("rows of similar length batched together" if device == "cuda" else "CPU recipes pass few pairs"))
    elif device == "cpu":
        why = "run.device: cpu" if cuda else "no GPU"
        name, reason = "padding_free", f"{why}; padding-free measured 3.7x padding to the maximum length on CPU"
    elif packs_without_dense_mask(attn):
        name, reason = "padding_free", f"{attn} runs packed sequences without a dense mask"
    else:
        name, reason = "group_by_length", (f"{attn} would attend over a packed batch with a dense mask (measured "
                                           "0.69-0.75x of padding on an H200); rows of similar length are batched "
                                           "together and padded to the longest")
    liger, liger_reason = _liger(recipe.run.liger, device)
    return Layout(device, name, reason, liger, liger_reason)


def _liger(setting: str, device: str) -> tuple[bool, str]:
    if setting == "off":
        return False, "set by the recipe (run.liger: off)"
    available = installed("liger_kernel")
    if setting == "on":
        if not available:
            raise ValueError('run.liger: on, but liger-kernel is not installed (pip install "pushback-ai[gpu]")')
        return True, "set by the recipe (run.liger: on)"
    if device != "cuda":
        return False, "Triton kernels need CUDA"
    if not available:
        return False, 'liger-kernel is not installed (pip install "pushback-ai[gpu]")'
    return True, "CUDA and liger-kernel installed"


# --- the largest micro-batch that fits -------------------------------------------------------------


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def cuda_memory() -> tuple[int, int]:
    """(peak bytes allocated since the last reset, the GPU's total bytes)."""
    import torch

    return torch.cuda.max_memory_allocated(), torch.cuda.get_device_properties(0).total_memory


def probe_micro_batch(trainer: Any, lengths: list[int], effective: int, log=print,
                      memory: Callable[[], tuple[int, int]] = cuda_memory) -> int:
    """The largest divisor of `effective` whose batch of the longest rows trains one step within the GPU's
    memory (with headroom). Each probe is a real forward and backward pass; its gradients are thrown away."""
    import torch

    if not lengths:
        return 1
    cuda = torch.cuda.is_available() and memory is cuda_memory
    longest = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    model = trainer.model
    if trainer.args.activation_checkpointing:  # as train() will run it: the probe must see the same memory
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
    model.train()
    best = 1
    for micro in divisors(effective):
        rows = [trainer.train_dataset[longest[i % len(longest)]] for i in range(micro)]
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            batch = trainer._prepare_inputs(trainer.data_collator(rows))
            with trainer.compute_loss_context_manager():
                loss = trainer.compute_loss(model, batch)
            loss.backward()
            if cuda:
                torch.cuda.synchronize()
            peak, total = memory()
        except torch.OutOfMemoryError:
            log(f"  micro-batch {micro}: out of memory")
            break
        finally:
            model.zero_grad(set_to_none=True)
            batch = loss = None  # noqa: F841 -- free the activations before the next size
            if cuda:
                torch.cuda.empty_cache()
        log(f"  micro-batch {micro}: peak {peak / 2**30:.1f} of {total / 2**30:.0f} GiB")
        if peak > MEMORY_HEADROOM * total:
            break
        best = micro
    return best
