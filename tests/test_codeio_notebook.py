"""01_build_data with the session's tiny model: the library path (default) and the notebook (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codebench.codeio import pipeline
from codebench.params import DataSection
from codebench.records import read_jsonl
from codebench.runs import RunLayout

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_build_data.ipynb"
SMALL = dict(
    limit=8,
    max_pairs=2,
    call_budget=4,
    max_predictions=8,
    max_new_tokens=16,
    heldout_fraction=0.3,
    batch_size=8,
)


def _run_with_model(tmp_path: Path, tiny_model_dir: Path) -> RunLayout:
    run = RunLayout(tmp_path / "run", tmp_path / "figures")
    run.models.mkdir(parents=True)
    (run.models / "base").symlink_to(tiny_model_dir, target_is_directory=True)
    return run


def test_build_with_the_tiny_model(tmp_path, tiny_model_dir, data_dir) -> None:
    run = _run_with_model(tmp_path, tiny_model_dir)
    cfg = DataSection(**SMALL)
    backend, model_id = pipeline.prediction_backend(cfg, run, "cpu")
    assert model_id.startswith("hf:")
    summary = pipeline.build(
        cfg,
        run.data,
        data_dir=data_dir,
        backend=backend,
        model_id=model_id,
        result_file=run.result_file("build_data"),
    )
    f = summary["funnel"]
    assert f["predicted"] == 8 and f["sft"] == 8  # the gold fallback keeps every training sample
    statuses = {s for by in summary["statuses"]["turn1"].values() for s in by}
    assert statuses <= {"success", "wrong", "no-answer", "truncated", "exception", "timeout"}
    preds = list(read_jsonl(run.data / "predictions.jsonl"))
    assert all(p["finish_reason"] in ("stop", "length") for p in preds)
    assert summary["truncated_turn1"] == sum(p["truncated"] for p in preds)
    assert json.loads(run.result_file("build_data").read_text())["funnel"] == f


@pytest.mark.slow
def test_notebook_runs_headless(tmp_path, tiny_model_dir, data_dir) -> None:
    import papermill as pm

    from codebench.pipeline import KERNEL_NAME, ensure_kernel

    ensure_kernel()
    run = _run_with_model(tmp_path, tiny_model_dir)
    params = dict(
        SMALL,
        profile="test",
        run_dir=str(run.root),
        figures_dir=str(run.figures),
        data_dir=str(data_dir),
        device="cpu",
    )
    out = tmp_path / "01_build_data.out.ipynb"
    pm.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters=params,
        kernel_name=KERNEL_NAME,
        cwd=str(NOTEBOOK.parent),
        progress_bar=False,
    )
    summary = json.loads(run.result_file("build_data").read_text())
    assert summary["funnel"]["predicted"] == 8
    for name in ("data_funnel", "data_drop_reasons", "data_statuses"):
        assert (run.figures / f"{name}.png").stat().st_size > 1000
    for name in (
        "unified",
        "ios",
        "prompts",
        "predictions",
        "verified",
        "revisions",
        "sft",
        "sft_plain",
        "heldout",
    ):
        assert (run.data / f"{name}.jsonl").exists(), name
