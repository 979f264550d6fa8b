"""The 05_report stage: tolerant collection of every stage's results, tables, figures,
report.md, and the notebook itself run by papermill on a test-size run folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from codebench import params, report
from codebench.runs import RunLayout
from codebench.stages import report as report_stage

FIXTURES = Path(__file__).parent / "fixtures" / "report"
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_report.ipynb"


def _run(tmp_path: Path, name: str) -> RunLayout:
    shutil.copytree(FIXTURES / name, tmp_path / "runs" / name)
    return RunLayout(tmp_path / "runs" / name, tmp_path / "figures" / name)


def test_full_run_table_figures_and_markdown(tmp_path: Path) -> None:
    run = _run(tmp_path, "full_run")
    res = report_stage.write_report(run)
    assert [s.status for s in res.data.stages] == ["ok"] * 5
    t = res.table.set_index("variant")
    assert list(t.index) == ["base", "finetuned", "int8-dynamic", "magnitude-50"]
    assert t.loc["base", "humaneval pass@1"] == "0.100 [0.000, 0.220]"
    assert t.loc["int8-dynamic", "size MB"] == "1.1" and t.loc["finetuned", "size MB"] == "3.4"
    assert t.loc["base", "latency ms/token"] == "2.10"
    assert t.loc["finetuned", "explain bertscore_f1"] == "0.210 [0.180, 0.240]"
    assert t.loc["base", "explain bertscore_f1"] == "not run"
    assert all(
        p is not None and p.is_file() and p.read_bytes()[:4] == b"\x89PNG"
        for p in res.figures.values()
    )
    assert {p.parent for p in res.figures.values()} == {run.figures}
    md = res.path.read_text()
    assert res.path == run.root / "report.md"
    assert (
        "| base | 0.100 [0.000, 0.220] |" in md or "| base | not run | 0.100 [0.000, 0.220]" in md
    )
    assert "raw files 64 -> functions 51" in md and "2 variants: int8-dynamic, magnitude-50" in md
    for p in res.figures.values():  # figure links are relative to report.md and resolve
        rel = Path("..") / ".." / "figures" / "full_run" / p.name
        assert f"]({rel})" in md and (res.path.parent / rel).resolve() == p.resolve()
    summary = json.loads(run.result_file("report").read_text())
    assert summary["warnings"] == []


def test_subset_profile_reports_not_run(tmp_path: Path) -> None:
    res = report_stage.write_report(_run(tmp_path, "eval_only_run"))
    status = {s.stage: s.status for s in res.data.stages}
    assert status == {
        "model": "ok",
        "data": "not run",
        "finetune": "not run",
        "compress": "not run",
        "evaluate": "ok",
    }
    assert res.figures["data funnel"] is None and res.figures["training curves"] is None
    assert res.figures["pass@1 against model size"] is not None  # base size from base_model.json
    md = res.path.read_text()
    assert "- data funnel: not run (no data)" in md
    # results.json's status and reason shown
    assert (
        res.table.set_index("variant").loc["base", "fim"]
        == "skipped: the tokenizer has no fill-in-the-middle tokens"
    )
    assert "| 01 build data | not run |" in md


def test_empty_and_broken_runs_do_not_raise(tmp_path: Path) -> None:
    res = report_stage.write_report(_run(tmp_path, "broken_run"))
    status = {s.stage: s.status for s in res.data.stages}
    assert status["data"] == "unreadable" and status["finetune"] == "failed"
    assert "RuntimeError: boom" in res.data.stage("finetune").note
    assert any("build_data.json: unreadable" in w for w in res.data.warnings)
    assert "## Warnings" in res.path.read_text()
    empty = RunLayout(tmp_path / "runs" / "nothing", tmp_path / "figures" / "nothing")
    res = report_stage.write_report(empty)
    assert all(s.status == "not run" for s in res.data.stages)
    assert all(p is None for p in res.figures.values())
    assert res.table.empty


def test_tolerant_readers_accept_layout_variants() -> None:
    m = report._metrics_of(
        {"pass@1": {"mean": 0.5, "ci": [0.4, 0.6]}, "pass@10": 0.7, "n": 10, "note": "x"}
    )
    assert m["pass@1"] == {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "problems": None}
    assert m["pass@10"]["value"] == 0.7 and "n" not in m and "note" not in m
    rows = report._model_rows({"int4": {"size_bytes": 2_000_000, "ms_per_token": 3.0}})
    assert rows == [
        {
            "variant": "int4",
            "kind": None,
            "parent": None,
            "size_mb": 2.0,
            "latency_ms": 3.0,
            "perplexity": None,
        }
    ]
    assert report._funnel_rows({"counts": {"raw": 10, "kept": 4}}) == [
        {"step": "raw", "records": 10.0},
        {"step": "kept", "records": 4.0},
    ]
    curves = report._curve_rows(
        {"log_history": [{"step": 1, "loss": 2.0}, {"step": 2, "eval_loss": 2.5}, {"epoch": 1}]}
    )
    assert curves == [
        {"step": 1, "series": "train", "loss": 2.0},
        {"step": 2, "series": "eval", "loss": 2.5},
    ]
    real = {
        "source": {"name": "finetuned"},
        "reference": {"weight_bytes": 3e6, "decode_ms_per_token": 2.0},
        "variants": [{"name": "nf4", "status": "skipped"}],
    }
    assert [(r["variant"], r["size_mb"], r["latency_ms"]) for r in report._model_rows(real)] == [
        ("finetuned", 3.0, 2.0),
        ("nf4", None, None),
    ]
    assert (
        report._model_rows({"variant": "base", "heldout_perplexity": 12.0})[0]["perplexity"] == 12.0
    )
    assert report._curve_rows({"curves": {"train": [{"step": 0, "loss": 1.0}]}}) == [
        {"step": 0, "series": "train", "loss": 1.0}
    ]


def test_report_section_validates() -> None:
    cfg = params.ReportSection()
    assert cfg.primary_metric == "pass@1" and cfg.variants is None
    with pytest.raises(params.ProfileError, match="report"):
        params.stage_config(
            "report",
            {
                "profile": "p",
                "seed": 0,
                "device": "cpu",
                "data_dir": None,
                "run_dir": "/tmp/x",
                "figures_dir": "/tmp/y",
                "variants": "base",
            },
        )


def test_report_notebook_runs_under_papermill(tmp_path: Path) -> None:
    import papermill as pm

    from codebench.pipeline import ensure_kernel

    ensure_kernel()
    run = _run(tmp_path, "full_run")
    out = tmp_path / "executed.ipynb"
    pm.execute_notebook(
        str(NOTEBOOK),
        str(out),
        kernel_name="codebench",
        cwd=str(NOTEBOOK.parent),
        progress_bar=False,
        parameters={
            "profile": "full_run",
            "run_dir": str(run.root),
            "figures_dir": str(run.figures),
            "device": "cpu",
            "benchmarks": ["humaneval", "mbpp"],
            "title": "",  # the notebook's default is the smoke profile's title
        },
    )
    md = (run.root / "report.md").read_text()
    assert md.startswith("# codebench report: full_run")
    assert "explain" not in md.split("## All metrics")[0]  # benchmarks filter reached the table
    assert sorted(p.name for p in run.figures.glob("*.png")) == [
        "report_data_funnel.png",
        "report_passk_by_variant.png",
        "report_quality_vs_size.png",
        "report_training_curves.png",
    ]
    nb = json.loads(out.read_text())
    errors = [
        o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors
