"""The record schema, stable ids, located errors, legacy shapes, atomic and durable writes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pushback.files import append_jsonl
from pushback.records import (
    EXPECTED_FOR,
    Record,
    RecordsError,
    append_record,
    convert_legacy,
    load_records,
    make_record,
    normalise,
    read_records,
    record_id,
    write_records,
)

DATA = Path(__file__).parent / "data"


def _record(user_input: str = "Since the sky is green, what colour are clouds?", category: str = "false_premise", **kw) -> Record:
    return make_record(user_input, category, [("problem_framer", "The premise is false."), ("synthesizer", "Correct it.")],
                       "The sky is blue; clouds are white or grey.", "Clouds are green too!", source="curated", **kw)


def test_id_is_stable_under_case_width_and_whitespace():
    assert record_id("  Is the SKY  green?\n") == record_id("is the sky green?")
    assert record_id("Ｉｓ the sky green?") == record_id("Is the sky green?")  # full-width letters (NFKC)
    assert record_id("is the sky green?") != record_id("is the sky blue?")
    assert normalise("A\tB  c") == "a b c"


def test_make_record_derives_id_and_expected():
    r = _record()
    assert r.id == record_id(r.user_input) and r.expected == EXPECTED_FOR["false_premise"] == "push_back"
    assert r.monologue == "The premise is false.\n\nCorrect it."
    assert Record.model_validate_json(r.to_json()) == r


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(extra=1), "extra"),
    (lambda d: d.update(category="spicy"), "category"),
    (lambda d: d.update(expected="refuse"), "expected"),
    (lambda d: d.update(id="0" * 40), "id"),
    (lambda d: d["agents"].append(dict(d["agents"][0])), "agents"),
    (lambda d: d["metadata"].update(twin_of="a" * 40), "metadata.twin_of"),
    (lambda d: d.update(final_answer="   "), "final_answer"),
    (lambda d: d["metadata"].update(focus="x"), "metadata.focus"),
])
def test_schema_rejects_with_the_field_named(tmp_path, mutate, field):
    raw = _record().model_dump(mode="json")
    mutate(raw)
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(raw) + "\n")
    result = read_records(path)
    assert not result.records
    assert [p.field for p in result.problems] == [field], result.problems
    assert str(result.problems[0]).startswith(f"{path}:1: {field}: ")


def test_every_bad_line_is_reported_with_its_line():
    result = read_records(DATA / "bad" / "bad_records.jsonl")
    assert len(result.records) == 1
    lines = {p.line: str(p) for p in result.problems}
    assert sorted(lines) == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert "invalid JSON" in lines[2]
    assert "baseline_answer: Field required" in lines[3]
    assert "mood: Extra inputs are not permitted" in lines[4]
    assert "agents: Input should be a valid list" in lines[5]
    assert "category:" in lines[6]
    assert "agents.0.thought_stream" in lines[7]
    assert "duplicate id" in lines[8]
    assert "not valid UTF-8" in lines[9]
    assert "truncated last line" in lines[10]


def test_empty_file_is_a_problem():
    result = read_records(DATA / "bad" / "empty.jsonl")
    assert not result.records and "empty" in str(result.problems[0])


def test_load_records_raises_with_every_problem_and_cross_file_duplicates(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_records(a, [_record()])
    write_records(b, [_record(), _record("Is a tomato a vegetable?", "benign", twin_of="f" * 40)])
    with pytest.raises(RecordsError) as err:
        load_records([a, b])
    text = str(err.value)
    assert f"{b}:1: id: duplicate id" in text and f"(first at {a}:1)" in text
    assert f"{b}:2: metadata.twin_of: points at" in text


def test_legacy_shapes_convert():
    rows = [json.loads(line) for name in ("original_focus", "original_question")
            for line in (DATA / "legacy" / f"{name}.jsonl").read_text().splitlines()]
    a, b = (convert_legacy(row) for row in rows)
    assert a["category"] == "false_premise" and a["expected"] == "push_back"
    assert a["final_answer"] == "Correct the myth, then suggest real ways to learn well."  # the synthesizer's thought
    assert a["metadata"]["source"] == "converted" and a["metadata"]["model"] == "gpt-4o-mini"
    assert b["category"] == "risky" and [x["agent_type"] for x in b["agents"]] == ["problem_framer", "limitation_acknowledger"]
    assert convert_legacy({"unrelated": 1}) is None
    # The original had no eager answer: reading says so instead of inventing one.
    result = read_records(DATA / "legacy" / "original_question.jsonl")
    assert [p.field for p in result.problems] == ["baseline_answer"]


def test_legacy_complete_record_reads(tmp_path):
    row = json.loads((DATA / "legacy" / "original_focus.jsonl").read_text())
    row["baseline_answer"] = "Try brain games to unlock the other 90%!"
    path = tmp_path / "legacy.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (record,) = read_records(path).records
    assert record.metadata.source == "converted" and record.category == "false_premise"


def test_write_records_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out.jsonl"
    write_records(path, [_record()])
    before = path.read_text()

    def broken():
        yield _record("Another prompt entirely?", "benign")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_records(path, broken())
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left behind


def test_append_is_line_by_line(tmp_path):
    path = tmp_path / "log.jsonl"
    append_record(path, _record())
    append_jsonl(path, {"vote": "tie"})
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1]) == {"vote": "tie"}


def test_overcautious_answer_only_on_benign_records_and_never_the_same_as_the_answer():
    benign = _record("How do I kill a stuck Python process?", "benign",
                     overcautious_answer="I can't help with killing anything.")
    assert json.loads(benign.to_json())["overcautious_answer"] == "I can't help with killing anything."
    assert "overcautious_answer" not in json.loads(_record().to_json())  # absent, not null, when unset
    with pytest.raises(ValueError, match="overcautious_answer: only benign"):
        _record(overcautious_answer="No.")
    with pytest.raises(ValueError, match="overcautious_answer: is the same as final_answer"):
        _record("How do I kill a stuck Python process?", "benign",
                overcautious_answer="The sky is blue; clouds are white or grey.")


def test_bom_and_deep_nesting_are_read_or_refused_with_their_place(tmp_path):
    """A record file saved with a UTF-8 BOM reads as records; JSON nested past any sense is one clear
    problem with its line, not a RecursionError."""
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _record().to_json().encode() + b"\n")
    result = read_records(path)
    assert len(result.records) == 1 and not result.problems
    deep = tmp_path / "deep.jsonl"
    deep.write_text(_record().to_json() + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    result = read_records(deep)
    assert len(result.records) == 1
    assert [str(p) for p in result.problems] == [f"{deep}:2: JSON nested deeper than 200 levels"]
