"""Stage 04_evaluate: every variant of the run on every benchmark of the profile.

`run(ctx, cfg)` builds the `EvalConfig` from the stage's section, runs variants x benchmarks
through `codebench.bench.suite.evaluate_variants` (the loop `codebench eval` runs too), reads
back every results.json of the run (this stage's and earlier ones) into tables, draws the
figures (`codebench.plots.evaluate`) and writes `results/evaluate.json`. A canary failure
raises `CanaryError` after the other evaluations ran, before anything is written here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from codebench import results
from codebench.bench import suite
from codebench.bench.runner import EvalConfig
from codebench.params import EvaluateSection, StageContext


@dataclass
class EvaluateResult:
    """What stage 04 produced: results/evaluate.json as written (`written`: the variants asked
    for, missing, skipped, scores, canaries), the evaluation summary (`evaluate_variants`'
    results / missing / skipped), the tables over every results.json of the run (scores,
    outcomes, per-problem), the saved figures (None: no data) and lines."""

    written: results.EvaluateResults
    summary: dict[str, Any]
    table: pd.DataFrame
    outcomes: pd.DataFrame
    per_problem: pd.DataFrame
    figures: dict[str, Path | None]
    lines: list[str]

    @property
    def variants(self) -> list[str]:
        """The variants stage 04 was asked for (every variant of the run when none were named)."""
        return self.written.variants

    @property
    def scores(self) -> pd.DataFrame:
        """benchmark x metric rows, one column per variant (the rows that have a metric)."""
        s = self.table.dropna(subset=["metric"])
        if not len(s):
            return self.table
        return s.pivot_table(index=["benchmark", "metric"], columns="variant", values="value")


def eval_config(ctx: StageContext, cfg: EvaluateSection) -> EvalConfig:
    """The evaluation settings of the stage's section (and the run's seed)."""
    return EvalConfig(
        n=cfg.n,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        limit=cfg.limit,
        ks=tuple(cfg.ks),
        seed=ctx.seed,
        batch_size=cfg.batch_size,
        timeout=cfg.timeout,
        canaries=cfg.canaries,
        options={"mask_seed": cfg.fim_seed},
        name=cfg.name,
    )


def run(ctx: StageContext, cfg: EvaluateSection, log=print) -> EvaluateResult:
    """What 04_evaluate.ipynb runs."""
    from codebench.plots import evaluate as eval_plots

    run_ = ctx.run
    variants = cfg.variants if cfg.variants is not None else run_.variants()
    log(f"variants: {variants} | present in the run: {run_.variants()}")
    log(f"benchmarks: {cfg.benchmarks}")
    summary = suite.evaluate_variants(
        run_,
        variants,
        cfg.benchmarks,
        eval_config(ctx, cfg),
        backend=cfg.backend,
        backend_options=cfg.backend_options,
        device=ctx.device,
        data_dir=ctx.data_dir,
        log=log,
    )
    evals = suite.load_results(run_)  # every results.json of the run, earlier ones too
    table = suite.results_table(evals)
    outcomes = suite.outcomes_table(evals)
    per_problem = suite.per_problem_table(evals)
    figures = {
        "pass@k with 95% intervals": eval_plots.passk_intervals(table, ctx.figures_dir),
        "outcome breakdown": eval_plots.outcome_breakdown(outcomes, ctx.figures_dir),
        "per-problem pass rate": eval_plots.problem_heatmap(per_problem, ctx.figures_dir),
        "pass@1 per language": eval_plots.language_bars(table, ctx.figures_dir),
    }
    written = results.write_stage(
        run_,
        results.EvaluateResults,
        {
            "variants": variants,
            "benchmarks": cfg.benchmarks,
            "missing_variants": summary["missing"],
            "skipped": summary["skipped"],
            "scores": table.to_dict("records"),
            "canaries": {
                f"{r['variant']}/{r.get('spec')}": (r.get("canary") or {}).get("ok")
                for r in summary["results"]
                if r.get("status") != "skipped"
            },
        },
    )
    lines = [*suite.summary_lines(summary), f"results: {run_.result_file('evaluate')}"]
    return EvaluateResult(
        results.EvaluateResults.model_validate(written),
        summary,
        table,
        outcomes,
        per_problem,
        figures,
        lines,
    )
