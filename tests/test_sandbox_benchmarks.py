"""Reference solutions through the sandbox: HumanEval canonical 164/164 and `return None`
0/164; MBPP reference code on the test split (task ids 11-510)."""

from __future__ import annotations

import pytest

from codebench.sandbox import Outcome, Sandbox, humaneval_job, mbpp_job
from codebench.sandbox.problems import load_humaneval, load_mbpp, mbpp_function_name

# MBPP reference solutions that need more than the default 3 s budget on a slow machine:
# task 123's amicable_numbers_sum(9999) takes ~1.8 s of CPU on its own.
SLOW_MBPP = {123}


@pytest.fixture(scope="module")
def sb():
    with Sandbox(workers=None, timeout=3.0) as box:
        yield box


def test_humaneval_canonical_all_pass_and_return_none_all_fail(sb):
    problems = list(load_humaneval().values())
    assert len(problems) == 164
    good = sb.map([humaneval_job(p, p["canonical_solution"]) for p in problems])
    bad = sb.map([humaneval_job(p, "    return None\n") for p in problems])
    failing = {
        p["task_id"]: (r.outcome, r.detail)
        for p, r in zip(problems, good, strict=True)
        if not r.passed
    }
    assert failing == {}, "\n".join(f"{k}: {v[0]} {v[1]}" for k, v in failing.items())
    assert sum(r.passed for r in bad) == 0
    assert all(r.outcome in (Outcome.FAILED, Outcome.TIMEOUT) for r in bad)


def test_mbpp_reference_code_passes_on_the_test_split(sb):
    from codebench.paths import DataDirError, data_dir

    try:
        problems = load_mbpp(data_dir(), split="test")
    except DataDirError:
        pytest.skip("benchmark data folder not found")
    assert len(problems) == 500
    jobs = [
        mbpp_job(p, p["code"], timeout=10.0 if tid in SLOW_MBPP else None)
        for tid, p in problems.items()
    ]
    results = sb.map(jobs)
    failing = {
        tid: (r.outcome.value, r.detail)
        for tid, r in zip(problems, results, strict=True)
        if not r.passed
    }
    assert failing == {}, failing


def test_mbpp_function_names():
    assert (
        mbpp_function_name({"test_list": ['assert remove_Occ("hello","l") == "heo"']})
        == "remove_Occ"
    )
    assert (
        mbpp_function_name(
            {
                "test_list": ["assert set(similar_elements((3, 4), (5, 4))) == set((4,))"],
                "code": "def similar_elements(a, b):\n    pass\n",
            }
        )
        == "similar_elements"
    )
    assert mbpp_function_name({"test_list": ["assert (max_height(root)) == 3"]}) == "max_height"
    assert (
        mbpp_function_name(
            {
                "test_list": ["assert math.isclose(area(2), 12.56, rel_tol=0.001)"],
                "code": "import math\ndef area(r):\n    return 3.14 * r * r\n",
            }
        )
        == "area"
    )
