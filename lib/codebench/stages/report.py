"""Stage 05_report: collect every stage's results of the run (`codebench.report`), draw the
figures (`codebench.plots.report`), write `runs/<name>/report.md` and `results/report.json`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from codebench import report, results
from codebench.params import ReportSection, StageContext
from codebench.runs import RunLayout


@dataclass
class ReportResult:
    """What stage 05 produced: report.md, its figures (None: no data), the variant table, the
    per-stage status table and everything collected (`data.warnings` among it)."""

    path: Path
    figures: dict[str, Path | None]
    table: pd.DataFrame
    stages: pd.DataFrame
    data: report.ReportData


def run(ctx: StageContext, cfg: ReportSection) -> ReportResult:
    """What 05_report.ipynb runs."""
    return write_report(
        ctx.run,
        title=cfg.title,
        primary_metric=cfg.primary_metric,
        variants=cfg.variants,
        benchmarks=cfg.benchmarks,
        profile=ctx.profile,
    )


def write_report(
    run: RunLayout,
    *,
    title: str = "",
    primary_metric: str = "pass@1",
    variants: list[str] | None = None,
    benchmarks: list[str] | None = None,
    profile: str | None = None,
) -> ReportResult:
    """Collect, plot, and write runs/<name>/report.md and figures/<name>/report_*.png."""
    from codebench.plots import report as plots

    data = report.collect(run, profile)
    table = report.variant_table(data, primary_metric, variants, benchmarks)
    order = report.ordered_variants(data, variants)
    evals = data.evals if not benchmarks else data.evals[data.evals.benchmark.isin(benchmarks)]
    figures = {
        "pass@k by variant": plots.passk_by_variant(evals, run.figures, order),
        f"{primary_metric} against model size": plots.quality_vs_size(
            evals, data.models, run.figures, primary_metric, order
        ),
        "data funnel": plots.data_funnel(data.funnel, run.figures, data.data_summary),
        "training curves": plots.training_curves(data.training, run.figures),
    }
    if data.grpo:
        from codebench.plots.grpo import report_figures

        figures |= report_figures(data.grpo, run.figures)
    path = run.root / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = report.render_markdown(data, table, figures, path, title, primary_metric)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    results.write_stage(
        run,
        results.ReportResults,
        {
            "report": str(path),
            "figures": {k: str(v) if v else None for k, v in figures.items()},
            "stages": [s.__dict__ for s in data.stages],
            "warnings": data.warnings,
        },
    )
    return ReportResult(path, figures, table, report.stage_table(data), data)
