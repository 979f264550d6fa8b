"""Figures of stage 03_compress, as functions of results/compress.json.

Each function takes the file as `codebench.results.CompressResults` (the source's
`reference` plus `variants` rows) and returns a matplotlib Figure (None when there is nothing
to draw); stage 03 (`codebench.stages.compress`) saves them with `codebench.plots.savefig`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from codebench.plots import savefig  # noqa: F401 - re-exported for notebooks
from codebench.results import CompressResults, CompressVariant


def _points(result: CompressResults, metric: str) -> list[tuple[str, float, float]]:
    """(label, weight MB, metric) for the source and every measured variant."""
    rows = [(f"{result.reference.name} (source)", result.reference.numbers())]
    rows += [(v.spec, {**v.measure, **v.numbers()}) for v in result.variants if v.status == "ok"]
    out = []
    for label, m in rows:
        x, y = m.get("weight_bytes"), m.get(metric)
        if x and y is not None:
            out.append((label, x / 1e6, float(y)))
    return out


def pareto_front(
    points: list[tuple[str, float, float]], lower_is_better: bool = True
) -> list[tuple[str, float, float]]:
    """The points no other point beats on both size and metric, sorted by size."""
    sign = 1 if lower_is_better else -1
    front, best = [], float("inf")
    for p in sorted(points, key=lambda p: (p[1], sign * p[2])):
        if sign * p[2] < best:
            front.append(p)
            best = sign * p[2]
    return front


def skipped_note(result: CompressResults) -> str:
    """'not built: nf4 (needs CUDA), ...' for variants the stage skipped, else ''."""
    skipped = [f"{v.spec} ({_short_reason(v)})" for v in result.variants if v.status != "ok"]
    return ("not built: " + ", ".join(skipped)) if skipped else ""


def _short_reason(v: CompressVariant) -> str:
    why = v.reason or v.error or v.status  # skipped: the reason; failed: the error
    if "cuda" in why.lower():
        return "needs CUDA"
    return why.splitlines()[0][:60]


def pareto(
    result: CompressResults,
    metric: str = "perplexity",
    lower_is_better: bool = True,
    title: str | None = None,
):
    """Size on disk vs `metric` per variant, Pareto front drawn; None without data."""
    pts = _points(result, metric)
    if not pts:
        return None
    from codebench.plots import label_points

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    front = pareto_front(pts, lower_is_better)
    on_front = {p[0] for p in front}
    for label, x, y in pts:
        ax.scatter(
            x,
            y,
            s=40,
            color="tab:red" if label.endswith("(source)") else "tab:blue",
            edgecolor="black" if label in on_front else "none",
            linewidth=1.2,
            zorder=3,
        )
    if len(front) >= 2:
        ax.plot(
            [p[1] for p in front],
            [p[2] for p in front],
            "--",
            color="tab:gray",
            lw=1.4,
            zorder=2,
            label="Pareto front",
        )
    better = "lower" if lower_is_better else "higher"
    ax.set_xlabel("weights on disk (MB)")
    ax.set_ylabel(f"{metric} ({better} is better)")
    ax.set_title(title or f"size vs {metric}")
    lo, hi = min(p[2] for p in pts), max(p[2] for p in pts)
    pad = (hi - lo) * 0.12 or abs(hi) * 0.05 or 1.0
    ax.set_ylim(lo - pad, hi + pad)
    xlo, xhi = min(p[1] for p in pts), max(p[1] for p in pts)
    xpad = (xhi - xlo) * 0.15 or abs(xhi) * 0.1 or 1.0
    ax.set_xlim(max(0.0, xlo - xpad), xhi + xpad)
    label_points(ax, [(x, y, label) for label, x, y in pts])
    ax.scatter([], [], s=40, color="white", edgecolor="black", linewidth=1.2,
               label="Pareto-optimal: nothing smaller is better")  # fmt: skip
    note = skipped_note(result)
    if note:  # a legend line without a marker: the note sits with the legend, below the axes
        ax.plot([], [], " ", label=note)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def latency_bars(result: CompressResults):
    """Prefill (ms) and decode (ms/token) per variant, side by side; None without data."""
    ref = result.reference.numbers()
    rows = [("source", ref)] + [(v.spec, v.measure) for v in result.variants if v.status == "ok"]
    rows = [(n, m) for n, m in rows if m.get("decode_ms_per_token")]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(max(6.4, 0.7 * len(rows) + 3), 3.8))
    for ax, key, label in (
        (axes[0], "prefill_ms", "prefill (ms)"),
        (axes[1], "decode_ms_per_token", "decode (ms / token)"),
    ):
        vals = [m.get(key) or 0 for _, m in rows]
        ax.bar(range(len(rows)), vals, color=["tab:red"] + ["tab:blue"] * (len(rows) - 1))
        ax.set_xticks(range(len(rows)), [n for n, _ in rows], rotation=45, ha="right", fontsize=8)
        ax.set_ylabel(label)
    threads = ref.get("threads")
    fig.suptitle(
        f"latency on {result.device}" + (f", {threads} threads" if threads else "") + " (median)"
    )
    fig.tight_layout()
    return fig


def sparsity_by_layer(result: CompressResults):
    """Per-layer sparsity of each pruned variant; None when no variant was pruned.

    Series that coincide (e.g. every method at exactly 50% in every layer) stay visible:
    each has its own marker size and dash, and the title says which ones coincide.
    """
    from codebench.plots import SERIES_STYLES

    series = [
        (v.spec, v.info["sparsity_layers"])
        for v in result.variants
        if v.status == "ok" and v.info.get("sparsity_layers")
    ]
    if not series:
        return None
    names = [x["name"] for x in series[0][1]]
    fig, ax = plt.subplots(figsize=(max(6.4, 0.22 * len(names) + 3), 4.0))
    for i, (spec, layers) in enumerate(series):
        marker, size, dash = SERIES_STYLES[i % len(SERIES_STYLES)]
        ax.plot(
            range(len(layers)),
            [x["sparsity"] for x in layers],
            marker=marker,
            ms=size,
            ls=dash,
            lw=1.4,
            mfc="none" if i == 0 else None,
            label=spec,
            zorder=2 + i,
        )
    step = max(1, len(names) // 32)
    ax.set_xticks(
        range(0, len(names), step),
        [
            names[i].removeprefix("model.").removeprefix("transformer.")
            for i in range(0, len(names), step)
        ],
        rotation=60,
        ha="right",
        fontsize=7,
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of weights zero")
    values = {spec: tuple(round(x["sparsity"], 4) for x in layers) for spec, layers in series}
    same = [spec for spec in values if list(values.values()).count(values[spec]) > 1]
    title = "per-layer sparsity"
    if same:
        title += f"\n{', '.join(same)}: identical in every layer (lines drawn on top of each other)"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
