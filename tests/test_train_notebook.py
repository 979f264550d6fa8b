"""02_finetune on the session's tiny model and 01's real CodeI/O SFT output: library path and notebook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codebench.params import DataSection, FinetuneSection, StageContext
from codebench.runs import RunLayout, read_variant_info

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_finetune.ipynb"
DATA_SMALL = dict(
    limit=8, max_pairs=2, call_budget=4, max_predictions=8, max_new_tokens=16, heldout_fraction=0.3
)
TRAIN_SMALL = dict(
    max_steps=3, batch_size=2, max_length=2048, eval_steps=3, save_steps=3, lora_r=4, max_val=4
)


@pytest.fixture(scope="module")
def stage01_run(tmp_path_factory, tiny_model_dir, data_dir) -> RunLayout:
    """A run with models/base (the tiny model) and data/sft.jsonl built by codebench.codeio."""
    from codebench.codeio import pipeline
    from codebench.stages.data import prediction_backend

    root = tmp_path_factory.mktemp("ft")
    run = RunLayout(root / "run", root / "figures")
    run.models.mkdir(parents=True)
    (run.models / "base").symlink_to(tiny_model_dir, target_is_directory=True)
    cfg = DataSection(**DATA_SMALL)
    backend, model_id = prediction_backend(cfg, run, "cpu")
    pipeline.build(
        cfg,
        run.data,
        data_dir=data_dir,
        backend=backend,
        model_id=model_id,
        result_file=run.result_file("build_data"),
    )
    return run


def _ctx(run: RunLayout) -> StageContext:
    return StageContext(
        profile="t", seed=0, device="cpu", data_dir=None, run_dir=run.root, figures_dir=run.figures
    )


def test_finetune_on_stage01_sft(stage01_run: RunLayout) -> None:
    from codebench.models import load
    from codebench.stages import finetune as finetune_stage

    run = stage01_run
    out = finetune_stage.run(_ctx(run), FinetuneSection(**TRAIN_SMALL), log=lambda s: None)
    assert out.job.data_path == str(run.data / "sft.jsonl")
    assert list(out.figures) == ["finetune_lengths", "finetune_loss", "finetune_lr", "finetune_ppl"]
    assert all(p.is_file() for p in out.figures.values())
    assert "carry loss" in out.mask_html and out.grpo is None
    assert out.lines[-1] == f"results: {run.result_file('finetune')}"
    result = out.train  # results/finetune.json, read through its schema
    assert result.data["formats"] == {"chat": result.data["records"]}
    assert result.train["steps"] == 3 and result.packing_check_max_abs_diff < 1e-4
    assert read_variant_info(run.model_dir("lora"))["parent"] == "base"
    model, tok = load("finetuned", run=run)  # the merged model loads like any variant
    assert model.config.model_type == "llama" and tok.eos_token is not None


def test_missing_stage_outputs_are_named(tmp_path: Path) -> None:
    from codebench import train

    run = RunLayout(tmp_path / "run", tmp_path / "figures")
    with pytest.raises(FileNotFoundError, match="00_base_model"):
        train.make_job(_ctx(run), FinetuneSection())


@pytest.mark.slow
def test_notebook_runs_headless(stage01_run: RunLayout, tmp_path: Path) -> None:
    import papermill as pm

    from codebench.pipeline import KERNEL_NAME, ensure_kernel

    ensure_kernel()
    run = stage01_run
    params = dict(
        TRAIN_SMALL,
        profile="test",
        run_dir=str(run.root),
        figures_dir=str(run.figures),
        device="cpu",
        resume="never",
    )
    out = tmp_path / "02_finetune.out.ipynb"
    pm.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters=params,
        kernel_name=KERNEL_NAME,
        cwd=str(NOTEBOOK.parent),
        progress_bar=False,
    )
    result = json.loads(run.result_file("finetune").read_text())
    assert result["train"]["steps"] == 3 and result["schedule"]["matches"]
    for name in ("finetune_lengths", "finetune_loss", "finetune_lr", "finetune_ppl"):
        assert (run.figures / f"{name}.png").is_file(), name
    html = json.dumps(json.loads(out.read_text())["cells"])
    assert "carry loss" in html  # the mask inspector rendered
