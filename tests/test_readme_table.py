"""README.md's measured figures are the committed results, rendered, and none of them is stale."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def table():
    spec = importlib.util.spec_from_file_location("readme_table", ROOT / "bench" / "readme_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_blocks_are_what_the_results_render(table):
    found = table.results()
    assert found, "no result file in bench/results carries README rows"
    assert "measured:begin" in (ROOT / "README.md").read_text(encoding="utf-8")
    for readme in table.READMES:
        text = readme.read_text(encoding="utf-8")
        assert table.rewrite(text, found) == text, f"{readme}: run `python bench/readme_table.py`"


def test_a_block_shows_the_results_it_names(table):
    row = {"what": "w", "figure": "f"}
    provenance = {"hardware": {"cores": 2}, "command": "c"}
    found = {"bench/results/a.json": {"readme": [row], "provenance": provenance},
             "bench/results/b.json": {"readme": [{**row, "figure": "g"}], "provenance": provenance}}
    text = "x\n<!-- measured:begin b (python bench/readme_table.py) -->\nold\n<!-- measured:end -->\ny\n"
    rendered = table.rewrite(text, found)
    assert "| w | g |" in rendered and "| w | f |" not in rendered and "old" not in rendered
    assert rendered.startswith("x\n") and rendered.endswith("<!-- measured:end -->\ny\n")
    with pytest.raises(ValueError, match="'c'"):
        table.rewrite(text.replace("begin b", "begin c"), found)


def test_a_full_block_shows_one_agreement_result_as_its_own_table(table):
    """`loso:full` renders the per-source table and errors of `pushback classify --validate`; a full table of a
    result without per-source agreements, or beside another result, is refused."""
    agreement = {"source": "s1", "n": 10, "binary": 0.9, "three": None, "labels": 0.8, "string_match": 0.7,
                 "string_match_three": None, "refusal": {}, "friction": {}, "confusion": {"comply>refuse": 1}}
    provenance = {"hardware": {"cores": 2}, "command": "pushback classify --validate"}
    found = {"evaluation/loso.json": {"sources": [agreement], "readme": [{"what": "w", "figure": "f"}],
                                      "provenance": provenance},
             "bench/results/b.json": {"readme": [{"what": "w", "figure": "g"}], "provenance": provenance}}
    text = "<!-- measured:begin loso:full (python bench/readme_table.py) -->\n<!-- measured:end -->\n"
    rendered = table.rewrite(text, found)
    assert "| s1 | 10 | 90.0% | 70.0% | – | – | 80.0% |" in rendered
    assert "- s1: errors (gold as predicted): comply as refuse 1" in rendered and "| w | f |" not in rendered
    for wrong in ("b:full", "loso:full b"):
        with pytest.raises(ValueError, match="full table"):
            table.rewrite(text.replace("loso:full", wrong), found)


def test_every_row_names_its_hardware_and_command(table):
    for file, data in table.results().items():
        provenance = data["provenance"]
        assert provenance["hardware"].get("cores") or provenance["hardware"].get("gpu"), file
        assert provenance["command"] and provenance["commit"] and provenance["date"], file


def test_no_result_is_stale(table):
    assert table.stale(table.results()) == []


def test_a_changed_fingerprint_names_the_result_to_rerun(table, tmp_path):
    weights = tmp_path / "weights.json"
    weights.write_text("{}")
    data = {"readme": [{"what": "x", "figure": "1"}],
            "provenance": {"fingerprints": {"file:README.md": "0" * 16}, "command": "python bench/x.py",
                           "hardware": {"cores": 2}, "commit": "abc", "date": "2026-12-04"}}
    (tmp_path / "x.json").write_text(json.dumps(data))
    found = table.results(tmp_path, also=())
    [line] = table.stale(found)
    assert line.startswith("x.json: file:README.md changed") and "python bench/x.py" in line
