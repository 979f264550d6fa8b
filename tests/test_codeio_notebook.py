"""01_build_data with the session's tiny model: the stage module (default) and the notebook (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codebench.codeio import pipeline
from codebench.params import DataSection, StageContext
from codebench.records import read_jsonl
from codebench.runs import RunLayout, model_content_key
from codebench.stages import data as data_stage

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
    ctx = StageContext(
        profile="test",
        seed=0,
        device="cpu",
        data_dir=str(data_dir),
        run_dir=run.root,
        figures_dir=run.figures,
    )
    result = data_stage.run(ctx, DataSection(**SMALL))
    assert result.model_id.startswith("hf:")
    summary = result.summary  # results/build_data.json, read through its schema
    f = summary.funnel
    assert f["predicted"] == 8 and f["sft"] == 8  # the gold fallback keeps every training sample
    statuses = {s for by in summary.statuses["turn1"].values() for s in by}
    assert statuses <= {"success", "wrong", "no-answer", "truncated", "exception", "timeout"}
    preds = list(read_jsonl(run.data / "predictions.jsonl"))
    assert all(p["finish_reason"] in ("stop", "length") for p in preds)
    assert summary.truncated_turn1 == sum(p["truncated"] for p in preds)
    assert json.loads(run.result_file("build_data").read_text())["funnel"] == f
    # what the notebook shows: tables, figures, first records, summary lines
    assert result.funnel.loc["records", "predicted"] == 8
    drops = result.drops
    assert drops.empty or set(drops.index.get_level_values("stage")) <= set(summary.drop_reasons)
    assert result.statuses is not None and result.statuses.to_numpy().sum() > 0
    assert all(p.stat().st_size > 1000 for p in result.figures.values() if p)
    assert result.figures["data_funnel"] == run.figures / "data_funnel.png"
    assert set(result.samples) == {"ios.jsonl", "verified.jsonl", "sft.jsonl"}
    assert result.lines[1].startswith("8 predicted: ")


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


def test_prediction_id_follows_the_model_content(tmp_path, tiny_model_dir) -> None:
    """A base model retrained in the same folder gets a new prediction id, so the build's
    fingerprint changes and the old model's predictions.jsonl is not reused."""
    import shutil

    run = RunLayout(tmp_path / "run", tmp_path / "figures")
    shutil.copytree(tiny_model_dir, run.model_dir("base"))
    cfg = DataSection(**SMALL)
    _, first = data_stage.prediction_backend(cfg, run, "cpu")
    assert first.startswith("hf:base@") and str(tmp_path) not in first  # content, not path
    moved = tmp_path / "elsewhere"
    shutil.copytree(run.model_dir("base"), moved)
    assert model_content_key(moved) == model_content_key(run.model_dir("base"))
    weights = next(run.model_dir("base").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # "retrained": same path, other weights
    weights.write_bytes(bytes(data))
    _, second = data_stage.prediction_backend(cfg, run, "cpu")
    assert second != first

    (run.data).mkdir(parents=True)
    (run.data / "predictions.jsonl").write_text('{"id": "old"}\n')
    fp = {"data": cfg.model_dump(mode="json"), "seed": 0}
    pipeline._reset_if_changed(run.data, {**fp, "model": first}, lambda m: None)
    (run.data / "predictions.jsonl").write_text('{"id": "old"}\n')
    pipeline._reset_if_changed(run.data, {**fp, "model": second}, lambda m: None)
    assert not (run.data / "predictions.jsonl").exists()
