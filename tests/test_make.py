"""The Makefile's promises in the README: `make setup` picks the torch build that fits the
machine, checks the system packages a profile needs and prints the one apt command for what
is missing; `make lab` opens at the project root and works for root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _make(*args: str, path: str | None = None) -> str:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    out = subprocess.run(
        [MAKE, "-s", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _tools_only(tmp_path: Path, *names: str) -> str:
    """A PATH holding only the shell tools the recipe uses, plus `names` (e.g. node)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "sed", "tr", "grep", "echo", *names):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_check_system_prints_one_apt_command_for_what_is_missing(tmp_path: Path) -> None:
    prof = tmp_path / "p.yaml"
    prof.write_text(
        "evaluate:\n  benchmarks: [humaneval, multiple-js, 'multiple-cpp']  # multiple-java\n"
    )
    out = _make("check-system", f"PROFILE={prof}", path=_tools_only(tmp_path))
    assert "sudo apt-get install -y bubblewrap nodejs g++\n" in out
    assert "default-jdk-headless" not in out  # only named in a comment


def test_check_system_of_the_smoke_profile_names_node(tmp_path: Path) -> None:
    out = _make("check-system", path=_tools_only(tmp_path, "bwrap"))
    assert "sudo apt-get install -y nodejs" in out


def test_setup_chooses_the_torch_build() -> None:
    # -n prints the recipe; the choice itself happens in the shell, so run it with each TORCH
    cpu = _make("-n", "-B", ".venv/.codebench-installed", "TORCH=cpu")
    assert (
        '"torch==2.13.0+cpu"' in cpu and "--index-url https://download.pytorch.org/whl/cpu" in cpu
    )
    assert "nvidia-smi -L" in cpu  # TORCH=auto asks nvidia-smi whether there is a GPU


def test_lab_opens_at_the_project_root_and_allows_root() -> None:
    out = _make("-n", "lab")
    assert f'--ServerApp.root_dir="{REPO}"' in out
    assert ("--allow-root" in out) == (os.geteuid() == 0)
    assert "cd notebooks" not in out


def test_make_kernel_installs_for_the_user_jupyter(tmp_path: Path) -> None:
    """`make kernel` lists the codebench kernel in the user's own Jupyter: its recipe is
    `ipykernel install --user`; run here with a temporary Jupyter data folder."""
    import json
    import shlex
    import sys

    # run as a top-level make even under `make test` (no "make[1]: Entering directory" lines)
    clean = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    out = subprocess.run(
        [MAKE, "-n", "--no-print-directory", "kernel"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
    ).stdout
    # the last recipe line (the lines before it set up .venv when it is out of date)
    line = [ln for ln in out.strip().splitlines() if not ln.startswith("make")][-1]
    argv = shlex.split(line)
    assert argv[0] == ".venv/bin/python" and argv[1:4] == ["-m", "ipykernel", "install"]
    assert "--user" in argv and "--sys-prefix" not in argv
    env = dict(os.environ, JUPYTER_DATA_DIR=str(tmp_path / "jupyter"))
    subprocess.run([sys.executable, *argv[1:]], env=env, check=True, capture_output=True)
    spec = json.loads((tmp_path / "jupyter" / "kernels" / "codebench" / "kernel.json").read_text())
    assert spec["display_name"] == "Python (codebench)"
    assert Path(spec["argv"][0]).resolve() == Path(sys.executable).resolve()
