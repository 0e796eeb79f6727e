"""`pushback pocket [--out DIR] [--tiny]`: the offline baseline/friction pair, built from the curated set
with no download, so the Space, evaluation and the tests run anywhere.

Steps (each timed and shown):
1. split     -- the project's one split (`pushback.splits.split_records`); the test part is held out
2. tokenizer -- a byte-level BPE trained on the training records (`training.from_scratch`)
3. baseline  -- a small Qwen2 trained from scratch on user_input -> baseline_answer (the eager turn)
4. friction  -- QLoRA on the NF4-quantized baseline with the friction format (`pushback train`'s code),
                then merged into the unquantized baseline (`pushback merge`'s code)
5. quality   -- held-out prompts through `pushback.backends`: the share of replies with a well-formed
                `<think>` monologue, for both models

The result is cached: a second call with the same inputs returns the existing pair.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pushback.backends import DEVICE_VARIABLE
from pushback.chat import assistant_text
from pushback.files import write_atomic
from pushback.paths import curated_files
from pushback.pocket import MANIFEST, is_built, pocket_dir
from pushback.records import Record, load_records
from pushback.splits import split_records

BUILD_VERSION = 3  # bump when the recipe below changes, so cached pairs are rebuilt
POCKET_RECIPE = Path(__file__).resolve().parent / "recipes" / "pocket.yaml"  # the friction stage's recipe


@dataclass(frozen=True)
class PocketPlan:
    """Everything that decides what gets built; its hash keys the cache."""

    vocab_size: int
    shape: str
    pretrain_epochs: float  # plain language modelling on the training texts (no chat format)
    pretrain_block: int | None  # pack the texts into blocks of this many tokens (None: one text per row)
    baseline_epochs: float  # SFT on the eager turn
    baseline_lr: float
    baseline_batch: int
    friction_overrides: tuple[str, ...]  # `--set` changes to training/recipes/pocket.yaml for the friction stage
    quality_prompts: int
    max_new_tokens: int
    threads: int | None = None  # torch threads while building; small models run faster on one
    train_limit: int | None = None
    short_monologue: bool = False  # tiny: keep only the synthesizer's thought, so the block is short
    shape_overrides: tuple[tuple[str, Any], ...] = (("tie_word_embeddings", False),)


PLANS = {
    "tiny": PocketPlan(vocab_size=512, shape="tiny", pretrain_epochs=8, pretrain_block=None, baseline_epochs=3,
                       baseline_lr=3e-3, baseline_batch=4,
                       friction_overrides=("training.num_train_epochs=8", "training.learning_rate=1e-2",
                                           "training.per_device_train_batch_size=4",
                                           "training.gradient_accumulation_steps=1", "lora.r=16", "lora.alpha=32",
                                           "data.max_length=512"),
                       quality_prompts=24, max_new_tokens=96, threads=1, train_limit=64,
                       short_monologue=True),
    # On CPU, attention over a padding-free pack of several sequences uses a dense mask whose cost grows
    # with the square of the pack: short eager rows go 8 per pass, pretraining text in blocks, and the
    # long friction rows one per pass (as pocket.yaml says).
    "full": PocketPlan(vocab_size=2048, shape="pocket", pretrain_epochs=2, pretrain_block=512, baseline_epochs=1.5,
                       baseline_lr=2e-3, baseline_batch=8, friction_overrides=(),
                       quality_prompts=40, max_new_tokens=400, threads=1,
                       shape_overrides=(("hidden_size", 128), ("intermediate_size", 384), ("num_attention_heads", 4),
                                        ("num_key_value_heads", 2), ("tie_word_embeddings", False))),
}


@dataclass
class QualityCheck:
    prompts: int
    friction_well_formed: float  # share of friction replies with one closed, non-empty monologue + answer
    baseline_well_formed: float  # the same share for the baseline (should be ~0)
    friction_target: float = 0.9
    baseline_target: float = 0.05
    samples: list[dict[str, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.friction_well_formed >= self.friction_target and self.baseline_well_formed <= self.baseline_target

    def summary(self) -> str:
        def mark(ok: bool) -> str:
            return "ok" if ok else "BELOW TARGET"

        return (f"quality check on {self.prompts} held-out prompts:\n"
                f"  friction replies with a well-formed <think> monologue: {self.friction_well_formed:.0%} "
                f"(target >= {self.friction_target:.0%}) {mark(self.friction_well_formed >= self.friction_target)}\n"
                f"  baseline replies with one: {self.baseline_well_formed:.0%} "
                f"(target <= {self.baseline_target:.0%}) {mark(self.baseline_well_formed <= self.baseline_target)}")


@dataclass
class PocketResult:
    out: Path
    baseline: Path
    friction: Path
    quality: QualityCheck
    seconds: float
    cached: bool
    timings: dict[str, float]


# --- steps ----------------------------------------------------------------------------------------


def _fingerprint(records: list[Record], plan: PocketPlan, seed: int) -> str:
    digest = hashlib.sha1()
    digest.update(json.dumps({"plan": asdict(plan), "seed": seed, "version": BUILD_VERSION}, sort_keys=True).encode())
    digest.update(POCKET_RECIPE.read_bytes())
    for r in sorted(records, key=lambda r: r.id):
        digest.update(r.to_json().encode())
    return digest.hexdigest()


def plan_fingerprint(tiny: bool = False) -> str:
    """What a build of the curated set decides, whatever the seed: the plan, the recipe, the records. Results
    measured on the pocket pair carry it, so they can tell when the pair they measured no longer exists."""
    return _fingerprint(load_records(curated_files()), PLANS["tiny" if tiny else "full"], seed=-1)[:16]


def _blocks(tokenizer: Any, texts: list[str], size: int) -> list[dict[str, list[int]]]:
    """Pretraining rows: the texts joined by end-of-text and cut into blocks of `size` tokens (plain
    language modelling, as GPT-style pretraining does; chat SFT below never packs dialogues)."""
    separator = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    stream: list[int] = []
    for text in texts:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"] + [separator]
    return [{"input_ids": stream[i:i + size]} for i in range(0, len(stream) - size // 4, size)]


def _baseline_recipe(name: str, plan: PocketPlan, seed: int, epochs: float, batch: int):
    """A stage of the from-scratch baseline as a recipe: full fine-tuning on the CPU, no eval, no checkpoints."""
    from training.recipe import parse_recipe

    return parse_recipe({
        "name": f"pocket-{name}", "method": "sft",
        "model": {"base": "(built from scratch by pushback pocket)", "quantization": "none", "compute_dtype": "fp32"},
        "run": {"device": "cpu", "auto_batch_size": False},
        "training": {"num_train_epochs": epochs, "per_device_train_batch_size": batch, "learning_rate": plan.baseline_lr,
                     "lr_scheduler_type": "cosine", "warmup_steps": 0.05, "logging_steps": 25, "seed": seed, "eval_strategy": "no",
                     "save_strategy": "no", "activation_checkpointing": False, "optim": "adamw_torch"},
    }, where=f"pocket build ({name})")


def _train_baseline(tokenizer: Any, train: list[Record], plan: PocketPlan, seed: int, work: Path,
                    out: Path) -> None:
    """From scratch, in two stages, as real chat models are made:
    1. pretraining: plain language modelling on the training texts (prompts, eager answers, and the
       friction replies as raw text, think tags included -- as a web-scale base has seen reasoning
       traces). No chat format, no loss masking.
    2. instruction tuning on the eager turn only: user_input -> baseline_answer.
    The baseline therefore knows the words and the tags but is tuned never to open a think block; the
    quality check measures that it does not. The friction LoRA then has to switch behaviour, not
    learn a language from nothing in a rank-r update. Both stages go through `pushback train`'s trainer
    step (full fine-tuning: no adapter)."""
    from training.data import Rows, chat_rows
    from training.from_scratch import new_model, save_pretrained
    from training.layout import choose_layout
    from training.train import build_trainer, fit

    model = new_model(tokenizer, plan.shape, seed=seed, **dict(plan.shape_overrides))

    def stage(name: str, rows: list[dict[str, Any]], epochs: float, batch: int) -> Any:
        recipe = _baseline_recipe(name, plan, seed, epochs, batch)
        trainer = build_trainer(recipe, choose_layout(recipe, cuda=False), model, tokenizer, Rows(rows), Rows([]),
                                None, checkpoints=work / name, quiet=True)
        fit(trainer, work / name, resume=False)
        return trainer.model

    if plan.pretrain_epochs:
        texts = [t for r in train for t in (r.user_input, assistant_text(r), r.baseline_answer)]
        rows = _blocks(tokenizer, texts, plan.pretrain_block) if plan.pretrain_block else [{"text": t} for t in texts]
        model = stage("pretrain", rows, plan.pretrain_epochs, 1 if plan.pretrain_block else plan.baseline_batch)
    model = stage("baseline", chat_rows(train, tokenizer, friction=False), plan.baseline_epochs, plan.baseline_batch)
    save_pretrained(model, tokenizer, str(out))


def _train_friction(baseline: Path, train: list[Record], held: list[Record], plan: PocketPlan, seed: int,
                    work: Path, out: Path) -> None:
    """QLoRA on the NF4 baseline with the friction format, then merged: `pushback train` with the shipped
    recipe training/recipes/pocket.yaml (the plan may override some of it), then `pushback merge`. The
    build skips evaluation and checkpoints: its held-out prompts go to the quality check instead. The
    saved recipe, metrics and merge record name the base `pocket:baseline`, where it ends up."""
    from training.data import RecordSplit
    from training.merge import merge_adapter
    from training.recipe import load_recipe
    from training.train import run_training

    recipe = load_recipe(POCKET_RECIPE, [
        f"model.base={baseline}", "run.device=cpu", "training.eval_strategy=no", "training.save_strategy=no",
        "training.load_best_model_at_end=false", "run.early_stopping_patience=null", f"training.seed={seed}",
        *plan.friction_overrides])
    adapter = work / "friction-adapter"
    run_training(recipe, adapter, split=RecordSplit(train, held, "curated"), base_label="pocket:baseline",
                 quiet=True, log=lambda _: None)
    merge_adapter(adapter, out, dtype="fp32",
                  provenance={"base_model": "pocket:baseline", "adapter": "(trained and merged by pushback pocket)"})


def quality_check(baseline: Path, friction: Path, held: list[Record], *, n: int, max_new_tokens: int,
                  seed: int) -> QualityCheck:
    """Held-out prompts through the same backend the Space and evaluation use."""
    from pushback.backends import GenerationParams, clear_loaded, load_backend
    from pushback.thinking import split_thinking

    clear_loaded()  # a rebuilt pair at the same path must not be served from memory
    prompts = [[{"role": "user", "content": r.user_input}] for r in held[:n]]
    params = GenerationParams(max_new_tokens=max_new_tokens, seed=seed)
    shares, samples = {}, []
    with on_cpu():
        for name, path in (("baseline", baseline), ("friction", friction)):
            replies = load_backend(str(path)).generate_batch(prompts, params)
            shares[name] = sum(split_thinking(t).well_formed for t in replies) / max(1, len(replies))
            samples += [{"model": name, "prompt": p[0]["content"], "reply": t} for p, t in zip(prompts[:3], replies)]
        clear_loaded()
    return QualityCheck(len(prompts), shares["friction"], shares["baseline"], samples=samples)


def _first_sentence(text: str) -> str:
    match = re.search(r"[.!?](\s|$)", text)
    return text[: match.end()].strip() if match else text


def _short(record: Record) -> Record:
    """The record cut down for the seconds-long tiny build: the synthesizer's first sentence as the
    monologue and the first sentence of each answer -- the same format, a few dozen tokens long."""
    last = record.agents[-1]
    thought = last.model_copy(update={"thought_stream": _first_sentence(last.thought_stream)})
    return record.model_copy(update={"agents": [thought], "final_answer": _first_sentence(record.final_answer),
                                     "baseline_answer": _first_sentence(record.baseline_answer)})


# --- the build ------------------------------------------------------------------------------------


def _cached(out: Path, fingerprint: str | None) -> PocketResult | None:
    """The pair already in `out` if it was built from these inputs (any inputs when `fingerprint` is None)."""
    if not is_built(out):
        return None
    try:
        info = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        if fingerprint is not None and info.get("fingerprint") != fingerprint:
            return None
        quality = QualityCheck(**info["quality"])
    except (ValueError, KeyError, TypeError) as e:  # a torn or edited manifest: say which file, rebuild
        raise ValueError(f"{out / MANIFEST}: not a pocket build manifest ({type(e).__name__}: {e}); "
                         "run `pushback pocket --force` to rebuild the pair") from None
    return PocketResult(out, out / "baseline", out / "friction", quality, info["seconds"], True, info["timings"])


@contextmanager
def on_cpu() -> Iterator[None]:
    """Backends load on the CPU for the duration, even where a GPU is visible: a model this small runs its
    many tiny steps faster there (the `--tiny` build: 25 s on an H200 machine's CPUs, over 60 s on its GPU)."""
    before = os.environ.get(DEVICE_VARIABLE)
    os.environ[DEVICE_VARIABLE] = "cpu"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(DEVICE_VARIABLE, None)
        else:
            os.environ[DEVICE_VARIABLE] = before


def build_pocket(out: Path | None = None, *, tiny: bool = False, seed: int = 0, data: list[Path] | None = None,
                 force: bool = False, log: Callable[[str], None] = print) -> PocketResult:
    """Build (or reuse) the pocket pair in `out`; return its paths and quality figures."""
    plan = PLANS["tiny" if tiny else "full"]
    out = Path(out or pocket_dir())
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: a file is in the way; the pocket pair is a directory")
    from training.train import cpu_threads

    with cpu_threads(plan.threads):
        return _build(out, plan, tiny=tiny, seed=seed, data=data, force=force, log=log)


def _build(out: Path, plan: PocketPlan, *, tiny: bool, seed: int, data: list[Path] | None, force: bool,
           log: Callable[[str], None]) -> PocketResult:
    import torch

    files = [Path(p) for p in data] if data else curated_files()
    if not files:
        raise FileNotFoundError("no record files: data/curated/*.jsonl is empty and --data was not given")
    records = load_records(files)
    fingerprint = _fingerprint(records, plan, seed)
    if not force and (hit := _cached(out, fingerprint)):
        log(f"pocket pair already built in {out} (use --force to rebuild)")
        return hit

    start = time.perf_counter()
    timings: dict[str, float] = {}

    def step(name: str, t0: float) -> float:
        timings[name] = round(time.perf_counter() - t0, 2)
        log(f"  {name:<10} {timings[name]:6.1f} s")
        return time.perf_counter()

    torch.manual_seed(seed)
    train, held = split_records(records)  # the split the dataset and evaluation use
    if plan.train_limit:
        train = train[: plan.train_limit]
    if plan.short_monologue:
        train = [_short(r) for r in train]
    log(f"building the pocket pair in {out} ({'tiny' if tiny else 'full'}; {len(train)} training records, "
        f"{len(held)} held out)")
    out.mkdir(parents=True, exist_ok=True)
    # Build beside the pair, swap it in at the end: a crash or a reader never sees half a pair.
    work = out / f".build-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    t = time.perf_counter()

    from training.from_scratch import train_tokenizer

    texts = [text for r in train for text in (r.user_input, r.monologue, r.final_answer, r.baseline_answer)]
    tokenizer = train_tokenizer(texts, vocab_size=plan.vocab_size)
    t = step("tokenizer", t)
    _train_baseline(tokenizer, train, plan, seed, work, work / "baseline")
    t = step("baseline", t)
    _train_friction(work / "baseline", train, held, plan, seed, work, work / "friction")
    t = step("friction", t)
    quality = quality_check(work / "baseline", work / "friction", held or train, n=plan.quality_prompts,
                            max_new_tokens=plan.max_new_tokens, seed=seed)
    t = step("quality", t)
    (out / MANIFEST).unlink(missing_ok=True)
    for name in ("baseline", "friction"):
        shutil.rmtree(out / name, ignore_errors=True)
        os.replace(work / name, out / name)
    shutil.rmtree(work, ignore_errors=True)
    seconds = round(time.perf_counter() - start, 2)
    info = {"fingerprint": fingerprint, "tiny": tiny, "seed": seed, "plan": asdict(plan), "seconds": seconds,
            "timings": timings, "records": {"train": len(train), "held_out": len(held)},
            "quality": asdict(quality), "data": [str(f) for f in files]}
    write_atomic(out / MANIFEST, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    log(quality.summary())
    log(f"built in {seconds:.1f} s: pocket:baseline -> {out / 'baseline'}, pocket:friction -> {out / 'friction'}")
    return PocketResult(out, out / "baseline", out / "friction", quality, seconds, False, timings)


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="directory (default: $PUSHBACK_CACHE/pocket or ~/.cache/pushback/pocket)")
    parser.add_argument("--tiny", action="store_true", help="seconds-long variant for tests")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", nargs="+", help="record files (default: data/curated/*.jsonl)")
    parser.add_argument("--force", action="store_true", help="rebuild even if a cached pair exists")


def main(args: argparse.Namespace) -> int:
    try:
        result = build_pocket(Path(args.out) if args.out else None, tiny=args.tiny, seed=args.seed,
                              data=[Path(p) for p in args.data] if args.data else None, force=args.force)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if result.cached:
        print(result.quality.summary())
    if result.out.resolve() != pocket_dir().resolve():
        hint = (f"set PUSHBACK_CACHE={result.out.resolve().parent} to use this pair by those names"
                if result.out.name == "pocket" else "load this pair by its paths")
        print(f"note: the specs pocket:baseline / pocket:friction look in {pocket_dir()}; {hint}")
    return 0
