"""Small, fast stage notebooks and profiles for the runner's fault and lock tests.

Each `work` notebook appends `N` records to `run_dir/<stage>.jsonl` through a JsonlStore (what
the real stages do), sleeping a little per record so a test can kill it mid-stage.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat

from codebench.pipeline import NOTEBOOKS

PARAMS = (
    'profile = "notebook"\nseed = 0\ndevice = "cpu"\ndata_dir = None\n'
    'run_dir = "../runs/notebook"\nfigures_dir = "../figures/notebook"'
)
WORK = """
import os, pathlib, time
from codebench.records import JsonlStore
rd = pathlib.Path(run_dir)
rd.mkdir(parents=True, exist_ok=True)
from ipykernel import get_connection_file
with open(rd / "kernel_pids.log", "a") as fh:
    fh.write(f"{os.getpid()} {get_connection_file()}\\n")
with JsonlStore(rd / f"{STAGE}.jsonl", "i") as store:
    for i in range(N):
        if not store.has(i):
            time.sleep(PAUSE)
            store.append({"i": i, "v": f"{STAGE}-{i}", "odd": "\\ud800\\x00"})
"""


def work_notebooks(folder: Path, n: int = 30, pause: float = 0.02, extra: str = "") -> Path:
    """One work notebook per stage, under their pipeline names, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for stage, fname in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "py"}
        nb.metadata["language_info"] = {"name": "python"}
        nb.cells = [
            nbformat.v4.new_markdown_cell(f"# {stage}"),
            nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(f'STAGE = "{stage}"\nN = {n}\nPAUSE = {pause}'),
            nbformat.v4.new_markdown_cell("## Work"),
            nbformat.v4.new_code_cell(WORK + extra),
        ]
        nbformat.write(nb, folder / fname)
    return folder


def profile(folder: Path, stages: tuple[str, ...] = ("model", "data"), name: str = "t") -> Path:
    p = folder / f"{name}.yaml"
    p.write_text(f"name: {name}\ndevice: cpu\nstages: [{', '.join(stages)}]\n")
    return p


def cli(*args: str | os.PathLike) -> list[str]:
    return [sys.executable, "-m", "codebench.cli", *map(str, args)]


def reproduce_args(prof: Path, tmp: Path, nbs: Path, *extra: str) -> list[str]:
    return cli(
        "reproduce",
        prof,
        "--runs-dir",
        tmp / "runs",
        "--figures-dir",
        tmp / "figs",
        "--notebooks-dir",
        nbs,
        "--quiet",
        *extra,
    )


def run_cli(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False
