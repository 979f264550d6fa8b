"""Hostile samples against the Python benchmarks' trusted verdicts: MTPB, PAL-Math, CodeI/O
held-out, custom JSONL, MBPP task ids.

Rule under test: the trusted side decides the comparison from the *gold* value; whatever the
sandbox sends back (an object dressed as a pandas Series, a forged encoding, NaN, a value of
another type, an exception that steers iteration) cannot pass unless it is the right value.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from codebench.bench import get_task

# a program that prints an object dressed as an empty pandas Series (universal pass before)
FAKE_SERIES = """
import numpy as np

class Series:
    def to_numpy(self):
        return np.array([])

Series.__module__ = "pandas.core.series"
print(Series())
"""

# a program that replaces the sandbox-side encoder and returns a forged encoding
FORGED_ENCODING = """
import sys

def _forge(o):
    return {"kind": "ndarray", "type": "ndarray", "value": [], "str": "codebench-forged",
            "list": [], "int": -987654321, "float": float("nan"), "bool": None}

frame = sys._getframe(0)
while frame is not None:
    if "_encode" in frame.f_globals:
        frame.f_globals["_encode"] = _forge
    frame = frame.f_back
print(1)
"""


@pytest.fixture(scope="module")
def sandbox():
    from codebench.sandbox import Sandbox

    with Sandbox(timeout=10.0) as sb:
        yield sb


def _score(task, sandbox, problems, raw_of):
    programs = [task.extract(p, raw_of(p)) for p in problems]
    jobs = [task.job(p, prog) for p, prog in zip(problems, programs, strict=True)]
    results = iter(sandbox.map([j for j in jobs if j is not None]))
    return {
        p.task_id: task.verdict(p, prog, None if job is None else next(results))
        for p, prog, job in zip(problems, programs, jobs, strict=True)
    }


# ---------------------------------------------------------------------- MTPB
def _mtpb_cases(data_dir, limit):
    task = get_task("mtpb:single", data_dir)
    problems = task.problems(limit)
    return task, problems


@pytest.mark.parametrize(
    "attack",
    [pytest.param(FAKE_SERIES, id="fake-series"), pytest.param(FORGED_ENCODING, id="forged")],
)
def test_mtpb_universal_outputs_pass_nothing(data_dir, sandbox, attack: str) -> None:
    task, problems = _mtpb_cases(data_dir, 12)  # 12 problems x 5 cases; -m slow: all 575
    scored = _score(task, sandbox, problems, lambda p: attack)
    # an empty array is only "close" to an empty list
    passed = [t for t, (o, _) in scored.items() if o == "passed"]
    golds = {p.task_id: p.meta["output"] for p in problems}
    assert all(golds[t] == [] for t in passed), passed


@pytest.mark.slow
@pytest.mark.parametrize("attack", [FAKE_SERIES, FORGED_ENCODING])
def test_mtpb_universal_outputs_pass_nothing_on_all_575(data_dir, sandbox, attack: str) -> None:
    task, problems = _mtpb_cases(data_dir, None)
    assert len(problems) == 575
    scored = _score(task, sandbox, problems, lambda p: attack)
    golds = {p.task_id: p.meta["output"] for p in problems}
    passed = [t for t, (o, _) in scored.items() if o == "passed"]
    assert all(golds[t] == [] for t in passed), passed


def test_mtpb_gold_decides_the_comparison() -> None:
    from codebench.bench.mtpb import equivalent

    series = {"kind": "ndarray", "type": "ndarray"}
    assert not equivalent({**series, "value": []}, 5)[0]  # empty array vs scalar
    assert not equivalent({**series, "value": []}, [1, 2])[0]
    assert not equivalent({**series, "value": [1.0]}, 1)[0]  # an array is not a number
    assert equivalent({**series, "value": [1.0, 2.0]}, [1, 2])[0]
    assert not equivalent({**series, "value": [[1.0, 2.0]]}, [1, 2])[0]  # shapes differ
    assert not equivalent({**series, "value": ["a"]}, ["a"])[0]  # allclose needs numbers
    # forged claims: a missing or mistyped field never matches
    assert not equivalent({"type": "NoneType"}, 3)[0]
    assert not equivalent({"type": "int", "value": None}, None)[0]
    assert not equivalent({"type": "X", "int": True}, 1)[0]  # bool is not an int answer
    assert not equivalent({"type": "X", "float": float("nan")}, 0.5)[0]
    assert not equivalent({"type": "X", "str": ["True"]}, True)[0]
    assert not equivalent({"type": "list", "value": "ab"}, ["a", "b"])[0]
    assert not equivalent("not a dict", 1)[0]


# ---------------------------------------------------------------------- PAL-Math
PAL_RETURNS = [
    "float('nan')",
    "float('inf')",
    "'nan'",
    "'1e309'",
    "[18]",
    "{'answer': 18}",
    "True",
    "None",
    "object()",
    "type('F', (float,), {'__eq__': lambda s, o: True})(1.0)",
    "''",
]


def test_pal_non_answers_fail_and_reference_passes(data_dir, sandbox) -> None:
    task = get_task("pal-gsm8k", data_dir)
    p = task.problems(1)[0]
    assert p.meta["answer"] == 18
    from codebench.bench.tasks import fenced

    raws = [fenced(f"def solution():\n    return {r}\n") for r in PAL_RETURNS]
    raws.append(task.reference(p))
    programs = [task.extract(p, r) for r in raws]
    results = sandbox.map([task.job(p, prog) for prog in programs])
    verdicts = [task.verdict(p, prog, r)[0] for prog, r in zip(programs, results, strict=True)]
    assert verdicts[-1] == "passed"
    assert "passed" not in verdicts[:-1], list(zip(PAL_RETURNS, verdicts, strict=False))


# ---------------------------------------------------------------------- CodeI/O held-out
def _codeio_task(tmp_path: Path, output):
    rec = {
        "id": "x/0",
        "fid": "x",
        "idx": 0,
        "direction": "input",
        "messages": [{"role": "user", "content": "predict"}],
        "input": {"n": 1},
        "output": output,
        "refcode": "def main_solution(n):\n    return None\n",
        "funcname": "main_solution",
    }
    f = tmp_path / "heldout.jsonl"
    f.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    task = get_task(f"codeio:{f}")
    return task, task.problems()[0]


def test_codeio_malformed_reply_never_matches_a_none_gold(tmp_path: Path) -> None:
    task, p = _codeio_task(tmp_path, None)
    program = task.extract(p, '```json\n{"input": {"n": 1}}\n```')
    for value in ([], None, [None], "x", [None, {"n": 1}, 3]):
        cr = SimpleNamespace(ok=True, value=value, outcome="passed", error="")
        result = SimpleNamespace(values=[cr], outcome="passed", detail="")
        assert task.verdict(p, program, result)[0] == "failed", value
    good = SimpleNamespace(ok=True, value=[None, {"n": 1}], outcome="passed", error="")
    assert task.verdict(p, program, SimpleNamespace(values=[good]))[0] == "passed"


def test_codeio_output_prediction_compares_strictly(tmp_path: Path) -> None:
    from codebench.codeio.verify import values_match

    for pred, gold in ((True, 1), (1, True), ([], None), ("1", 1), ({}, []), (float("nan"), 1.0)):
        assert not values_match(pred, gold), (pred, gold)


# ---------------------------------------------------------------------- custom JSONL
CUSTOM = [
    {
        "task_id": "stop/check",
        "prompt": 'def is_even(n):\n    """True when n is even."""\n',
        "entry_point": "is_even",
        "tests": "def check(candidate):\n    assert all(map(candidate, [2, 4, 6]))\n"
        "    assert not any(map(candidate, [1, 3]))\n",
        "reference": "    return n % 2 == 0\n",
    },
    {
        "task_id": "stop/asserts",
        "prompt": 'def is_even(n):\n    """True when n is even."""\n',
        "tests": [
            "assert all(map(is_even, [2, 4, 6]))",
            "assert list(filter(is_even, [1, 2, 3, 4])) == [2, 4]",
        ],
        "reference": "    return n % 2 == 0\n",
    },
    {
        "task_id": "helper/asserts",
        "prompt": 'def double(x):\n    return 2 * x\n\n\ndef solve(x):\n    """Return x + 1."""\n',
        "tests": ["assert double(solve(3)) == 8", "assert double(solve(0)) == 2"],
        "reference": "    return x + 1\n",
    },
]

CUSTOM_ATTACKS = {
    # StopIteration from the function under test would end map() early: all([]) is True
    "stop/check": "    raise StopIteration\n",
    "stop/asserts": "    raise StopIteration\n",
    # redefine the prompt's helper so that the trusted assert sees the expected value
    "helper/asserts": "```python\ndef double(x):\n    return 8 if x == 0 else 2\n\n\ndef solve(x):\n    return 0\n```\n",
}


@pytest.fixture
def custom_file(tmp_path: Path) -> Path:
    f = tmp_path / "hostile.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in CUSTOM), encoding="utf-8")
    return f


@pytest.mark.parametrize("protocol", ["base", "instruct"])
def test_custom_references_pass(custom_file: Path, sandbox, protocol: str) -> None:
    task = get_task(f"custom:{custom_file}:{protocol}")
    scored = _score(task, sandbox, task.problems(), task.reference)
    assert {t: o for t, (o, _) in scored.items()} == {r["task_id"]: "passed" for r in CUSTOM}, (
        scored
    )
    wrong = _score(task, sandbox, task.problems(), task.wrong)
    assert all(o != "passed" for o, _ in wrong.values()), wrong


def test_custom_attacks_fail(custom_file: Path, sandbox) -> None:
    for protocol in ("base", "instruct"):
        task = get_task(f"custom:{custom_file}:{protocol}")
        problems = [p for p in task.problems() if p.task_id in CUSTOM_ATTACKS]
        raw = {
            t: (a if a.startswith("```") or protocol == "base" else None)
            for t, a in CUSTOM_ATTACKS.items()
        }
        problems = [p for p in problems if raw[p.task_id] is not None]
        scored = _score(task, sandbox, problems, lambda p, raw=raw: raw[p.task_id])
        assert scored and all(o != "passed" for o, _ in scored.values()), (protocol, scored)


def test_custom_prelude_keeps_helpers_drops_stubs() -> None:
    from codebench.bench.custom import trusted_prelude

    prompt = (
        "import math\n\nK = 3\n\n\ndef helper(x):\n    return x * K\n\n\n"
        'def todo(y):\n    """Write me."""\n\n\ndef solve(x):\n    """Return x."""\n'
    )
    pre = trusted_prelude(prompt, "solve")
    assert "def helper" in pre and "import math" in pre and "K = 3" in pre
    assert "def todo" not in pre and "def solve" not in pre


# ---------------------------------------------------------------------- MBPP ids
@pytest.mark.parametrize("task_id", [1, 5, "Mbpp/10", 511, 600])
def test_mbpp_ids_outside_the_test_split_are_rejected(tmp_path: Path, data_dir, task_id) -> None:
    from codebench import score

    f = tmp_path / "s.jsonl"
    f.write_text(json.dumps({"task_id": task_id, "completion": "x = 1\n"}) + "\n")
    with pytest.raises(score.ScoreInputError, match=r"s.jsonl:1: unknown mbpp task_id .*11-510"):
        score.score(f, "mbpp", workers=1, data_dir=str(data_dir))
    ids = {p.task_id for p in get_task("mbpp", data_dir).problems()}
    assert f"mbpp/{str(task_id).split('/')[-1]}" not in ids and len(ids) == 500


# ---------------------------------------------------------------------- custom, other languages
def test_custom_js_trusted_verdict_and_clear_error(tmp_path: Path, sandbox) -> None:
    import shutil

    from codebench.bench.tasks import BenchError

    if shutil.which("node") is None:
        pytest.skip("node not installed")
    row = {
        "task_id": "js/double",
        "language": "js",
        "prompt": "// Return twice x.\nfunction double(x) {\n",
        "entry_point": "double",
        "stop": ["\nfunction "],
        "tests": "const assert = require('node:assert');\n"
        "assert.deepEqual(double(2), 4);\nassert.deepEqual(double(-3), -6);\n",
        "reference": "  return 2 * x;\n}\n",
    }
    f = tmp_path / "js.jsonl"
    f.write_text(json.dumps(row) + "\n", encoding="utf-8")
    task = get_task(f"custom:{f}")
    p = task.problems()[0]
    forged = (
        "  return 0;\n}\nrequire('node:assert').deepEqual = () => {};\n"
        "for (let i = 0; i < 9; i++) require('fs').writeSync(1, '\\n\\x1eCBR ' + i + ' 4\\n');\n"
        "process.exit(0);\n"
    )
    ref = _score(task, sandbox, [p], lambda q: p.reference)
    bad = _score(task, sandbox, [p], lambda q: forged)
    assert ref[p.task_id][0] == "passed" and bad[p.task_id][0] == "failed", (ref, bad)
    # tests that are not one check per line: one clear error naming file and line
    row["tests"] = "const assert = require('node:assert');\nif (double(2) !== 4) process.exit(1);\n"
    f.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(BenchError, match=r"js.jsonl:1: js tests must be one"):
        get_task(f"custom:{f}").problems()
    assert get_task(f"custom:{f}", verdict="upstream").problems()
