"""Every figure, as functions of result tables. One module per stage; shared helpers here.

Shared rules every figure follows:

- a figure with nothing to show says so in words (`message_figure`), never empty axes;
- point labels never overlap (`label_points`: coincident points share one label, the others
  are placed where they collide with nothing, with a leader line when moved away);
- lines that coincide stay visible (`SERIES_STYLES`: distinct markers, sizes and dashes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt

plt.rcParams.update(
    {
        "figure.dpi": 110,
        "savefig.dpi": 130,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)

# (marker, marker size, line style): drawn in this order, big hollow markers first, so
# series with identical values stay distinguishable
SERIES_STYLES: tuple[tuple[str, float, str], ...] = (
    ("o", 9.0, "-"),
    ("s", 6.5, "--"),
    ("^", 4.5, ":"),
    ("D", 3.5, "-."),
    ("v", 3.0, (0, (5, 1))),
    ("x", 5.0, (0, (1, 1))),
)


def savefig(fig: plt.Figure, figures_dir: str | os.PathLike, name: str) -> Path:
    """Save `fig` as figures_dir/name.png (tight bbox) and return the path."""
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.savefig(path, bbox_inches="tight")
    return path


def message_figure(title: str, message: str, *, width: float = 6.4) -> plt.Figure:
    """A figure that says in words why there is nothing to draw (instead of empty axes)."""
    import textwrap

    fig, ax = plt.subplots(figsize=(width, 2.2))
    ax.set_axis_off()
    ax.set_title(title)
    wrapped = "\n".join(textwrap.fill(p, width=int(width * 12)) for p in message.split("\n"))
    ax.text(0.5, 0.5, wrapped, ha="center", va="center", fontsize=10, transform=ax.transAxes)
    return fig


def all_zero(values: Sequence[float]) -> bool:
    """True when every finite value is 0 (and there is at least one)."""
    import math

    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return bool(finite) and all(v == 0 for v in finite)


def shorten(text: str, width: int = 24) -> str:
    """`text` cut in the middle to at most `width` characters ('HumanEval_1…_groups')."""
    text = str(text)
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


_OFFSETS = [(6, 6), (6, -14), (-6, 6), (-6, -14), (10, 20), (10, -28), (-10, 20), (-10, -28),
            (16, 34), (16, -42), (-16, 34), (-16, -42), (24, 0), (-24, 0)]  # fmt: skip


def label_points(
    ax: plt.Axes,
    points: Sequence[tuple[float, float, str]],
    *,
    fontsize: float = 8,
    merge_px: float = 8.0,
    avoid: Sequence[tuple[float, float, float, float]] = (),
) -> list:
    """Label (x, y, text) points in `ax` without overlaps; returns the annotations.

    Points closer than `merge_px` on screen share one label (their names joined, one per
    line). Each label takes the first offset whose box overlaps no placed label, no point, no
    `avoid` box (x0, y0, x1, y1 in data coordinates, e.g. error bars) and stays inside the
    axes; labels placed away from their point get a leader line.
    """
    fig = ax.figure
    fig.canvas.draw()  # fixes the limits and the transforms
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    groups: list[tuple[tuple[float, float], list[str]]] = []
    for x, y, text in points:
        px = to_px((x, y))
        for (gx, gy), names in groups:
            if abs(gx - px[0]) <= merge_px and abs(gy - px[1]) <= merge_px:
                if text not in names:
                    names.append(text)
                break
        else:
            groups.append(((float(px[0]), float(px[1])), [text]))
    from matplotlib.transforms import Bbox

    dots = [Bbox.from_extents(gx - 4, gy - 4, gx + 4, gy + 4) for (gx, gy), _ in groups]
    for x0, y0, x1, y1 in avoid:
        (a, b), (c, d) = to_px((x0, y0)), to_px((x1, y1))
        dots.append(Bbox.from_extents(min(a, c) - 3, min(b, d) - 2, max(a, c) + 3, max(b, d) + 2))
    axbox = ax.get_window_extent(renderer)
    placed: list = []
    out = []
    inv = ax.transData.inverted()

    def candidate(xy, text: str, dx: float, dy: float, leader: bool):
        ann = ax.annotate(
            text,
            xy,
            xytext=(dx, dy),
            textcoords="offset points",
            fontsize=fontsize,
            ha="left" if dx >= 0 else "right",
            va="bottom" if dy >= 0 else "top",
            arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6} if leader else None,
        )
        return ann, ann.get_window_extent(renderer).expanded(1.05, 1.1)

    for (gx, gy), names in groups:
        xy = tuple(inv.transform((gx, gy)))
        text = "\n".join(names)
        chosen = None
        for i, (dx, dy) in enumerate(_OFFSETS):
            ann, box = candidate(xy, text, dx, dy, leader=i >= 4)
            inside = axbox.x0 <= box.x0 and box.x1 <= axbox.x1
            inside = inside and axbox.y0 <= box.y0 and box.y1 <= axbox.y1
            if inside and not any(box.overlaps(b) for b in placed + dots):
                chosen = (ann, box)
                break
            ann.remove()
        if chosen is None:  # crowded: the first place, whatever it touches
            chosen = candidate(xy, text, *_OFFSETS[0], leader=False)
        placed.append(chosen[1])
        out.append(chosen[0])
    return out
