"""Stage 03_compress end to end on a tiny random model: variants built, measured, skipped with
reasons, results and figures written; isolated measurement; merge order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.compress import CODE, save_random_model

from codebench.compress.build import build_variant
from codebench.compress.measure import MeasureConfig, measure_isolated
from codebench.params import CompressSection, StageContext
from codebench.results import VERSION
from codebench.runs import read_variant_info
from codebench.stages import compress as stage

FAST = dict(
    eval_chars=2_000,
    ppl_context=64,
    ppl_stride=32,
    prompt_tokens=16,
    new_tokens=4,
    repeats=1,
    calibration_sequences=4,
    calibration_seq_len=32,
    isolate=False,
)


@pytest.fixture()
def ctx(tmp_path) -> StageContext:
    save_random_model(
        tmp_path / "run" / "models" / "base", "llama", hidden=64, inter=128, layers=2, heads=4
    )
    return StageContext(
        profile="t",
        seed=0,
        device="cpu",
        data_dir=None,
        run_dir=tmp_path / "run",
        figures_dir=tmp_path / "fig",
    )


@pytest.fixture(autouse=True)
def small_texts(monkeypatch):
    """The stdlib corpus is real but large; a few snippets keep the test fast."""
    monkeypatch.setattr(
        stage, "texts_for", lambda cfg: ([c * 6 for c in CODE], list(CODE) * 8, {"source": "test"})
    )


def test_stage_builds_measures_and_skips(ctx) -> None:
    cfg = CompressSection(
        variants=["int8-dynamic", "magnitude-50", "mlp-prune-25", "nf4", "int4-weight", "bnb-int8"],
        **FAST,
    )
    result = stage.build_and_measure(ctx, cfg, log=lambda s: None)
    saved = json.loads(ctx.run.result_file("compress").read_text())
    assert saved["source"]["name"] == "base" and saved["reference"]["perplexity"] > 1
    by = {v["spec"]: v for v in result["variants"]}
    for spec in ("nf4", "int4-weight", "bnb-int8"):
        assert by[spec]["status"] == "skipped" and "CUDA" in by[spec]["reason"]
        assert not ctx.run.model_dir(spec).exists()
    for spec in ("int8-dynamic", "magnitude-50", "mlp-prune-25"):
        v = by[spec]
        assert v["status"] == "ok", v
        assert read_variant_info(ctx.run.model_dir(spec))["parent"] == "base"
        assert v["measure"]["weight_bytes"] > 0 and v["perplexity"] > 1 and v["ms_per_token"] > 0
        assert v["measure"]["peak_rss_bytes"] > 0
        # decode speed-up timed against the source step by step in one process
        pair = v["decode_paired"]
        assert pair["steps"] == FAST["new_tokens"] * FAST["repeats"] * 1
        assert v["decode_speedup"] == pair["decode_speedup"] > 0
        assert pair["reference_decode_ms"] > 0 and pair["variant_decode_ms"] > 0
        assert 0 < pair["reference_gemm_share"] < 1
    assert by["int8-dynamic"]["decode_paired"]["kernel"] == "fbgemm"
    assert by["int8-dynamic"]["size_ratio"] > 3.0  # embedding quantized too
    assert by["int8-dynamic"]["measure"]["kernel"] == "fbgemm"
    assert by["magnitude-50"]["info"]["sparsity"]["overall"] == 0.5
    assert len(by["magnitude-50"]["info"]["sparsity_layers"]) == 14
    assert set(ctx.run.variants()) >= {"base", "int8-dynamic", "magnitude-50", "mlp-prune-25"}

    # second run reuses the folders built from the same source
    again = stage.build_and_measure(
        ctx, CompressSection(variants=["int8-dynamic"], **FAST), log=lambda s: None
    )
    assert again["variants"][0]["built"] == "reused"


def test_run_writes_table_figures_and_lines(ctx) -> None:
    from codebench.plots import compress as cplots

    result = stage.run(
        ctx,
        CompressSection(variants=["int8-weight", "2:4", "nf4"], **FAST),
        log=lambda s: None,
    )
    data = result.data  # results/compress.json, read through its schema
    assert data.version == VERSION and data.source.name == "base" and data.device == "cpu"
    assert cplots.pareto(data) is not None
    assert cplots.pareto(data, "pass_at_1", lower_is_better=False) is None  # no pass@1 measured
    assert cplots.latency_bars(data) is not None and cplots.sparsity_by_layer(data) is not None
    fig_dir = ctx.figures_dir
    assert result.figures == {
        "compress_pareto_perplexity": fig_dir / "compress_pareto_perplexity.png",
        "compress_pareto_pass_at_1": None,
        "compress_latency": fig_dir / "compress_latency.png",
        "compress_sparsity": fig_dir / "compress_sparsity.png",
    }
    assert all(p.is_file() for p in result.figures.values() if p)
    assert list(result.table.index) == ["base (source)", "int8-weight", "2:4", "nf4"]
    assert result.table.loc["nf4", "status"] == "skipped"
    assert result.table.loc["int8-weight", "x smaller"] > 1
    assert result.lines[0].startswith("nf4: skipped - ") and "CUDA" in result.lines[0]
    assert result.lines[-1].startswith("2 variant(s) measured, 1 skipped")
    front = cplots.pareto_front([("a", 1, 5), ("b", 2, 4), ("c", 3, 6), ("d", 4, 1)])
    assert [p[0] for p in front] == ["a", "b", "d"]


def test_failed_variant_recorded_then_raised(ctx, monkeypatch) -> None:
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(stage, "build_variant", boom)
    with pytest.raises(stage.CompressError, match="int8-weight: build: RuntimeError: disk full"):
        stage.run(ctx, CompressSection(variants=["int8-weight"], **FAST), log=lambda s: None)
    saved = json.loads(ctx.run.result_file("compress").read_text())
    assert saved["variants"][0]["status"] == "failed"


def test_missing_source_is_named(ctx) -> None:
    with pytest.raises(FileNotFoundError, match="run 02_finetune first"):
        stage.resolve_source(ctx.run, "finetuned")
    assert stage.resolve_source(ctx.run, "auto")[0] == "base"


def test_isolated_measurement_reads_process_memory(tmp_path) -> None:
    src = save_random_model(tmp_path / "m", "llama", hidden=32, inter=64, layers=1, heads=2)
    m = measure_isolated(
        src,
        "cpu",
        [CODE[1] * 4],
        MeasureConfig(prompt_tokens=8, new_tokens=2, repeats=1, ppl_context=32, ppl_stride=16),
    )
    assert "error" not in m, m
    assert m["peak_rss_bytes"] >= m["rss_after_load_bytes"] > m["baseline_rss_bytes"] > 0
    assert m["weight_bytes"] == (Path(src) / "model.safetensors").stat().st_size
    bad = measure_isolated(tmp_path / "nowhere", "cpu", [], MeasureConfig())
    assert "error" in bad and "nowhere" in bad["error"]


@pytest.mark.slow
def test_merge_orders(tmp_path) -> None:
    import sys

    from helpers.compress import llama_config, random_model, tiny_tokenizer
    from peft import LoraConfig, get_peft_model

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from merge_order import compare_merge_orders

    base = save_random_model(tmp_path / "base", "llama")
    model = random_model(llama_config())
    peft = get_peft_model(
        model,
        LoraConfig(r=4, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False),
    )
    peft.save_pretrained(tmp_path / "lora")
    tiny_tokenizer().save_pretrained(tmp_path / "lora")
    out = compare_merge_orders(base, tmp_path / "lora", [CODE[1] * 6], context=64, stride=32)
    o = out["orders"]
    assert out["adapted_layers"] == 6
    assert o["merged_fp"]["weight_error"] == 0
    assert o["merge_then_quantize"]["weight_error"] <= o["quantize_then_merge"]["weight_error"]


def test_int8_keeps_trained_tiny_model_perplexity(tiny_model_dir, tmp_path) -> None:
    """On a trained model (the session's tiny model) int8 costs little perplexity."""
    from codebench.compress.measure import measure

    texts = [CODE[1] * 3, CODE[4] * 3, CODE[0] * 3]
    cfg = MeasureConfig(latency=False, ppl_context=64, ppl_stride=32)
    ref = measure(tiny_model_dir, "cpu", texts, cfg)["perplexity"]
    for spec in ("int8-dynamic", "int8-weight"):
        build_variant(tiny_model_dir, spec, tmp_path / spec)
        ppl = measure(tmp_path / spec, "cpu", texts, cfg)["perplexity"]
        assert abs(ppl / ref - 1) < 0.05, (spec, ref, ppl)


@pytest.mark.slow
def test_notebook_runs_headless(tiny_run, tmp_path) -> None:
    import shutil

    import papermill as pm

    from codebench.runs import RunLayout

    run = RunLayout(tmp_path / "run", tmp_path / "fig")  # a copy: the session's run stays untouched
    shutil.copytree(tiny_run.model_dir("base"), run.model_dir("base"))
    nb = Path(__file__).resolve().parents[1] / "notebooks" / "03_compress.ipynb"
    params = {
        "profile": "t",
        "device": "cpu",
        "run_dir": str(run.root),
        "figures_dir": str(tmp_path / "fig"),
        "variants": ["int8-dynamic", "wanda-50", "2:4", "mlp-prune-25", "nf4"],
        **{k: v for k, v in FAST.items() if k != "isolate"},
        "isolate": True,
    }
    pm.execute_notebook(
        str(nb),
        str(tmp_path / "out.ipynb"),
        parameters=params,
        kernel_name="codebench",
        cwd=str(nb.parent),
        progress_bar=False,
    )
    result = json.loads(run.result_file("compress").read_text())
    assert {v["spec"]: v["status"] for v in result["variants"]} == {
        "int8-dynamic": "ok",
        "wanda-50": "ok",
        "2:4": "ok",
        "mlp-prune-25": "ok",
        "nf4": "skipped",
    }
    assert (tmp_path / "fig" / "compress_pareto_perplexity.png").is_file()
    assert (tmp_path / "fig" / "compress_sparsity.png").is_file()
