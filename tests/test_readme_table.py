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
