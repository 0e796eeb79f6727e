"""`<think>` splitting, whole and streamed: every case of the issue, and every chunking of each."""
from __future__ import annotations

import pytest

from pushback.thinking import ThinkParser, join_thinking, split_thinking

CASES = [
    # text, opened, monologue, answer, thinking, well_formed
    ("Just an answer.", False, "", "Just an answer.", False, False),
    ("<think>\nIs the premise true?\n</think>\n\nNo, it is not.", False, "Is the premise true?", "No, it is not.", False, True),
    ("<think>Still weighing the options", False, "Still weighing the options", "", True, False),
    ("The template opened the block.</think>\nAnswer.", True, "The template opened the block.", "Answer.", False, True),
    ("<think>Repeated open tag.</think>Answer.", True, "Repeated open tag.", "Answer.", False, True),
    ("An answer with a stray </think> in it.", False, "", "An answer with a stray  in it.", False, False),
    ("<think>a</think>First. <think>b</think>Second.", False, "a\n\nb", "First. Second.", False, False),
    ("   \n<think>  padded  </think>  \n answer \n", False, "padded", "answer", False, True),
    ("<think></think>Empty monologue.", False, "", "Empty monologue.", False, False),
    ("Compare a<b and c>d <thinking> is not our tag.", False, "", "Compare a<b and c>d <thinking> is not our tag.", False, False),
]


@pytest.mark.parametrize("text, opened, monologue, answer, thinking, well_formed", CASES)
def test_split_whole(text, opened, monologue, answer, thinking, well_formed):
    s = split_thinking(text, opened=opened)
    assert (s.monologue, s.answer, s.thinking, s.well_formed) == (monologue, answer, thinking, well_formed)


@pytest.mark.parametrize("text, opened, monologue, answer, thinking, well_formed", CASES)
@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_split_streamed_matches_whole_for_any_chunking(text, opened, monologue, answer, thinking, well_formed, size):
    parser = ThinkParser(opened=opened)
    for i in range(0, len(text), size):
        partial = parser.feed(text[i:i + size])
        assert "<" + "/think>" not in partial.answer and "<think>" not in partial.monologue
    final = parser.close()
    assert (final.monologue, final.answer, final.thinking) == (monologue, answer, thinking)


def test_stream_reports_state_while_thinking():
    parser = ThinkParser()
    assert parser.feed("<thi").monologue == ""  # a tag split across chunks is held back, not shown
    state = parser.feed("nk>Let me check")
    assert state.thinking and state.monologue == "Let me check" and state.answer == ""
    parser.feed(" the premise.</th")
    state = parser.feed("ink>\n\nIt is false.")
    assert not state.thinking and state.monologue == "Let me check the premise." and state.answer == "It is false."


def test_held_back_text_is_released_at_close():
    parser = ThinkParser()
    assert parser.feed("a < b and x <").answer == "a < b and x"
    assert parser.close().answer == "a < b and x <"


def test_join_is_the_inverse():
    s = split_thinking(join_thinking("thought one\n\nthought two", "The answer."))
    assert (s.monologue, s.answer, s.well_formed) == ("thought one\n\nthought two", "The answer.", True)
