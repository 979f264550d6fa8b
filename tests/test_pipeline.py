"""The papermill runner: caching, invalidation, failure reporting, manifest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from codebench.pipeline import NOTEBOOKS, Runner, StageFailed

FIX = Path(__file__).parent / "fixtures" / "notebooks"


def _stage_notebooks(tmp: Path) -> dict[str, Path]:
    """One copy of record_stage.ipynb per stage, each writing its own stage name."""
    out = {}
    for stage, fname in NOTEBOOKS.items():
        nb = nbformat.read(FIX / "record_stage.ipynb", as_version=4)
        nb.cells.insert(2, nbformat.v4.new_code_cell(f'STAGE = "{stage}"'))
        p = tmp / "nbs" / fname
        p.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, p)
        out[stage] = p
    return out


def _profile(tmp: Path, steps: int = 5, max_steps: int = 3) -> Path:
    p = tmp / "t.yaml"
    p.write_text(
        f"name: t\ndevice: cpu\nmodel:\n  tiny:\n    steps: {steps}\nfinetune:\n  max_steps: {max_steps}\n"
    )
    return p


def _runner(tmp: Path, profile: Path, nbs: dict[str, Path], log: list[str]) -> Runner:
    return Runner(
        profile,
        runs_root=tmp / "runs",
        figures_root=tmp / "figs",
        notebooks=dict(nbs),
        log=log.append,
    )


def _ran(tmp: Path) -> list[str]:
    f = tmp / "runs" / "t" / "ran.log"
    return f.read_text().split() if f.exists() else []


@pytest.fixture(scope="module")
def cached_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipe")
    nbs = _stage_notebooks(tmp)
    log: list[str] = []
    _runner(tmp, _profile(tmp), nbs, log).run()
    return tmp, nbs


def test_first_run_executes_every_stage_in_order(cached_run) -> None:
    tmp, _ = cached_run
    assert _ran(tmp) == list(NOTEBOOKS)
    manifest = json.loads((tmp / "runs" / "t" / "manifest.json").read_text())
    for stage in NOTEBOOKS:
        e = manifest["stages"][stage]
        assert e["status"] == "ok" and len(e["key"]) == 16 and e["duration_s"] >= 0
        assert (tmp / "runs" / "t" / e["notebook"]).is_file(), "stored relative to the run"
    prov = manifest["provenance"]
    assert prov["seed"] == 0 and prov["packages"]["papermill"] and "python" in prov


def test_second_run_skips_everything(cached_run) -> None:
    tmp, nbs = cached_run
    before = _ran(tmp)
    log: list[str] = []
    _runner(tmp, _profile(tmp), nbs, log).run()
    assert _ran(tmp) == before
    assert sum("skipped" in line for line in log) == len(NOTEBOOKS)


def test_changed_stage_parameter_reruns_it_and_downstream_only(cached_run) -> None:
    tmp, nbs = cached_run
    n0 = len(_ran(tmp))
    log: list[str] = []
    _runner(tmp, _profile(tmp, max_steps=4), nbs, log).run()
    assert _ran(tmp)[n0:] == ["finetune", "compress", "evaluate", "report"]


def test_changed_notebook_reruns_it(cached_run) -> None:
    tmp, nbs = cached_run
    nb = nbformat.read(nbs["evaluate"], as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    nbformat.write(nb, nbs["evaluate"])
    n0 = len(_ran(tmp))
    _runner(tmp, _profile(tmp, max_steps=4), nbs, []).run()
    assert _ran(tmp)[n0:] == ["evaluate", "report"]


def test_only_and_force(cached_run) -> None:
    tmp, nbs = cached_run
    n0 = len(_ran(tmp))
    r = _runner(tmp, _profile(tmp, max_steps=4), nbs, [])
    r.run(only=["data"])
    assert _ran(tmp)[n0:] == []  # cached
    r.run(only=["data"], force=True)
    assert _ran(tmp)[n0:] == ["data"]


def test_only_refuses_when_upstream_is_stale(tmp_path: Path) -> None:
    nbs = _stage_notebooks(tmp_path)
    r = _runner(tmp_path, _profile(tmp_path), nbs, [])
    with pytest.raises(StageFailed, match="stage 'model' is out of date or never ran"):
        r.run(only=["data"])


def test_failing_cell_names_notebook_cell_and_output(tmp_path: Path) -> None:
    nbs = _stage_notebooks(tmp_path)
    nbs["data"] = FIX / "broken.ipynb"
    log: list[str] = []
    r = _runner(tmp_path, _profile(tmp_path), nbs, log)
    with pytest.raises(StageFailed) as ei:
        r.run()
    msg = str(ei.value)
    out_nb = tmp_path / "runs" / "t" / "notebooks" / "broken.ipynb"
    assert (
        "broken.ipynb" in msg
        and "cell 4 " in msg
        and "planted failure" in msg
        and str(out_nb) in msg
    )
    assert 'raise ValueError("planted failure' in msg
    assert out_nb.is_file()
    assert _ran(tmp_path) == ["model"], "stages after the failure must not run"
    manifest = json.loads((tmp_path / "runs" / "t" / "manifest.json").read_text())
    assert manifest["stages"]["data"]["status"] == "failed"
    assert manifest["stages"]["model"]["status"] == "ok", "earlier results are kept"


def test_cli_failure_exit_code_and_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nmodel: {tiny: {stepz: 1}}\n")
    r = subprocess.run(
        [sys.executable, "-m", "codebench.cli", "reproduce", str(bad), "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2, "bad input"
    assert "model.tiny.stepz: unknown key" in r.stderr and str(bad) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "t").exists(), "nothing runs before the profile validates"


def test_cli_list(tmp_path: Path) -> None:
    p = _profile(tmp_path)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "codebench.cli",
            "reproduce",
            str(p),
            "--list",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("would run") == len(NOTEBOOKS)
