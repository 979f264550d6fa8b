"""04_evaluate runs headless under papermill on the session's tiny model, end to end:
HF backend -> extraction -> sandbox -> records -> results.json -> figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "04_evaluate.ipynb"


@pytest.mark.slow
def test_evaluate_notebook_on_the_tiny_model(tiny_run, data_dir, tmp_path: Path) -> None:
    import papermill as pm

    out = tmp_path / "04_evaluate.ipynb"
    figures = tmp_path / "figures"
    pm.execute_notebook(
        str(NOTEBOOK),
        str(out),
        kernel_name="codebench",
        cwd=str(NOTEBOOK.parent),
        progress_bar=False,
        parameters={
            "profile": "test",
            "device": "cpu",
            "data_dir": str(data_dir),
            "run_dir": str(tiny_run.root),
            "figures_dir": str(figures),
            "variants": ["base", "no-such-variant"],
            "benchmarks": ["humaneval", "mbpp", "fim"],
            "limit": 2,
            "max_new_tokens": 16,
        },
    )
    for bench in ("humaneval", "mbpp", "fim"):
        res = json.loads((tiny_run.eval_dir("base", bench) / "results.json").read_text())
        assert res["status"] == "ok", res.get("reason")
        assert res["canary"]["ok"] and res["problems"] == 2 and res["samples"] == 2
        # near zero on the tiny model, honestly
        assert 0.0 <= res["metrics"]["pass@1"]["value"] <= 1.0
        assert res["provenance"]["packages"]["transformers"]
        assert (tiny_run.eval_dir("base", bench) / "samples.jsonl").read_text().count("\n") == 2
    summary = json.loads(tiny_run.result_file("evaluate").read_text())
    assert summary["missing_variants"] == ["no-such-variant"]
    assert all(summary["canaries"].values())
    for name in ("eval_passk", "eval_outcomes", "eval_problems", "eval_languages"):
        assert (figures / f"{name}.png").is_file()
    text = out.read_text()
    assert "not in" in text and "no-such-variant" in text
    # `codebench eval` on the same variant, no flags: stage 04's settings (read from its
    # results.json), its samples (nothing generated) and its numbers
    from codebench.cli import main

    before = {
        b: json.loads((tiny_run.eval_dir("base", b) / "results.json").read_text())
        for b in ("humaneval", "mbpp")
    }
    argv = ["eval", "--model", str(tiny_run.model_dir("base")), "--benchmarks", "humaneval,mbpp"]
    assert main([*argv, "--device", "cpu", "--data-dir", str(data_dir), "--quiet"]) == 0
    for b, res in before.items():
        now = json.loads((tiny_run.eval_dir("base", b) / "results.json").read_text())
        assert now["timing"]["generated"] == 0
        assert now["metrics"] == res["metrics"] and now["config"] == res["config"]


def test_stage_04_run_writes_tables_figures_and_results(tiny_run, data_dir, tmp_path) -> None:
    """`stages.evaluate.run`, what the notebook calls, on a copy of the tiny model's run."""
    from codebench.params import EvaluateSection, StageContext
    from codebench.runs import RunLayout
    from codebench.stages import evaluate as evaluate_stage

    run = RunLayout(tmp_path / "run", tmp_path / "figures")
    run.models.mkdir(parents=True)
    (run.models / "base").symlink_to(tiny_run.model_dir("base"), target_is_directory=True)
    ctx = StageContext("t", 0, "cpu", str(data_dir), run.root, run.figures)
    cfg = EvaluateSection(
        variants=["base", "no-such-variant"],
        benchmarks=["humaneval"],
        limit={"default": 2},
        max_new_tokens=8,
    )
    logged: list[str] = []
    result = evaluate_stage.run(ctx, cfg, log=logged.append)
    assert result.variants == ["base", "no-such-variant"]
    assert result.summary["missing"] == ["no-such-variant"]
    assert list(result.scores.columns) == ["base"]
    assert result.scores.loc[("humaneval", "pass@1"), "base"] == result.table.value.iloc[0]
    assert result.outcomes["count"].sum() == 2 and len(result.per_problem) == 2
    assert result.figures["pass@k with 95% intervals"] == run.figures / "eval_passk.png"
    assert result.lines[0] == "variant 'no-such-variant': not in the run, skipped"
    assert result.lines[-1] == f"results: {run.result_file('evaluate')}"
    saved = json.loads(run.result_file("evaluate").read_text())
    assert saved["missing_variants"] == ["no-such-variant"]
    assert saved["canaries"] == {"base/humaneval": True}
    assert result.written.version == saved["version"] == 1
    assert result.written.missing_variants == ["no-such-variant"]
    assert any(line.startswith("variants: ['base', 'no-such-variant']") for line in logged)
