"""Figures of the 05_report stage, as functions of the report's tables (codebench.report).

Each function saves one PNG through `savefig` and returns its path, or returns None when
its table has nothing to draw (the stage did not run), so the report can say "not run".
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from codebench.plots import all_zero, label_points, message_figure, savefig
from codebench.plots.evaluate import _all_zero_message, mark_zeros
from codebench.results import BuildDataResults

_PASSK = re.compile(r"^pass@(\d+)$")


def passk_by_variant(
    evals: pd.DataFrame, figures_dir: str | os.PathLike, variants: list[str] | None = None
) -> Path | None:
    """Grouped bars: pass@k per variant, one panel per benchmark, 95% intervals as error bars."""
    df = evals[evals.metric.astype(str).str.match(_PASSK)] if not evals.empty else evals
    if df.empty:
        return None
    benches = sorted(df.benchmark.unique())
    order = [v for v in (variants or sorted(df.variant.unique())) if v in set(df.variant)]
    if all_zero(df.value.tolist()):
        fig = message_figure("pass@k by model variant", _all_zero_message(df, benches, order))
        path = savefig(fig, figures_dir, "report_passk_by_variant")
        plt.close(fig)
        return path
    ncols = min(4, len(benches))
    nrows = -(-len(benches) // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(max(4.5, 3.0 * ncols + 1), 3.0 * nrows + 0.6),
        squeeze=False,
        sharey=True,
    )
    for ax in axes.flat[len(benches) :]:
        ax.set_visible(False)
    width = 0.8 / max(1, len(order))
    for ax, bench in zip(axes.flat, benches, strict=False):
        sub = df[df.benchmark == bench]
        ks = sorted(sub.metric.unique(), key=lambda m: int(_PASSK.match(m).group(1)))
        x = np.arange(len(ks))
        for i, v in enumerate(order):
            vals, lo, hi = [], [], []
            for k in ks:
                r = sub[(sub.variant == v) & (sub.metric == k)]
                val = float(r.value.iloc[0]) if len(r) else np.nan
                cl = r.ci_low.iloc[0] if len(r) else None
                ch = r.ci_high.iloc[0] if len(r) else None
                vals.append(val)
                lo.append(val - cl if cl is not None and not pd.isna(cl) else 0.0)
                hi.append(ch - val if ch is not None and not pd.isna(ch) else 0.0)
            ax.bar(
                x + (i - (len(order) - 1) / 2) * width,
                vals,
                width,
                yerr=[lo, hi],
                capsize=3,
                label=v,
            )
            mark_zeros(ax, x + (i - (len(order) - 1) / 2) * width, vals)
        ax.set_xticks(x, ks)
        zero = all_zero(sub.value.tolist())
        ax.set_title(bench + (" (all 0)" if zero else ""))
        ax.set_ylim(0, 1.05)
    for row in axes:
        row[0].set_ylabel("pass@k (95% CI)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="upper right", title="variant")
    fig.suptitle("pass@k by model variant")
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    path = savefig(fig, figures_dir, "report_passk_by_variant")
    plt.close(fig)
    return path


def quality_vs_size(
    evals: pd.DataFrame,
    models: pd.DataFrame,
    figures_dir: str | os.PathLike,
    metric: str = "pass@1",
    variants: list[str] | None = None,
) -> Path | None:
    """Scatter: `metric` against model size (MB on disk), one marker per benchmark, variants labelled."""
    if evals.empty or models.empty:
        return None
    sizes = models.dropna(subset=["size_mb"]).set_index("variant").size_mb
    df = evals[(evals.metric == metric) & evals.variant.isin(sizes.index)]
    if variants:
        df = df[df.variant.isin(variants)]
    if df.empty:
        return None
    title = f"{metric} against model size"
    if all_zero(df.value.tolist()):
        benches = sorted(df.benchmark.unique())
        fig = message_figure(title, _all_zero_message(df, benches, sorted(df.variant.unique())))
        path = savefig(fig, figures_dir, "report_quality_vs_size")
        plt.close(fig)
        return path
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    benches = list(df.groupby("benchmark"))
    dodge = 0.012 * float(sizes.max() or 1)  # benchmarks side by side at one size
    bars = []  # error bars, kept clear of the variant labels
    for j, (bench, sub) in enumerate(benches):
        shift = (j - (len(benches) - 1) / 2) * dodge
        xs = [float(sizes[v]) + shift for v in sub.variant]
        lo = [(r.value - r.ci_low) if pd.notna(r.ci_low) else 0.0 for r in sub.itertuples()]
        hi = [(r.ci_high - r.value) if pd.notna(r.ci_high) else 0.0 for r in sub.itertuples()]
        ax.errorbar(xs, sub.value, yerr=[lo, hi], fmt="o", ms=4, capsize=2, label=str(bench))
        bars += [
            (x, v - a, x, v + b) for x, v, a, b in zip(xs, sub.value, lo, hi, strict=True) if a or b
        ]
    ax.set_xlabel("model size on disk (MB)")
    ax.set_ylabel(metric)
    ax.set_ylim(-0.05, 1.05)
    xmax = float(sizes[sizes.index.isin(df.variant)].max())
    ax.set_xlim(0, xmax * 1.25)
    # one label per variant, above its highest point; coincident variants share a label
    tops = df.groupby("variant").value.max()
    label_points(
        ax, [(float(sizes[v]), float(tops[v]), v) for v in tops.index], merge_px=14, avoid=bars
    )
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), title="benchmark")
    ax.set_title(title)
    path = savefig(fig, figures_dir, "report_quality_vs_size")
    plt.close(fig)
    return path


def data_funnel(
    funnel: pd.DataFrame,
    figures_dir: str | os.PathLike,
    summary: BuildDataResults | None = None,
) -> Path | None:
    """The 01 funnel: functions (% of source records) and prediction samples (% of training
    prompts) in two panels, with how the SFT records were made (`plots.data.funnel`)."""
    from codebench.plots import data as data_plots

    df = funnel.dropna(subset=["records"]) if not funnel.empty else funnel
    if df.empty:
        return None
    counts = {str(r.step): int(r.records) for r in df.itertuples()}
    summary = (
        summary.model_copy(update={"funnel": counts})
        if summary is not None
        else BuildDataResults(funnel=counts)
    )
    fig = data_plots.funnel(summary)
    if fig is None:
        return None
    path = savefig(fig, figures_dir, "report_data_funnel")
    plt.close(fig)
    return path


def training_curves(training: pd.DataFrame, figures_dir: str | os.PathLike) -> Path | None:
    """Loss against optimizer step, one line per series (train, eval)."""
    if training.empty:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for series, sub in training.groupby("series", sort=False):
        sub = sub.sort_values("step").drop_duplicates("step", keep="last")
        ax.plot(sub.step, sub.loss, marker="o" if len(sub) < 30 else None, ms=3, label=str(series))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.set_title("fine-tuning curves (02_finetune)")
    path = savefig(fig, figures_dir, "report_training_curves")
    plt.close(fig)
    return path
