"""Fault injection on the runner: kill -9 at points of a small pipeline, concurrent runs, a
read-only run folder. The stage notebooks are tiny (tests/runs_fixtures.py), not the real
training, so each run takes seconds."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from runs_fixtures import pid_alive, profile, reproduce_args, run_cli, work_notebooks

from codebench.records import read_jsonl

STAGES = ("model", "data")
N = 30


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, bytes]:
    """The records of an uninterrupted run."""
    tmp = tmp_path_factory.mktemp("ref")
    nbs = work_notebooks(tmp / "nbs", n=N)
    r = run_cli(reproduce_args(profile(tmp), tmp, nbs))
    assert r.returncode == 0, r.stderr
    return {s: (tmp / "runs" / "t" / f"{s}.jsonl").read_bytes() for s in STAGES}


def _records_written(run: Path) -> int:
    return sum(
        (run / f"{s}.jsonl").read_bytes().count(b"\n")
        for s in STAGES
        if (run / f"{s}.jsonl").exists()
    )


def _kill_at(args: list[str], run: Path, records: int, deadline: float = 120) -> None:
    """Start a run, kill -9 the runner (only it: its kernel must notice and exit) once
    `records` records are on disk."""
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + deadline
    while _records_written(run) < records and p.poll() is None and time.monotonic() < end:
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


def _assert_clean_and_equal(tmp: Path, reference: dict[str, bytes]) -> None:
    run = tmp / "runs" / "t"
    for s in STAGES:
        data = (run / f"{s}.jsonl").read_bytes()
        assert data.endswith(b"\n"), "no torn line"
        ids = [r["i"] for r in read_jsonl(run / f"{s}.jsonl")]
        assert len(ids) == len(set(ids)) == N, "no duplicates, nothing lost"
        assert data == reference[s], "the same records as an uninterrupted run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["state"] == "finished"
    assert {s: manifest["stages"][s]["status"] for s in STAGES} == dict.fromkeys(STAGES, "ok")
    assert list((run / ".kernels").iterdir()) == [], "no kernel connection files left"
    assert not [p for p in run.rglob("*.tmp")], "no temporary files left"
    deadline = time.monotonic() + 15
    kernels = [ln.split(" ", 1) for ln in (run / "kernel_pids.log").read_text().splitlines()]
    pids = [int(pid) for pid, _ in kernels]
    for _, conn in kernels:  # connection files live in the run folder, not /tmp or ~
        assert Path(conn).parent == run / ".kernels", conn
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if pid_alive(p)], "no kernel outlives its run"


@pytest.mark.slow
def test_kill_9_mid_stage_then_resume(tmp_path: Path, reference) -> None:
    nbs = work_notebooks(tmp_path / "nbs", n=N)
    prof = profile(tmp_path)
    run = tmp_path / "runs" / "t"
    _kill_at(reproduce_args(prof, tmp_path, nbs), run, records=N // 2)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["model"]["status"] == "running"  # as the dead process left it
    listing = run_cli(reproduce_args(prof, tmp_path, nbs, "--list"))
    assert "interrupted" in listing.stdout, listing.stdout
    assert "running" not in listing.stdout
    r = run_cli(reproduce_args(prof, tmp_path, nbs))
    assert r.returncode == 0, r.stderr
    _assert_clean_and_equal(tmp_path, reference)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_kill_9_at_random_points_repeatedly(tmp_path: Path, reference, seed: int) -> None:
    rng = random.Random(seed)
    nbs = work_notebooks(tmp_path / "nbs", n=N)
    prof = profile(tmp_path)
    run = tmp_path / "runs" / "t"
    args = reproduce_args(prof, tmp_path, nbs)
    for _ in range(3):
        done = _records_written(run)
        if done >= 2 * N:
            break
        _kill_at(args, run, records=rng.randint(done, 2 * N))
    r = run_cli(args)
    assert r.returncode == 0, r.stderr
    _assert_clean_and_equal(tmp_path, reference)


def test_concurrent_runs_one_refuses_naming_the_owner(tmp_path: Path) -> None:
    nbs = work_notebooks(tmp_path / "nbs", n=N)
    prof = profile(tmp_path, stages=("model",))
    args = reproduce_args(prof, tmp_path, nbs)
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "runs" / "t" / ".lock"
    end = time.monotonic() + 60
    while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < end:
        time.sleep(0.02)
    second = run_cli(args)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 3, second.stderr
    line = second.stderr.strip()
    assert len(line.splitlines()) == 1
    assert f"codebench pid {first.pid} on {os.uname().nodename}" in line
    ids = [r["i"] for r in read_jsonl(tmp_path / "runs" / "t" / "model.jsonl")]
    assert ids == list(range(N)), "each record once"


@pytest.mark.slow
def test_concurrent_run_with_wait_runs_after_the_owner(tmp_path: Path, reference) -> None:
    nbs = work_notebooks(tmp_path / "nbs", n=N)
    prof = profile(tmp_path)
    args = reproduce_args(prof, tmp_path, nbs)
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "runs" / "t" / ".lock"
    end = time.monotonic() + 60
    while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < end:
        time.sleep(0.02)
    second = run_cli([*args[:-1], "--wait", "300"])  # args end with --quiet
    assert first.wait(timeout=300) == 0
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("up to date") == len(STAGES), "the waiter found the work done"
    _assert_clean_and_equal(tmp_path, reference)


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return r.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare -rm for a read-only bind mount")
def test_read_only_run_folder_is_one_error_line(tmp_path: Path) -> None:
    nbs = work_notebooks(tmp_path / "nbs", n=2)
    prof = profile(tmp_path)
    runs = tmp_path / "runs"
    runs.mkdir()
    args = " ".join(f"'{a}'" for a in reproduce_args(prof, tmp_path, nbs))
    script = f"mount --bind '{runs}' '{runs}' && mount -o remount,bind,ro '{runs}' && {args}"
    r = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120
    )
    # the preflight sees it before any work (2, bad input); past it, a write fails (4)
    assert r.returncode in (2, 4), (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Read-only file system" in lines[0] and str(runs) in lines[0]


@pytest.mark.slow
def test_ctrl_c_is_one_line_exit_130_and_resumes(tmp_path: Path, reference) -> None:
    nbs = work_notebooks(tmp_path / "nbs", n=N)
    prof = profile(tmp_path)
    run = tmp_path / "runs" / "t"
    args = reproduce_args(prof, tmp_path, nbs)
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 120
    while _records_written(run) < 5 and time.monotonic() < end:
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130
    assert err.strip().splitlines() == [
        "codebench: error: interrupted; run the same command again to resume"
    ], "the kernel's own noise goes to its log, not the console"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["state"] == "interrupted"
    assert manifest["stages"]["model"]["status"] == "interrupted"
    assert run_cli(args).returncode == 0
    _assert_clean_and_equal(tmp_path, reference)
