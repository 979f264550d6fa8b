"""Every figure, as functions of result tables. One module per stage; shared helpers here."""

from __future__ import annotations

import os
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


def savefig(fig: plt.Figure, figures_dir: str | os.PathLike, name: str) -> Path:
    """Save `fig` as figures_dir/name.png (tight bbox) and return the path."""
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.savefig(path, bbox_inches="tight")
    return path
