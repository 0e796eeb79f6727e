"""The one chat format: record -> messages, the ChatML training template, prompts, history hygiene.

Training, serving and evaluation all render through here, so what a model is trained on is what it
is asked at inference.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pushback.records import Record
from pushback.thinking import OPEN_TAG, join_thinking, split_thinking

SYSTEM_PLAIN = "You are a helpful assistant."

SYSTEM_FRICTION = (
    "You are a thoughtful assistant. Before answering, think in a <think> block about what is really "
    "being asked and what it assumes. Then help plainly when the request is fine. When it is not, add "
    "the right friction: correct a false premise and still help; decline a harmful request and offer a "
    "safe alternative; be honest about uncertainty and risk; ask specific questions when the request "
    "is too vague; keep a correct position under pressure. Never add friction to a harmless request."
)

SYSTEM_PROMPTS = {"plain": SYSTEM_PLAIN, "friction": SYSTEM_FRICTION}

# ChatML, as in DESIGN.md. The assistant turn sits inside {% generation %} so that
# `assistant_only_loss` trains on exactly the think block, the answer and the closing <|im_end|>.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- generation -%}{{ message['content'] + '<|im_end|>' }}{%- endgeneration -%}"
    "{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
END_OF_TURN = "<|im_end|>"
SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>")
# Tokens that end an assistant turn in the families we train and serve (ChatML/Qwen, DeepSeek-R1, Llama 3).
END_TOKENS = (END_OF_TURN, "<|endoftext|>", "<｜end▁of▁sentence｜>", "<|eot_id|>")

Message = dict[str, Any]
TemplateMode = Literal["pushback", "native"]


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Ids to stop generating at: EOS and every end-of-turn token this tokenizer knows."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for token in END_TOKENS:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            ids.add(token_id)
    return sorted(ids)


def system_prompt(name_or_text: str | None) -> str | None:
    """`plain`/`friction` name a built-in prompt; any other text is used as given; None means none."""
    if name_or_text is None:
        return None
    return SYSTEM_PROMPTS.get(name_or_text, name_or_text)


def assistant_text(record: Record) -> str:
    """What the friction model says: the monologue in its block, then the answer."""
    return join_thinking(record.monologue, record.final_answer)


def record_to_messages(record: Record, *, system: str | None = SYSTEM_PLAIN, friction: bool = True) -> list[Message]:
    """The training conversation: the friction turn, or (friction=False) the eager baseline turn."""
    reply = assistant_text(record) if friction else record.baseline_answer
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": record.user_input}, {"role": "assistant", "content": reply}]


def rejected_text(record: Record) -> str | None:
    """The reply a preference pair rejects: the eager answer where friction was warranted, the over-cautious
    one on a benign request (None for a benign record without one)."""
    return record.overcautious_answer if record.category == "benign" else record.baseline_answer


def preference_pair(record: Record, *, system: str | None = SYSTEM_PLAIN) -> dict[str, list[Message]] | None:
    """One record as TRL's conversational preference row: `prompt` (system + user), `chosen` (the friction
    model's reply: monologue and answer) and `rejected` (`rejected_text`). None when the record has no
    rejected side. Friction pairs teach the friction; benign pairs teach that plain help beats over-caution."""
    rejected = rejected_text(record)
    if rejected is None:
        return None
    prompt = record_to_messages(record, system=system)[:-1]
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": assistant_text(record)}],
            "rejected": [{"role": "assistant", "content": rejected}]}


def flatten_content(content: Any) -> str:
    """Gradio 6 sends content as a list of parts (`[{"type": "text", "text": ...}]`): make it text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    if isinstance(content, Sequence):
        return "".join(flatten_content(part) for part in content)
    return str(content)


def strip_monologues(history: Sequence[Message]) -> list[Message]:
    """History fit to send back to a model: thought bubbles dropped, `<think>` blocks removed."""
    cleaned = []
    for message in history:
        if (message.get("metadata") or {}).get("title"):
            continue  # a Gradio thought message, shown to people only
        text = flatten_content(message.get("content"))
        if message.get("role") == "assistant":
            text = split_thinking(text).answer
        cleaned.append({"role": message["role"], "content": text})
    return cleaned


def build_messages(history: Sequence[Message], user_input: str, system: str | None) -> list[Message]:
    messages = [{"role": "system", "content": system}] if system else []
    return messages + strip_monologues(history) + [{"role": "user", "content": user_input}]


def prompt_text(tokenizer: Any, messages: Sequence[Message]) -> str:
    """The prompt a causal LM continues, with the tokenizer's template (ours if it has none)."""
    template = None if getattr(tokenizer, "chat_template", None) else CHAT_TEMPLATE
    return tokenizer.apply_chat_template(list(messages), chat_template=template, tokenize=False, add_generation_prompt=True)


def prompt_ids(tokenizer: Any, conversations: Sequence[Sequence[Message]]) -> Any:
    """The prompts of `conversations` as model inputs (left-padded tensors), through the same template as
    `prompt_text`. Special-token strings inside message text stay plain text: visitor text
    `hi<|im_end|>\\n<|im_start|>system ...` cannot forge a turn. transformers' `sanitize_control_tokens`
    does this for any chat template: only the control tokens the template writes become tokens."""
    template = None if getattr(tokenizer, "chat_template", None) else CHAT_TEMPLATE
    return tokenizer.apply_chat_template([list(c) for c in conversations], chat_template=template,
                                         add_generation_prompt=True, tokenize=True, sanitize_control_tokens=True,
                                         return_dict=True, padding=True, return_tensors="pt")


def opens_think(prompt: str) -> bool:
    """True when the template already opened the think block (the answer starts inside it)."""
    return prompt.rstrip().endswith(OPEN_TAG)


def render_training_text(tokenizer: Any, record: Record, *, mode: TemplateMode = "pushback",
                         system: str | None = SYSTEM_PLAIN, friction: bool = True) -> str:
    """The exact text a record becomes in training: check it keeps the `<think>` block."""
    if mode == "pushback":
        messages = record_to_messages(record, system=system, friction=friction)
        return tokenizer.apply_chat_template(messages, chat_template=CHAT_TEMPLATE, tokenize=False)
    pair = prompt_completion(tokenizer, record, system=system, friction=friction)
    return pair["prompt"] + pair["completion"]


def prompt_completion(tokenizer: Any, record: Record, *, system: str | None = SYSTEM_PLAIN,
                      friction: bool = True) -> dict[str, str]:
    """A record in the tokenizer's own template, split where the loss starts.

    Native templates (DeepSeek-R1 distill, Qwen3) drop or move earlier think blocks when they render
    an assistant turn, so we render only the prompt with them and append the completion ourselves,
    placing the block where the template expects it (after an opened `<think>` if it opens one).
    """
    messages = record_to_messages(record, system=system, friction=friction)
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    return {"prompt": prompt, "completion": completion_after(prompt, messages[-1]["content"], tokenizer.eos_token)}


def completion_after(prompt: str, reply: str, eos: str | None) -> str:
    """`reply` as the completion of a rendered `prompt`, ending the turn with `eos`. Where the template already
    opened the think block (DeepSeek-R1 distill), the reply's own opening tag is left out."""
    if reply.startswith(OPEN_TAG) and opens_think(prompt):
        reply = reply.removeprefix(OPEN_TAG).lstrip("\n")
        reply = "\n" + reply if not prompt.endswith("\n") else reply
    return reply + (eos or "")
