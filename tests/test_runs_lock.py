"""One writer per run folder: the lock names its owner, is taken over when the owner dies, and
the manifest shows a dead run as interrupted."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from runs_fixtures import profile, work_notebooks

from codebench.pipeline import Runner
from codebench.runs import RunLock, RunLocked, lock_is_held, read_owner

HOLD = """
import sys, time
from pathlib import Path
from codebench.runs import RunLock
lock = RunLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _holder(lock: Path, seconds: float = 60) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout.readline().strip() == "held"
    return p


def test_lock_refuses_naming_owner_and_is_taken_over_when_it_dies(tmp_path: Path) -> None:
    lock = tmp_path / "run" / ".lock"
    p = _holder(lock)
    assert lock_is_held(lock)
    assert read_owner(lock)["pid"] == p.pid
    with pytest.raises(RunLocked) as ei:
        RunLock(lock).acquire()
    msg = str(ei.value)
    assert f"codebench pid {p.pid} on {socket.gethostname()}" in msg and "\n" not in msg
    assert str(lock.parent) in msg
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not lock_is_held(lock), "a dead owner holds nothing"
    with RunLock(lock) as mine:
        assert mine.held and read_owner(lock)["pid"] == os.getpid()
    assert not lock_is_held(lock)


def test_wait_takes_the_lock_once_the_owner_finishes(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    p = _holder(lock, seconds=1.0)
    mine = RunLock(lock).acquire(wait=60, poll=0.05)
    assert p.wait() == 0 and mine.held
    mine.release()


def test_runner_refuses_while_another_run_writes_the_folder(tmp_path: Path) -> None:
    nbs = work_notebooks(tmp_path / "nbs", n=1, pause=0)
    r = Runner(
        profile(tmp_path),
        runs_root=tmp_path / "runs",
        figures_root=tmp_path / "figs",
        notebooks_dir=nbs,
        log=lambda _: None,
    )
    p = _holder(r.layout.lock)
    try:
        with pytest.raises(RunLocked, match=f"pid {p.pid}"):
            r.run()
        assert not (r.layout.root / "model.jsonl").exists(), "nothing ran"
    finally:
        p.kill()
        p.wait()


def test_dead_run_reads_interrupted_and_a_live_one_running(tmp_path: Path) -> None:
    nbs = work_notebooks(tmp_path / "nbs", n=1, pause=0)
    r = Runner(
        profile(tmp_path),
        runs_root=tmp_path / "runs",
        figures_root=tmp_path / "figs",
        notebooks_dir=nbs,
        log=lambda _: None,
    )
    r.layout.root.mkdir(parents=True)
    owner = {"pid": 999999, "host": "h", "started": "2026-01-01T00:00:00"}
    r.layout.manifest.write_text(
        json.dumps(
            {
                "state": "running",
                "owner": owner,
                "stages": {"model": {"status": "running", "key": "k"}},
            }
        )
    )
    m = r.load_manifest()
    assert m["state"] == "interrupted" and m["stages"]["model"]["status"] == "interrupted"
    p = _holder(r.layout.lock)
    try:
        assert r.load_manifest()["stages"]["model"]["status"] == "running"
    finally:
        p.kill()
        p.wait()


def test_a_finished_run_records_owner_and_state(tmp_path: Path) -> None:
    nbs = work_notebooks(tmp_path / "nbs", n=1, pause=0)
    r = Runner(
        profile(tmp_path, stages=("model",)),
        runs_root=tmp_path / "runs",
        figures_root=tmp_path / "figs",
        notebooks_dir=nbs,
        log=lambda _: None,
    )
    stale = r.layout.kernels / "kernel-dead.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")  # left by a killed run
    m = r.run()
    assert m["state"] == "finished"
    assert m["owner"]["pid"] == os.getpid() and m["owner"]["host"] == socket.gethostname()
    assert not stale.exists() and list(r.layout.kernels.iterdir()) == []
    assert not lock_is_held(r.layout.lock)
