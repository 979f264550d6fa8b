"""codebench.rewards: task rows, program extraction, counting tests, the audit log, trl's interface."""

from __future__ import annotations

import pytest

from codebench.rewards import (
    MALFORMED,
    RewardError,
    SandboxReward,
    build_program,
    counting_tests,
    safe_text,
    tally_of,
    task_from_row,
    text_sha256,
    validate_tasks,
)
from codebench.sandbox import Sandbox

ADD = {
    "task_id": "t/add",
    "prompt": "def add(a, b):\n",
    "tests": "assert add(1, 2) == 3\nassert add(2, 2) == 4\n",
    "entry_point": "add",
}


@pytest.fixture(scope="module")
def sb():
    with Sandbox(workers=2, timeout=1.0, memory_mb=512, retry_timeouts=False) as sandbox:
        yield sandbox


# ------------------------------------------------------------------ rows
def test_rows_normalise_humaneval_mbpp_and_asserts():
    he = task_from_row(
        {
            "task_id": "h",
            "prompt": "def f(x):\n",
            "test": "def check(c):\n    assert c(1)\n",
            "entry_point": "f",
        }
    )
    assert he.check_style and he.code_prompt
    mbpp = task_from_row(
        {
            "task_id": 7,
            "text": "Sum.",
            "test_list": ["assert sum_of(1, 2) == 3", "assert sum_of(0, 0) == 0"],
        }
    )
    assert mbpp.entry_point == "sum_of" and not mbpp.code_prompt and mbpp.task_id == "7"
    assert mbpp.tests == "assert sum_of(1, 2) == 3\nassert sum_of(0, 0) == 0\n"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "x"}, "missing 'tests'"),
        ({"tests": "assert f(1) ==\n", "entry_point": "f"}, "tests do not parse"),
        ({"tests": "x = 1\n", "entry_point": "f"}, "no assert"),
        ({"tests": "assert 1 == 1\n"}, "missing 'entry_point'"),
        ({"tests": "assert f(1)\n", "prompt": 3}, "'prompt' must be a string"),
        ({"tests": ["assert f(1)", 2]}, "must hold strings"),
    ],
)
def test_bad_rows_name_row_and_field(row, message):
    with pytest.raises(RewardError, match=message) as e:
        validate_tasks([ADD, {"task_id": "bad", **row}])
    assert "task 1 (bad)" in str(e.value)


def test_no_tasks_is_an_error():
    with pytest.raises(RewardError, match="no training tasks"):
        validate_tasks([])


# ------------------------------------------------------------------ programs
def test_programs_from_base_fenced_and_mbpp_completions():
    t = task_from_row({**ADD, "prompt": "import math\n\ndef add(a, b):\n"})
    # base continuation: cut at the stop strings, appended to the prompt
    assert build_program(t, "    return a + b\n\ndef junk():\n    pass\n") == (
        "import math\n\ndef add(a, b):\n    return a + b\n"
    )
    # fenced whole function: the prompt's header (imports) + the block
    fenced = "Here:\n```python\ndef add(a, b):\n    return b + a\n```\nDone."
    assert build_program(t, fenced) == "import math\n\ndef add(a, b):\n    return b + a\n"
    m = task_from_row({"text": "Add.", "tests": "assert add(1, 2) == 3\n"})
    assert build_program(m, "def add(a, b):\n    return a + b\n[DONE]\nmore") == (
        "def add(a, b):\n    return a + b\n"
    )


def test_chat_completions_are_read(sb):
    with SandboxReward(sandbox=sb) as r:
        got = r(
            prompts=[[{"role": "user", "content": "add"}]] * 2,
            completions=[
                [
                    {
                        "role": "assistant",
                        "content": "```python\ndef add(a, b):\n    return a + b\n```",
                    }
                ],
                [{"role": "assistant", "content": "no code here"}],
            ],
            task_prompt=["Write add(a, b)."] * 2,
            tests=[ADD["tests"]] * 2,
            entry_point=["add"] * 2,
        )
    assert got[0] == 1.0 and got[1] < 1.0


# ------------------------------------------------------------------ counting
def test_counting_tests_count_loops_and_keep_a_static_floor(sb):
    tests = (
        "def check(candidate):\n"
        "    for x in range(3):\n"
        "        assert candidate(x) == x * 2\n"
        "    assert candidate(10) == 20\n"
    )
    row = {"prompt": "def dbl(x):\n", "test": tests, "entry_point": "dbl"}
    comps = ["    return x * 2\n", "    return x * 2 if x < 2 else 0\n", "    return 0\n"]
    with SandboxReward(mode="fraction", sandbox=sb) as r:
        got = r.score([row] * 3, comps)
    assert [s.reward for s in got] == [1.0, 0.5, 0.25]  # 4 executed asserts; 2 and 1 pass
    assert (got[1].passed_tests, got[1].total_tests) == (2, 4)
    src, static = counting_tests(tests + "\ncheck(dbl)\n", "n0")
    assert static == 2 and "assert candidate" not in src


def test_exception_in_tests_gives_no_pass_but_keeps_counted_credit(sb):
    tests = "assert f(1) == 1\nx = f(2)\nassert x == 2\nassert f(3) == 3\n"
    comps = [
        "def f(n):\n    if n == 2:\n        raise ValueError('two')\n    return n\n",
        "def f(n):\n    return n\n",
    ]
    with SandboxReward(mode="fraction", sandbox=sb) as r:
        got = r.score([{"text": "f", "tests": tests, "entry_point": "f"}] * 2, comps)
    # the exception outside an assert ends the tests: 1 of 3 asserts counted as passed
    assert got[0].reward == pytest.approx(1 / 3) and got[0].outcome == "failed"
    assert got[1].reward == 1.0


def test_tally_needs_the_secret_nonce():
    assert tally_of("AssertionError: codebench-tally abc 3/4", "abc") == (3, 4)
    assert tally_of("AssertionError: codebench-tally abd 4/4", "abc") is None


def test_penalties_and_overrides(sb):
    comps = ["    return a + b\n", "    return a - b\n", "    return (", "    while True: pass\n"]
    with SandboxReward(
        mode="binary", sandbox=sb, rewards={"malformed": -1.0, "timeout": -2.0}
    ) as r:
        got = r([ADD["prompt"]] * 4, comps, tests=[ADD["tests"]] * 4, entry_point=["add"] * 4)
    assert got == [1.0, 0.0, -1.0, -2.0]
    with SandboxReward(sandbox=sb) as r:
        assert r.score([ADD], ["    return ("])[0].reward == MALFORMED
    with pytest.raises(RewardError, match="unknown reward keys"):
        SandboxReward(rewards={"bonus": 1.0})
    with pytest.raises(RewardError, match="mode"):
        SandboxReward(mode="partial")


def test_tasks_can_be_looked_up_by_id(sb):
    with SandboxReward(sandbox=sb, tasks=[ADD]) as r:
        assert r(["p"], ["    return a + b\n"], task_id=["t/add"]) == [1.0]
        with pytest.raises(RewardError, match="unknown task ids"):
            r(["p"], ["x"], task_id=["nope"])
    with SandboxReward(sandbox=sb) as r, pytest.raises(RewardError, match="test columns"):
        r(["p"], ["x"])


# ------------------------------------------------------------------ the log
def test_odd_strings_are_logged_without_aborting(sb, tmp_path):
    from codebench.rewards import read_reward_log

    class State:
        global_step = 7

    odd = [
        "    return a + b  # \ud800\udfff\n",
        "    return '\x00' * 3\n",
        "\ud83d" * 5,
        "é" * 50_000,
    ]
    path = tmp_path / "log.jsonl"
    with SandboxReward(sandbox=sb, log_path=path) as r:
        got = r(
            [ADD["prompt"]] * 4,
            odd,
            tests=[ADD["tests"]] * 4,
            entry_point=["add"] * 4,
            task_id=["t/add"] * 4,
            trainer_state=State(),
        )
    # CPython cannot compile lone surrogates or NULs: malformed, but scored and logged
    assert got == [MALFORMED] * 3 + [MALFORMED]
    recs = read_reward_log(path)
    assert [r["step"] for r in recs] == [7] * 4
    assert recs[0]["escaped"] and "\\ud800" in recs[0]["completion"]
    assert recs[0]["sha256"] == text_sha256(odd[0])
    assert recs[1]["completion"] == odd[1] and not recs[1]["escaped"]
    assert len(recs[3]["completion"]) == 50_000
    # a second reward function on the same log (a resumed run) appends after the first call
    with SandboxReward(sandbox=sb, log_path=path) as r:
        r([ADD["prompt"]], odd[:1], tests=[ADD["tests"]], entry_point=["add"])
    recs = read_reward_log(path)
    assert len(recs) == 5 and recs[-1]["call"] == 1


def test_safe_text():
    assert safe_text("plain") == ("plain", False)
    assert safe_text("a\ud800b") == ("a\\ud800b", True)


def test_trl_sees_a_named_callable():
    from trl.trainer.utils import get_callable_name

    r = SandboxReward(mode="binary")
    assert get_callable_name(r) == "sandbox_binary"
    r.close()


def test_entry_point_from_the_prompt_when_the_row_has_none():
    from codebench.rewards import task_from_row

    helper = 'def double(x):\n    return 2 * x\n\n\ndef solve(x):\n    """Return x + 1."""\n'
    t = task_from_row({"prompt": helper, "tests": "assert double(solve(3)) == 8\n"})
    assert t.entry_point == "solve"  # the last def the tests name, not the first call
    t = task_from_row(
        {"prompt": "def is_even(n):\n", "tests": "assert all(map(is_even, [2, 4]))\n"}
    )
    assert t.entry_point == "is_even"  # named without a call
    t = task_from_row({"prompt": "Write add.", "tests": "assert add(1, 2) == 3\n"})
    assert t.entry_point == "add"
