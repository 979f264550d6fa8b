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

from codebench.plots import savefig

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
    fig, axes = plt.subplots(
        1, len(benches), figsize=(max(4.5, 3.2 * len(benches) + 1), 3.6), squeeze=False, sharey=True
    )
    width = 0.8 / max(1, len(order))
    for ax, bench in zip(axes[0], benches, strict=True):
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
        ax.set_xticks(x, ks)
        ax.set_title(bench)
        ax.set_ylim(0, 1.05)
    axes[0][0].set_ylabel("pass@k (95% CI)")
    axes[0][-1].legend(fontsize=8, loc="upper right")
    fig.suptitle("pass@k by model variant", y=1.03)
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
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    labelled: set[str] = set()
    for bench, sub in df.groupby("benchmark"):
        xs = [float(sizes[v]) for v in sub.variant]
        lo = [(r.value - r.ci_low) if pd.notna(r.ci_low) else 0.0 for r in sub.itertuples()]
        hi = [(r.ci_high - r.value) if pd.notna(r.ci_high) else 0.0 for r in sub.itertuples()]
        ax.errorbar(xs, sub.value, yerr=[lo, hi], fmt="o", capsize=3, label=str(bench))
        for x, y, v in zip(xs, sub.value, sub.variant, strict=True):
            if v not in labelled:  # one label per variant
                ax.annotate(v, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
                labelled.add(v)
    ax.set_xlabel("model size on disk (MB)")
    ax.set_ylabel(metric)
    ax.set_ylim(-0.02, 1.05)
    ax.legend(fontsize=8)
    ax.set_title(f"{metric} against model size")
    path = savefig(fig, figures_dir, "report_quality_vs_size")
    plt.close(fig)
    return path


def data_funnel(funnel: pd.DataFrame, figures_dir: str | os.PathLike) -> Path | None:
    """Horizontal bars: records surviving each data-building step, first step on top."""
    df = funnel.dropna(subset=["records"]) if not funnel.empty else funnel
    if df.empty:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 0.45 * len(df) + 1.2))
    y = np.arange(len(df))[::-1]
    ax.barh(y, df.records, color="tab:blue")
    ax.set_yticks(y, df.step)
    top = float(df.records.iloc[0]) or 1.0
    for yi, n in zip(y, df.records, strict=True):
        ax.text(n, yi, f" {int(n):,} ({n / top:.0%})", va="center", fontsize=8)
    ax.set_xlabel("records")
    ax.set_xlim(0, float(df.records.max()) * 1.3 or 1)
    ax.set_title("data funnel (01_build_data)")
    path = savefig(fig, figures_dir, "report_data_funnel")
    plt.close(fig)
    return path


def training_curves(training: pd.DataFrame, figures_dir: str | os.PathLike) -> Path | None:
    """Loss against optimizer step, one line per series (train, eval)."""
    if training.empty:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for series, sub in training.groupby("series", sort=False):
        sub = sub.sort_values("step")
        ax.plot(sub.step, sub.loss, marker="o" if len(sub) < 30 else None, ms=3, label=str(series))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.set_title("fine-tuning curves (02_finetune)")
    path = savefig(fig, figures_dir, "report_training_curves")
    plt.close(fig)
    return path
