"""Where things live: the benchmark data folder and the repository root."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class DataDirError(FileNotFoundError):
    """The benchmark data folder could not be found."""


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Return the benchmark data folder: `explicit`, else $CODEBENCH_DATA, else ../shared/data.

    Raises DataDirError naming every place looked at when none exists.
    """
    tried: list[str] = []
    for cand in (explicit, os.environ.get("CODEBENCH_DATA"), REPO_ROOT.parent / "shared" / "data"):
        if not cand:
            continue
        p = Path(cand).expanduser().resolve()
        if p.is_dir():
            return p
        tried.append(str(p))
    raise DataDirError(
        "benchmark data folder not found (looked at: "
        + (", ".join(tried) or "nothing set")
        + "); set the profile's data_dir or $CODEBENCH_DATA, or fetch the sets with "
        "`codebench fetch-data DIR`"
    )
