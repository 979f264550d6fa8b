"""Every figure, as functions of result tables. One module per stage; shared helpers here."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

if not os.environ.get("DISPLAY") and "ipykernel" not in os.environ.get("MPLBACKEND", "") and matplotlib.get_backend().lower() in ("", "agg", "tkagg", "qtagg"):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 130, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False})


def savefig(fig: "plt.Figure", figures_dir: str | os.PathLike, name: str) -> Path:
    """Save `fig` as figures_dir/name.png (tight bbox) and return the path."""
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.savefig(path, bbox_inches="tight")
    return path
