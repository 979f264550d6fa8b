"""Figures of stage 03_compress, as functions of results/compress.json.

Each function takes the loaded result dict (`reference` plus `variants` rows) and returns a
matplotlib Figure (None when there is nothing to draw); the notebook saves them with
`codebench.plots.savefig`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from codebench.plots import savefig  # noqa: F401 - re-exported for notebooks


def _points(result: dict, metric: str) -> list[tuple[str, float, float]]:
    """(label, weight MB, metric) for the source and every measured variant."""
    rows = [(f"{result['reference'].get('name', 'source')} (source)", result["reference"])]
    rows += [
        (v["spec"], {**v.get("measure", {}), **v})
        for v in result.get("variants", [])
        if v.get("status") == "ok"
    ]
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


def pareto(
    result: dict, metric: str = "perplexity", lower_is_better: bool = True, title: str | None = None
):
    """Size on disk vs `metric` per variant, Pareto front drawn; None without data."""
    pts = _points(result, metric)
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, x, y in pts:
        ax.scatter(
            x, y, s=36, color="tab:red" if label.endswith("(source)") else "tab:blue", zorder=3
        )
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front = pareto_front(pts, lower_is_better)
    ax.plot(
        [p[1] for p in front],
        [p[2] for p in front],
        "--",
        color="tab:gray",
        zorder=2,
        label="Pareto front",
    )
    ax.set_xlabel("weights on disk (MB)")
    ax.set_ylabel(metric + (" (lower is better)" if lower_is_better else " (higher is better)"))
    ax.set_title(title or f"size vs {metric}")
    ax.legend(loc="best", fontsize=8)
    return fig


def latency_bars(result: dict):
    """Prefill (ms) and decode (ms/token) per variant, side by side; None without data."""
    ref = result["reference"]
    rows = [("source", ref)] + [
        (v["spec"], v["measure"]) for v in result.get("variants", []) if v.get("status") == "ok"
    ]
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
        f"latency on {result.get('device', '?')}"
        + (f", {threads} threads" if threads else "")
        + " (median)"
    )
    fig.tight_layout()
    return fig


def sparsity_by_layer(result: dict):
    """Per-layer sparsity of each pruned variant; None when no variant was pruned."""
    series = [
        (v["spec"], v["info"]["sparsity_layers"])
        for v in result.get("variants", [])
        if v.get("status") == "ok" and (v.get("info") or {}).get("sparsity_layers")
    ]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(max(6.4, 0.18 * len(series[0][1]) + 3), 3.8))
    for spec, layers in series:
        ax.plot(range(len(layers)), [x["sparsity"] for x in layers], marker="o", ms=3, label=spec)
    names = [x["name"] for x in series[0][1]]
    step = max(1, len(names) // 24)
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
    ax.set_title("per-layer sparsity")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
