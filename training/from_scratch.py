"""Models from scratch, with no download: a byte-level BPE tokenizer trained on our texts and a
Qwen2-architecture model built from a config. The pocket pair, the tests and the GPU benchmark's
7B-shaped model all come from here."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pushback.chat import CHAT_TEMPLATE, END_OF_TURN, SPECIAL_TOKENS
from pushback.thinking import CLOSE_TAG, OPEN_TAG

# Qwen2-family shapes; "7b" matches Qwen2.5-7B / DeepSeek-R1-Distill-Qwen-7B.
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
    "pocket": dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=8,
                   num_key_value_heads=4),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064),
}


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048):
    """A byte-level BPE tokenizer with the ChatML specials; `<think>`/`</think>` are single,
    non-special tokens (as in Qwen3) so streaming keeps them while skipping the specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>", *SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=END_OF_TURN, pad_token="<|endoftext|>",
        bos_token=None, unk_token=None, clean_up_tokenization_spaces=False,
    )
    tokenizer.add_tokens([OPEN_TAG, CLOSE_TAG])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def qwen2_config(tokenizer: Any | None, shape: str = "tiny", **overrides: Any):
    from transformers import Qwen2Config

    size = dict(SHAPES[shape])
    if tokenizer is not None:
        size["vocab_size"] = len(tokenizer)
    size.update(overrides)
    extra = {}
    if tokenizer is not None:
        extra = dict(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                     bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"))
    settings = dict(max_position_embeddings=2048, tie_word_embeddings=True, **extra)
    settings.update(size)  # a shape override may untie the embeddings (the pocket pair does)
    return Qwen2Config(**settings)


def new_model(tokenizer: Any, shape: str = "tiny", seed: int = 0, **overrides: Any):
    """A randomly initialised Qwen2ForCausalLM sized for `tokenizer`."""
    import torch
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(qwen2_config(tokenizer, shape, **overrides))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def save_pretrained(model: Any, tokenizer: Any, out: str) -> str:
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
