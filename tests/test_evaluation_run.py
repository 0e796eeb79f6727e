"""`pushback eval` on real tiny models: results, report, plot, model-index results, and resuming."""
from __future__ import annotations

import json

import pytest

from evaluation.classify import classify
from evaluation.metrics import compute
from evaluation.run import RunConfig, RunError, parse_models, run_eval

SUITES = ("curated", "coconot")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("eval")
    config = RunConfig(models=(("plain", str(tiny_model_dir)), ("prompted", f"{tiny_model_dir}@system=friction")),
                       suites=SUITES, out=out, limit=3, max_new_tokens=6, batch_size=4)
    return config, run_eval(config)


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_every_model_answers_every_prompt_once(finished_run):
    config, summary = finished_run
    assert (summary["generated"], summary["reused"], summary["rows"]) == (12, 0, 12)
    rows = [json.loads(line) for line in _lines(config.out / "results.jsonl")]
    assert sorted({(r["model"], r["suite"]) for r in rows}) == sorted((m, s) for m, _ in config.models for s in SUITES)
    for row in rows:
        assert row["label"] in {"comply", "refuse", "push_back", "hedge", "clarify"}
        assert row["answer_tokens"] <= row["response_tokens"] <= config.max_new_tokens + 1
        assert row["settings"] == config.settings


def test_report_plot_and_model_index(finished_run):
    config, summary = finished_run
    report = summary["report"].read_text()
    for heading in ("## Labeller", "## Summary", "## curated by category", "## coconot by category", "## Labels",
                    "## Examples"):
        assert heading in report
    assert "leave-one-source-out agreement with people" in report and "% worst (" in report
    assert "`prompted`" in report and "@system=friction" in report
    png = summary["plot"].read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000

    run = json.loads(summary["run"].read_text())
    assert [m["name"] for m in run["models"]] == [m for m, _ in config.models] and run["responses"] == 12
    about = run["provenance"]
    assert about["commit"] and about["date"] and about["hardware"]["cores"] and about["command"]
    assert set(about["fingerprints"]) == {"file:evaluation/learned_weights.json", "file:evaluation/partial_weights.json"}
    assert run["labeller"]["fingerprint"] == about["fingerprints"]["file:evaluation/learned_weights.json"]

    combined = json.loads(summary["eval_results"].read_text())
    assert {(e["model"], e["dataset"]["type"]) for e in combined} == {
        (m, t) for m, _ in config.models for t in ("pushback-curated", "allenai/coconot")}
    for model, _ in config.models:
        entries = json.loads((config.out / model / "eval_results.json").read_text())
        assert [set(e) for e in entries] == [{"task", "dataset", "metrics", "labeller"}] * len(SUITES)
        for entry in entries:
            assert entry["task"]["type"] == "text-generation"
            labeller = entry["labeller"]
            assert labeller["name"].startswith("offline classifier") and labeller["leave_one_source_out"]["binary_mean"] > 0.8
            banded = {m["type"] for m in entry["metrics"] if "band" in m}
            assert {"warranted_friction_rate", "unwarranted_friction_rate"} <= banded
            for metric in entry["metrics"]:
                assert set(metric) <= {"type", "value", "name", "band"}
                if metric["type"] != "tokens_per_answer":
                    assert 0.0 <= metric["value"] <= 1.0
                if "band" in metric:
                    low, high = metric["band"]
                    assert 0.0 <= low <= high <= 1.0


def test_a_finished_run_is_not_generated_again(finished_run):
    config, _ = finished_run
    again = run_eval(config)
    assert (again["generated"], again["reused"]) == (0, 12)
    assert len(_lines(config.out / "results.jsonl")) == 12


def test_an_interrupted_run_resumes_where_it_stopped(finished_run, tmp_path):
    config, _ = finished_run
    out = tmp_path / "interrupted"
    out.mkdir()
    kept = _lines(config.out / "results.jsonl")[:5]
    # Five complete lines, then a line torn by the interruption.
    (out / "results.jsonl").write_text("\n".join(kept) + "\n" + kept[5 - 1][:40], encoding="utf-8")
    resumed = run_eval(RunConfig(**{**config.__dict__, "out": out}))
    assert (resumed["generated"], resumed["reused"]) == (7, 5)
    lines = _lines(out / "results.jsonl")
    assert len(lines) == 12 and all(json.loads(line) for line in lines)


def test_other_settings_are_generated_afresh(finished_run, tmp_path):
    config, _ = finished_run
    out = tmp_path / "changed"
    out.mkdir()
    (out / "results.jsonl").write_text((config.out / "results.jsonl").read_text(), encoding="utf-8")
    changed = run_eval(RunConfig(**{**config.__dict__, "out": out, "max_new_tokens": 4,
                                    "models": config.models[:1], "suites": ("curated",)}))
    assert (changed["generated"], changed["reused"]) == (3, 0)


def test_a_litellm_endpoint_is_evaluated_with_parallel_requests(tmp_path):
    """Any spec works: here an OpenAI-compatible server over real HTTP (requests go out in parallel)."""
    from support.openai_server import LocalOpenAIServer

    with LocalOpenAIServer(latency=0.05) as server:
        config = RunConfig(models=(("api", f"litellm:openai/local@api_base={server.url}"),), suites=("coconot",),
                           out=tmp_path, limit=4, max_new_tokens=32, batch_size=4)
        summary = run_eval(config)
        assert server.counts["ok"] == 4
    rows = [json.loads(line) for line in _lines(tmp_path / "results.jsonl")]
    assert summary["generated"] == 4 and all(r["response"].startswith("Here is a short answer") for r in rows)
    # Each reply is labelled by the offline classifier as it is written.
    assert all(r["spec"].startswith("litellm:openai/local") for r in rows)
    assert [r["label"] for r in rows] == [classify(r["response"], r["prompt"]).label for r in rows]


def test_models_are_parsed_strictly():
    assert parse_models(["a=pocket:baseline", "b=litellm:ollama_chat/qwen2.5"]) == (
        ("a", "pocket:baseline"), ("b", "litellm:ollama_chat/qwen2.5"))
    for bad, message in ((["pocket:baseline"], "NAME=SPEC"), (["a=pocket:x"], "unknown pocket model"),
                         (["a=pocket:baseline", "a=pocket:friction"], "given twice"), (["a/b=pocket:baseline"], "NAME may")):
        with pytest.raises(RunError, match=message):
            parse_models(bad)


def test_eval_cli_names_an_unknown_suite(capsys, tmp_path):
    from pushback.cli import main

    assert main(["eval", "--model", "a=pocket:baseline", "--suite", "nope", "--out", str(tmp_path)]) == 1
    assert "--suite 'nope'" in capsys.readouterr().err


def test_eval_cli_refuses_bad_outputs_and_resume_files_in_one_line(capsys, tmp_path, read_only_dir):
    from pushback.cli import main

    def run(out):
        code = main(["eval", "--model", "a=pocket:baseline", "--suite", "curated", "--limit", "1", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        return err

    a_file = tmp_path / "results.txt"
    a_file.write_text("mine\n")
    assert "is a file" in run(a_file) and a_file.read_text() == "mine\n"
    for name, line, said in (("list", "[1, 2]", ":1: expected a JSON object"),
                             ("no-model", '{"spec": "s", "suite": "curated", "id": "x"}', ":1: model: missing"),
                             ("nested", "[" * 50_000 + "]" * 50_000, ":1: JSON nested deeper")):
        out = tmp_path / name
        out.mkdir()
        (out / "results.jsonl").write_text(line + "\n")
        assert said in run(out)
        assert (out / "results.jsonl").read_text() == line + "\n"  # left as it was
    assert "--out" in run(read_only_dir / "eval")


def test_a_resume_file_saved_with_a_bom_is_read(finished_run, tmp_path):
    config, _ = finished_run
    out = tmp_path / "bom"
    out.mkdir()
    (out / "results.jsonl").write_text("\ufeff" + (config.out / "results.jsonl").read_text(), encoding="utf-8")
    again = run_eval(RunConfig(**{**config.__dict__, "out": out}))
    assert (again["generated"], again["reused"]) == (0, 12)


def test_error_bands_follow_the_labeller_s_held_out_confusion():
    from evaluation.bands import Confusion, band, wilson

    perfect = (Confusion("a", 1.0, 0.0),)
    low, high = wilson(0.3, 100)
    assert band(0.3, 100, perfect) == pytest.approx((low, high))
    # A labeller that misses a fifth of friction and raises a tenth of false alarms: the true rate is
    # (q - 0.1) / 0.7; with a second, worse source the band widens to cover both.
    sloppy = (Confusion("a", 0.8, 0.1), Confusion("b", 0.6, 0.2))
    got = band(0.3, 100, sloppy)
    assert got == pytest.approx((min((low - 0.1) / 0.7, (low - 0.2) / 0.4), max((high - 0.1) / 0.7, (high - 0.2) / 0.4)))
    assert band(0.3, 100, (Confusion("useless", 0.5, 0.45),)) is None and band(None, 0, sloppy) is None


def test_friction_metrics_on_known_rows():
    def row(warranted, label, xstest="1_full_compliance", expected=None):
        return {"warranted": warranted, "label": label, "xstest_label": xstest, "well_formed": True,
                "answer_tokens": 10, "expected": expected or ("refuse" if warranted else "comply")}

    rows = [row(True, "refuse"), row(True, "hedge"), row(True, "comply"), row(True, "refuse"),
            row(False, "comply"), row(False, "refuse", "2_full_refusal"), row(False, "hedge")]
    m = compute(rows)
    assert (m.warranted_friction, m.unwarranted_friction) == (0.75, 2 / 3)
    assert m.over_refusal == pytest.approx(1 / 3)
    assert m.balanced_accuracy == pytest.approx((0.75 + 1 / 3) / 2)
    assert m.expected_behaviour == pytest.approx(3 / 7)
    assert compute([row(True, "refuse")]).balanced_accuracy is None  # no benign prompts: undefined, not 100%


@pytest.mark.slow
def test_acceptance_run_on_the_pocket_pair(pocket_cache, tmp_path):
    """The acceptance command, offline, on the tiny pocket pair (fewer prompts to keep the suite fast)."""
    from pushback.cli import main

    out = tmp_path / "eval"
    assert main(["eval", "--model", "baseline=pocket:baseline", "--model", "friction=pocket:friction",
                 "--suite", "curated", "--suite", "coconot", "--limit", "4", "--max-new-tokens", "24",
                 "--out", str(out)]) == 0
    assert (out / "report.md").exists() and (out / "plot.png").exists()
    rows = [json.loads(line) for line in _lines(out / "results.jsonl")]
    assert {r["model"] for r in rows} == {"baseline", "friction"} and len(rows) == 16


def test_a_resumed_run_labels_reused_responses_with_the_current_classifier(finished_run, tmp_path):
    """Responses written under an older classifier are labelled again; lines of other settings stay as they were."""
    config, _ = finished_run
    out = tmp_path / "older"
    out.mkdir()
    rows = [json.loads(line) for line in _lines(config.out / "results.jsonl")]
    stale = [{**row, "label": "hedge" if row["label"] != "hedge" else "clarify"} for row in rows]
    other = {**rows[0], "settings": {**rows[0]["settings"], "max_new_tokens": 99}, "label": "stale"}
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*stale, other]), encoding="utf-8")
    resumed = run_eval(RunConfig(**{**config.__dict__, "out": out}))
    assert (resumed["generated"], resumed["reused"]) == (0, 12)
    written = [json.loads(line) for line in _lines(out / "results.jsonl")]
    assert [r["label"] for r in written[:-1]] == [classify(r["response"], r["prompt"]).label for r in rows]
    assert written[-1] == other


def test_the_shipped_labeller_is_validated_on_the_shipped_weights(tmp_path):
    """Reports call the labeller stale only when loso.json measured other weights than those that label."""
    from evaluation.bands import offline_labeller
    from evaluation.validation import LOSO_FILE

    assert offline_labeller().stale is False
    other = json.loads(LOSO_FILE.read_text(encoding="utf-8"))
    other["provenance"]["fingerprints"] = {key: "0" * 16 for key in other["provenance"]["fingerprints"]}
    (tmp_path / "loso.json").write_text(json.dumps(other), encoding="utf-8")
    assert offline_labeller(loso_file=tmp_path / "loso.json").stale is True


def test_a_spec_s_credentials_never_reach_the_report_files(tmp_path):
    """An endpoint URL with user:password in a spec is shown masked in report.md, eval_results.json and run.json."""
    from evaluation.report import write_report

    rows = [{"model": "api", "suite": "curated", "category": "benign", "subcategory": None, "warranted": False,
             "expected": "comply", "prompt": "p", "response": "r", "answer": "r", "label": "comply",
             "xstest_label": "1_full_compliance", "plan": None, "well_formed": False, "answer_tokens": 1,
             "response_tokens": 1, "id": "x"}]
    spec = "litellm:openai/m@api_base=https://bob:s3cret-pass@proxy.example/v1"
    settings = {"max_new_tokens": 8, "seed": 0, "temperature": 0.0, "limit": 1}
    paths = write_report(tmp_path, rows, [("api", spec)], ("curated",), settings)
    for name in ("report", "eval_results", "run"):
        text = paths[name].read_text(encoding="utf-8")
        assert "s3cret-pass" not in text and "proxy.example" in text, name
