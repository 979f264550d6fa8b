"""Every figure of a run, drawn from a small fixture run, is readable: it has data on it (or
says in words why it has none), its labels do not overlap, and the report says the right
things (last logged loss, base perplexity, skipped CUDA variants, canaries)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from codebench import results  # noqa: E402
from codebench.bench import suite  # noqa: E402
from codebench.plots import base as base_plots  # noqa: E402
from codebench.plots import compress as cplots  # noqa: E402
from codebench.plots import data as dplots  # noqa: E402
from codebench.plots import evaluate as eplots  # noqa: E402
from codebench.plots import label_points, shorten  # noqa: E402
from codebench.plots import report as rplots  # noqa: E402
from codebench.plots import train as tplots  # noqa: E402
from codebench.runs import RunLayout, write_variant_info  # noqa: E402
from codebench.stages import report as report_stage  # noqa: E402

VARIANTS = ["base", "finetuned", "int8-dynamic", "magnitude-50"]
BENCHES = {"humaneval": 8, "mbpp": 8, "mtpb": 40, "multiple-js": 8, "codeio": 8}
LAYERS = [f"model.layers.{i}.{m}" for i in range(4) for m in ("mlp.up_proj", "self_attn.q_proj")]


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def make_run(root: Path, *, zero: bool = False) -> RunLayout:
    """A run folder shaped like the smoke run's: every stage's results file, with values."""
    run = RunLayout(root / "runs" / "fx", root / "figures" / "fx")
    for v, parent in (("base", None), ("finetuned", "base")):
        folder = run.model_dir(v)
        folder.mkdir(parents=True)
        write_variant_info(folder, kind=v, parent=parent)
        with (folder / "model.safetensors").open("wb") as f:
            f.truncate(4_470_000)  # sparse: the size on disk the report reads
    steps = list(range(1, 41))
    _write(
        run.result_file("base_model"),
        {
            "base": "tiny",
            "model_dir": str(run.model_dir("base")),
            "parameters": 1_115_264,
            "tokens_seen": 1_638_400,
            "history": {
                "step": steps,
                "train_loss": [7.5 - 0.08 * s for s in steps],
                "lr": [1e-3 * min(1, s / 4) for s in steps],
                "eval_step": [1, 20, 40],
                "heldout_loss": [7.4, 6.0, 4.5],
            },
            "heldout_perplexity": {"ppl": 86.9, "nll": 4.46, "tokens": 16986},
        },
    )
    _write(
        run.result_file("build_data"),
        {
            "funnel": {
                "raw": 64,
                "unified": 34,
                "decontaminated": 34,
                "with_io": 26,
                "prompts": 184,
                "predicted": 32,
                "verified_turn1": 0,
                "fixed_turn2": 0,
                "sft": 32,
            },  # fmt: skip
            "drop_reasons": {"unify": {"syntax-error": 10}, "io": {"constant-output": 5}},
            "statuses": {"turn1": {"input": {"truncated": 13}, "output": {"truncated": 19}}},
            "assembly": {"sft:revised-gold": 32, "plain:gold": 32},
        },
    )
    log = [{"step": s, "loss": 2.0 / s + 0.2, "learning_rate": 1e-3} for s in range(2, 41, 2)]
    log += [{"step": 20, "eval_loss": 0.3}, {"step": 40, "eval_loss": 0.25}]
    log += [{"step": 40, "train_loss": 0.777, "train_runtime": 24.0, "total_flos": 1.0}]
    _write(
        run.result_file("finetune"),
        {"method": "lora", "log_history": log, "expected_lr": [1e-3] * 41, "val_ppl_before": 8.1,
         "val_ppl_after": 1.2, "lengths": [300, 320, 340, 500], "data": {"max_length": 512}},
    )  # fmt: skip
    pruned = lambda spec: {  # noqa: E731
        "spec": spec, "name": spec, "status": "ok", "size_mb": 2.87, "perplexity": 105.0 + len(spec),
        "measure": {"weight_bytes": 2.87e6, "perplexity": 105.0 + len(spec),
                    "decode_ms_per_token": 1.5, "prefill_ms": 4.0},
        "info": {"sparsity_layers": [{"name": n, "sparsity": 0.5} for n in LAYERS]},
    }  # fmt: skip
    _write(
        run.result_file("compress"),
        {
            "source": {"name": "finetuned", "path": str(run.model_dir("finetuned"))},
            "device": "cpu",
            "reference": {"name": "finetuned", "size_mb": 4.47, "ms_per_token": 1.46,
                          "weight_bytes": 4.47e6, "perplexity": 105.6,
                          "decode_ms_per_token": 1.46, "prefill_ms": 4.3, "threads": 1},
            "variants": [
                {"spec": "int8-dynamic", "name": "int8-dynamic", "status": "ok", "size_mb": 1.16,
                 "measure": {"weight_bytes": 1.16e6, "perplexity": 105.4,
                             "decode_ms_per_token": 1.1, "prefill_ms": 2.2}},
                {"spec": "int8-weight", "name": "int8-weight", "status": "ok", "size_mb": 1.16,
                 "measure": {"weight_bytes": 1.16e6, "perplexity": 105.6,
                             "decode_ms_per_token": 1.3, "prefill_ms": 3.5}},
                pruned("magnitude-50"), pruned("wanda-50"), pruned("2:4"),
                {"spec": "nf4", "name": "nf4", "status": "skipped",
                 "reason": "nf4 needs CUDA (bitsandbytes 4-bit kernels); this machine has none"},
            ],
        },
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for v, (b, n) in itertools.product(VARIANTS, BENCHES.items()):
        ids = (
            [f"mtpb/{i}/{t}" for i in range(8) for t in range(5)]
            if b == "mtpb"
            else [f"HumanEval_{i}_some_rather_long_function_name" for i in range(n)]
            if b == "multiple-js"
            else [f"{b}/{i}" for i in range(n)]
        )
        c = {t: int(0 if zero else rng.random() < 0.4) for t in ids}
        value = sum(c.values()) / len(ids)
        _write(
            run.root / "eval" / v / b / "results.json",
            {
                "benchmark": b,
                "variant": v,
                "status": "ok",
                "problems": len(ids),
                "task": {"language": "js" if b == "multiple-js" else "python"},
                "metrics": {"pass@1": {"value": value, "ci_low": max(0.0, value - 0.2),
                                       "ci_high": min(1.0, value + 0.2), "problems": len(ids)}},
                "outcomes": {"passed": sum(c.values()), "failed": len(ids) - sum(c.values())},
                "per_problem": {t: {"n": 1, "c": k} for t, k in c.items()},
                "canary": {"ok": True, "checks": [
                    {"task_id": "x", "kind": "reference", "ok": True},
                    {"task_id": "x", "kind": "wrong", "ok": True},
                ]},
            },
        )  # fmt: skip
    return run


@pytest.fixture
def captured(monkeypatch):
    """Every figure saved through a module's `savefig`, kept open for inspection."""
    figs: dict[str, plt.Figure] = {}
    from codebench import plots

    real = plots.savefig

    def keep(fig, figures_dir, name):
        figs[name] = fig
        return real(fig, figures_dir, name)

    for mod in (plots, eplots, rplots, dplots):
        monkeypatch.setattr(mod, "savefig", keep)
    monkeypatch.setattr(plt, "close", lambda *a, **k: None)  # keep them for the checks
    monkeypatch.setitem(plt.rcParams, "figure.max_open_warning", 0)
    yield figs
    plt.close("all")


def _data_artists(ax) -> int:
    bars = [p for p in ax.patches if p.get_height() > 0 and p.get_width() > 0]
    lines = [ln for ln in ax.lines if len(ln.get_xdata()) > 0]
    return len(bars) + len(lines) + len(ax.collections) + len(ax.images)


def _message(fig) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts if not ax.axison)


def _non_blank(png: Path) -> float:
    img = plt.imread(png)[..., :3]
    return float((img.min(axis=2) < 0.9).mean())


def _check(fig, png: Path | None = None) -> None:
    visible = [ax for ax in fig.axes if ax.get_visible()]
    has_data = any(_data_artists(ax) for ax in visible if ax.axison)
    assert has_data or len(_message(fig)) > 20, "figure has neither data nor a message"
    if png is not None:
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert _non_blank(png) > 0.005, f"{png.name} is (nearly) blank"


def _all_figures(run: RunLayout) -> dict[str, plt.Figure | Path | None]:
    evals = suite.load_results(run)
    table, outcomes = suite.results_table(evals), suite.outcomes_table(evals)
    per_problem = suite.per_problem_table(evals)
    base = results.read_stage(run, results.BaseModelResults)
    data = results.read_stage(run, results.BuildDataResults)
    ft = results.read_stage(run, results.FinetuneResults)
    comp = results.read_stage(run, results.CompressResults)
    out: dict = {"base_loss": base_plots.training_curves(base, run.figures)}
    out |= dplots.save_all(data, run.figures)
    for name, fig in tplots.all_figures(ft).items():
        out[name] = fig
    out["compress_pareto"] = cplots.pareto(comp, "perplexity")
    out["compress_latency"] = cplots.latency_bars(comp)
    out["compress_sparsity"] = cplots.sparsity_by_layer(comp)
    out["eval_passk"] = eplots.passk_intervals(table, run.figures)
    out["eval_outcomes"] = eplots.outcome_breakdown(outcomes, run.figures)
    out["eval_problems"] = eplots.problem_heatmap(per_problem, run.figures)
    out["eval_languages"] = eplots.language_bars(table, run.figures)
    res = report_stage.write_report(run)
    out |= {f"report {k}": v for k, v in res.figures.items()}
    return out


@pytest.mark.parametrize("zero", [False, True], ids=["scores", "all-zero"])
def test_every_figure_has_data_or_says_why_not(tmp_path: Path, captured, zero: bool) -> None:
    run = make_run(tmp_path, zero=zero)
    figures = _all_figures(run)
    assert all(v is not None for v in figures.values()), [
        k for k, v in figures.items() if v is None
    ]
    for name, fig in captured.items():
        _check(fig, run.figures / f"{name}.png")
    for fig in figures.values():
        if isinstance(fig, plt.Figure):
            _check(fig)
    if zero:  # all-zero pass@k: a sentence instead of bars of height 0
        for name in ("eval_passk", "eval_languages", "report_passk_by_variant"):
            assert "Every pass@k is 0" in _message(captured[name]), name
    else:
        assert "Every pass@k is 0" not in _message(captured["eval_passk"])


def _overlaps(texts) -> list[tuple[str, str]]:
    fig = texts[0].figure
    r = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(r)) for t in texts]
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]


def test_point_labels_do_not_overlap(tmp_path: Path, captured) -> None:
    run = make_run(tmp_path)
    comp = results.read_stage(run, results.CompressResults)
    fig = cplots.pareto(comp, "perplexity")
    texts = [t for t in fig.axes[0].texts if t.get_text()]
    assert not _overlaps(texts), _overlaps(texts)
    shown = "\n".join(t.get_text() for t in texts)
    assert "int8-dynamic" in shown and "int8-weight" in shown  # both named, not hidden
    assert "nf4 (needs CUDA)" in " ".join(t.get_text() for t in fig.axes[0].get_legend().texts)
    # a crowd of coincident and near points
    fig, ax = plt.subplots()
    ax.set(xlim=(0, 10), ylim=(0, 10))
    pts = [(5, 5, "a"), (5, 5, "b"), (5.05, 5.05, "c"), (5.3, 5.2, "d"), (5.5, 5.1, "e")]
    anns = label_points(ax, pts)
    assert not _overlaps(anns)
    assert sorted("\n".join(a.get_text() for a in anns).split()) == ["a", "b", "c", "d", "e"]


def test_coinciding_sparsity_lines_stay_visible(tmp_path: Path) -> None:
    comp = results.read_stage(make_run(tmp_path), results.CompressResults)
    fig = cplots.sparsity_by_layer(comp)
    lines = fig.axes[0].lines
    styles = {(ln.get_marker(), ln.get_markersize(), str(ln.get_linestyle())) for ln in lines}
    assert len(lines) == 3 and len(styles) == 3
    assert "identical in every layer" in fig.axes[0].get_title()


def test_heatmap_is_sized_to_content_with_readable_labels(tmp_path: Path, captured) -> None:
    run = make_run(tmp_path)
    per_problem = suite.per_problem_table(suite.load_results(run))
    eplots.problem_heatmap(per_problem, run.figures)
    fig = captured["eval_problems"]
    w, h = fig.get_size_inches()
    assert w <= 16 and h <= 24, (w, h)
    for ax in fig.axes[:-1]:  # the last axes is the colour bar
        for t in ax.get_xticklabels() + ax.get_yticklabels():
            assert t.get_fontsize() >= 7 and len(t.get_text()) <= 18, t.get_text()
    titles = " ".join(ax.get_title(loc="left") for ax in fig.axes)
    assert "ids start 'HumanEval_'" in titles and "problems passed by some variant" in titles
    assert shorten("HumanEval_12_some_rather_long_function_name", 14) == "HumanE…on_name"
    assert (
        "| 00 base model | ok | — | held-out perplexity 86.90 |"
        in report_stage.write_report(run).path.read_text()
    )


def test_funnel_percentages_use_each_panels_denominator(tmp_path: Path) -> None:
    data = results.read_stage(make_run(tmp_path), results.BuildDataResults)
    fig = dplots.funnel(data)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "26 (41%)" in texts  # with checked I/O, of 64 source records
    assert "184 (100%)" in texts and "32 (17%)" in texts  # samples, of 184 prompts
    assert not any("288%" in t for t in texts)
    assert "32 SFT records: 0 verified in turn 1, 0 fixed in turn 2, 32 gold fallback" in (
        " ".join(t.get_text() for t in fig.texts)
    )


def test_report_leads_with_findings_canaries_and_skips(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    res = report_stage.write_report(run)
    md = res.path.read_text()
    heads = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert heads[:4] == [
        "## What this run shows",
        "## Canaries",
        "## Skipped, and why",
        "## Stages",
    ]
    # the last logged step's loss, not the Trainer's run average (0.777)
    assert "final train loss 0.250 at step 40" in md and "0.777" not in md
    curve = res.data.training[res.data.training.series == "train"]
    assert math.isclose(curve.loss.iloc[-1], 0.25)
    t = res.table.set_index("variant")
    assert t.loc["base", "perplexity"] == "86.90"  # 00's {"ppl": ..} is read
    assert t.loc["nf4", "humaneval pass@1"] == "skipped: needs CUDA"
    assert "- variant `nf4`: skipped: needs CUDA" in md
    assert "| humaneval | 1 of 1 (each of 4 variants) | 1 of 1 (each of 4 variants) | ok |" in md
    assert "canaries: 5 of 5 benchmarks pass theirs" in md
    assert t.loc["wanda-50", "humaneval pass@1"] == "not evaluated"  # not in evaluate.variants
    assert "wanda-50 2.87 MB (1.6x smaller), perplexity 113.00 (+7.0%)" in md
    assert (
        "with_io | functions | 26 | 41% of raw" in md
        and "sft | samples | 32 | 17% of prompts" in md
    )


def test_funnel_says_why_predictions_failed_and_names_the_family_records() -> None:
    summary = results.BuildDataResults.model_validate(
        {
            "funnel": {"raw": 64, "with_io": 26, "prompts": 184, "predicted": 32, "sft": 32},
            "assembly": {"sft:revised-gold": 32},
            "statuses": {
                "turn1": {"output": {"no-answer": 14, "truncated": 2}, "input": {"no-answer": 16}}
            },
            "family_sft": {"kept": 999, "removed": 1},
        }
    )
    text = " ".join(t.get_text() for t in dplots.funnel(summary).texts)
    assert "turn 1 answers: 30 no ```json answer block, 2 cut at max_new_tokens" in text
    assert "+ 999 pyfamilies training functions as prompt-completion SFT records" in text
    assert "turn 1 answers" not in dplots.sft_mix(results.BuildDataResults(funnel={"sft": 0}))
