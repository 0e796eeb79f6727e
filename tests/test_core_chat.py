"""The one chat format: messages, the training template and its loss mask, prompts, history."""
from __future__ import annotations

import pytest

from pushback.chat import (
    CHAT_TEMPLATE,
    SYSTEM_FRICTION,
    SYSTEM_PLAIN,
    build_messages,
    flatten_content,
    opens_think,
    prompt_completion,
    prompt_text,
    record_to_messages,
    render_training_text,
    strip_monologues,
    system_prompt,
)
from pushback.records import make_record

# A DeepSeek-R1-distill-like template: drops think blocks from history and opens <think> in the prompt.
R1_LIKE_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}"
    "{% elif m['role'] == 'user' %}<｜User｜>{{ m['content'] }}"
    "{% else %}<｜Assistant｜>{{ m['content'].split('</think>')[-1] }}<｜end▁of▁sentence｜>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def record():
    return make_record("Since the sky is green, what colour are clouds?", "false_premise",
                      [("problem_framer", "The premise is false: the sky looks blue."),
                       ("synthesizer", "Correct it kindly, then answer about clouds.")],
                      "The sky is actually blue. Clouds look white or grey.", "Clouds are green too!", source="curated")


def test_record_to_messages(record):
    system, user, assistant = record_to_messages(record)
    assert system == {"role": "system", "content": SYSTEM_PLAIN}
    assert user["content"] == record.user_input
    assert assistant["content"] == (
        "<think>\nThe premise is false: the sky looks blue.\n\nCorrect it kindly, then answer about clouds.\n</think>\n\n"
        "The sky is actually blue. Clouds look white or grey.")
    assert record_to_messages(record, friction=False, system=None)[-1]["content"] == "Clouds are green too!"


def test_training_text_keeps_the_think_block(tokenizer, record):
    text = render_training_text(tokenizer, record)
    assert text == (
        f"<|im_start|>system\n{SYSTEM_PLAIN}<|im_end|>\n<|im_start|>user\n{record.user_input}<|im_end|>\n"
        f"<|im_start|>assistant\n{record_to_messages(record)[-1]['content']}<|im_end|>\n")


def test_loss_mask_covers_exactly_the_assistant_span(tokenizer, record):
    out = tokenizer.apply_chat_template(record_to_messages(record), chat_template=CHAT_TEMPLATE, tokenize=True,
                                        return_dict=True, return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tokenizer.decode(trained) == record_to_messages(record)[-1]["content"] + "<|im_end|>"


def test_prompt_ends_with_the_assistant_header(tokenizer):
    prompt = prompt_text(tokenizer, [{"role": "user", "content": "Hi"}])
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n") and not opens_think(prompt)


def test_native_template_that_opens_think(tokenizer, record):
    tokenizer.chat_template = R1_LIKE_TEMPLATE
    try:
        pair = prompt_completion(tokenizer, record)
        assert opens_think(pair["prompt"])
        full = pair["prompt"] + pair["completion"]
        assert full.count("<think>") == 1 and full.count("</think>") == 1
        assert "The premise is false" in pair["completion"] and pair["completion"].endswith(tokenizer.eos_token)
        assert render_training_text(tokenizer, record, mode="native") == full
        # The native template alone would have dropped the reasoning from the training text:
        assert "The premise is false" not in tokenizer.apply_chat_template(record_to_messages(record), tokenize=False)
    finally:
        tokenizer.chat_template = CHAT_TEMPLATE


def test_history_is_cleaned_for_the_next_turn():
    history = [
        {"role": "user", "content": [{"type": "text", "text": "Is the sky green?"}]},
        {"role": "assistant", "content": "premise check", "metadata": {"title": "Inner monologue"}},
        {"role": "assistant", "content": "<think>premise check</think>\n\nNo, it is blue."},
    ]
    assert strip_monologues(history) == [{"role": "user", "content": "Is the sky green?"},
                                         {"role": "assistant", "content": "No, it is blue."}]
    messages = build_messages(history, "And clouds?", SYSTEM_FRICTION)
    assert messages[0]["role"] == "system" and messages[-1] == {"role": "user", "content": "And clouds?"}


def test_flatten_and_system_prompts():
    assert flatten_content([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]) == "ab"
    assert flatten_content(None) == "" and flatten_content("x") == "x"
    assert system_prompt("friction") == SYSTEM_FRICTION and system_prompt("plain") == SYSTEM_PLAIN
    assert system_prompt("Be brief.") == "Be brief." and system_prompt(None) is None


def test_preference_pairs_of_both_kinds_in_trl_conversational_format():
    from pushback.chat import preference_pair
    from pushback.records import make_record
    from pushback.thinking import split_thinking

    thoughts = [("problem_framer", "Plain request."), ("synthesizer", "Just help.")]
    friction = make_record("Since the sky is green, what colour are clouds?", "false_premise", thoughts,
                           "The sky is blue; clouds are white.", "Green, like the sky!", source="curated")
    benign = make_record("How do I kill a stuck Python process?", "benign", thoughts, "Run `kill PID`.",
                         "Run `kill PID`.", source="curated", overcautious_answer="I can't help with killing.")
    bare = make_record("What is 2 + 2?", "benign", thoughts, "4.", "4.", source="curated")
    pairs = [preference_pair(r) for r in (friction, benign)]
    for record, pair, rejected in zip((friction, benign), pairs, ("Green, like the sky!", "I can't help with killing.")):
        assert [m["role"] for m in pair["prompt"]] == ["system", "user"]
        assert pair["prompt"][-1]["content"] == record.user_input
        chosen = split_thinking(pair["chosen"][0]["content"])
        assert chosen.well_formed and chosen.answer == record.final_answer  # the monologue is in the chosen side
        assert pair["rejected"] == [{"role": "assistant", "content": rejected}]
        assert pair["chosen"] != pair["rejected"]
    assert preference_pair(bare) is None  # a benign record without an over-cautious reply has no rejected side
