"""The 05_report stage: tolerant collection of every stage's results, tables, figures,
report.md, and the notebook itself run by papermill on a test-size run folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from codebench import params, report, results
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
    assert t.loc["base", "latency ms/token"] == "—" and t.loc["base", "perplexity"] == "18.70"
    assert t.loc["finetuned", "latency ms/token"] == "2.20"  # compress.json's measured source
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


def test_stage_run_uses_the_section_and_writes_report_json(tmp_path: Path) -> None:
    """`stages.report.run(ctx, cfg)`, what 05_report.ipynb calls: title, variant order and
    benchmarks from the section; results/report.json through its schema."""
    run = _run(tmp_path, "full_run")
    ctx = params.StageContext("full", 0, "cpu", None, run.root, run.figures)
    cfg = params.ReportSection(
        title="T", variants=["int8-dynamic", "base"], benchmarks=["humaneval"]
    )
    res = report_stage.run(ctx, cfg)
    assert list(res.table.variant) == ["int8-dynamic", "base"]
    assert [c for c in res.table.columns if "pass@1" in c or "bertscore" in c] == [
        "humaneval pass@1"
    ]
    assert res.path.read_text().startswith("# T\n")
    assert list(res.stages.columns) == ["stage", "status", "duration", "summary"]
    assert len(res.stages) == 5
    written = results.read_stage(run, results.ReportResults)
    assert written.version == results.VERSION and written.report == str(res.path)
    assert written.figures == {k: str(v) if v else None for k, v in res.figures.items()}


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
    assert res.figures["pass@1 against model size"] is not None  # base size from models/base
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


def test_results_are_read_through_their_schema(tmp_path: Path) -> None:
    """Every file goes through `codebench.results`: what the stages write is read, a file in
    another layout is reported unreadable (never guessed at), a newer schema is refused."""
    run = _run(tmp_path, "full_run")
    written = results.write_stage(
        run,
        results.CompressResults,
        {
            "source": {"name": "finetuned", "path": "models/finetuned"},
            "device": "cpu",
            "reference": {"name": "finetuned", "size_mb": 3.0, "ms_per_token": 2.0},
            "variants": [
                {"spec": "nf4", "name": "nf4", "status": "skipped", "reason": "needs CUDA"},
                {"spec": "int8-weight", "name": "int8-weight", "status": "ok", "size_mb": 1.0,
                 "ms_per_token": 1.5, "perplexity": 20.0, "measure": {"prefill_ms": 4.0}},
            ],
        },
    )  # fmt: skip
    on_disk = json.loads(run.result_file("compress").read_text())
    assert on_disk == written and on_disk["version"] == results.VERSION
    assert on_disk["variants"][1]["measure"] == {"prefill_ms": 4.0}  # unknown fields kept
    data = report.collect(run)
    rows = data.models.set_index("variant")
    assert rows.loc["finetuned", "size_mb"] == 3.0 and rows.loc["finetuned", "latency_ms"] == 2.0
    assert rows.loc["int8-weight", "perplexity"] == 20.0
    assert data.skipped_variants == {"nf4": "skipped: needs CUDA"}
    assert data.stage("compress").note == "1 variants: int8-weight; nf4 skipped: needs CUDA"
    # the old guessed-at layouts: unreadable, with the file and field named
    run.result_file("finetune").write_text(json.dumps({"curves": {"train": []}}))
    run.result_file("build_data").write_text(json.dumps({"funnel": [{"step": "raw", "n": 1}]}))
    data = report.collect(run)
    assert data.stage("finetune").status == "unreadable" and data.training.empty
    assert data.stage("data").status == "unreadable" and data.funnel.empty
    assert any("finetune.json: unreadable (method: Field required" in w for w in data.warnings)
    assert any("build_data.json: unreadable (funnel:" in w for w in data.warnings)
    ft = {"method": "lora", "log_history": [{"step": 1, "loss": 2.0}, {"step": 2, "eval_loss": 2.5},
          {"epoch": 1}, {"step": 2, "train_loss": 9.0, "train_runtime": 1.0}]}  # fmt: skip
    results.write_stage(run, results.FinetuneResults, ft)
    assert report.curve_rows(results.read_stage(run, results.FinetuneResults)) == [
        {"step": 1, "series": "train", "loss": 2.0},
        {"step": 2, "series": "eval", "loss": 2.5},
    ]
    newer = json.loads(run.result_file("finetune").read_text()) | {"version": results.VERSION + 1}
    run.result_file("finetune").write_text(json.dumps(newer))
    with pytest.raises(results.ResultsError, match="newer than"):
        results.read_stage(run, results.FinetuneResults)
    with pytest.raises(results.ResultsError, match=r"compress\.json: variants\.0\.status"):
        results.write_stage(
            run,
            results.CompressResults,
            {**on_disk, "variants": [{"spec": "x", "name": "x", "status": "maybe"}]},
        )
    assert (
        results.read_stage(RunLayout(tmp_path / "none", tmp_path / "f"), results.FinetuneResults)
        is None
    )


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


def test_evaluations_of_other_weights_are_left_out(tmp_path: Path) -> None:
    """An evaluation stamped with a model key (stage 04 records `runs.model_content_key`) whose
    model folder now holds other weights, e.g. `grpo@greedy` made before GRPO was trained
    again, is left out with a warning; the current evaluation, evaluations without a key and
    those whose model folder is gone stay."""
    from codebench.runs import model_content_key

    run = RunLayout(tmp_path / "run", tmp_path / "figures")
    folder = run.model_dir("grpo")
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"new weights")
    now = model_content_key(folder)

    def evaluation(variant: str, key: str | None, value: float) -> None:
        out = run.root / "eval" / variant / "toy"
        out.mkdir(parents=True)
        body = {"benchmark": "toy", "status": "ok", "metrics": {"pass@1": {"value": value}}}
        if key is not None:
            body["model_key"] = key
        (out / "results.json").write_text(json.dumps(body), encoding="utf-8")

    evaluation("grpo", now, 0.5)
    evaluation("grpo@greedy", "0123456789abcdef", 0.2)  # the weights before retraining
    evaluation("grpo@old-layout", None, 0.3)  # written before stage 04 stamped keys
    evaluation("deleted", "fedcba9876543210", 0.1)  # models/deleted is gone: cannot tell
    data = report.collect(run)
    assert sorted(data.evals["variant"]) == ["deleted", "grpo", "grpo@old-layout"]
    (warning,) = [w for w in data.warnings if "other weights" in w]
    assert "grpo@greedy" in warning and "0123456789abcdef" in warning and now in warning
    (folder / "model.safetensors").write_bytes(b"retrained again")
    assert "grpo" not in set(report.collect(run).evals["variant"])
