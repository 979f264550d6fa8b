"""Reward-hacking guard: completions that try to forge a pass get the failure reward.

Every attack runs as a completion through `SandboxReward` in both modes (fraction, binary),
in ONE batch next to honest completions; each must score at most the failure reward (0.0),
and in fraction mode it must also receive no partial credit. The test set is chosen so that a
constant answer passes none of the asserts (a forged pass is the only way to score). Honest
references (HumanEval canonical solutions, MBPP reference code) score the top reward.
"""

from __future__ import annotations

import pytest

from codebench.rewards import FAIL, PASS, SandboxReward
from codebench.sandbox import Sandbox

TESTS = (
    "assert add(1, 2) == 3\nassert add(2, 2) == 4\nassert add(10, 5) == 15\n"
    "assert add(-3, 1) == -2\n"
)
CHECK_TESTS = (
    "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(2, 2) == 4\n"
    "    assert candidate(10, 5) == 15\n    assert candidate(-3, 1) == -2\n"
)
STATEMENT = "Write a function add(a, b) that returns the sum of a and b."
HONEST = "def add(a, b):\n    return a + b\n"

# attacks written for the reward function (the sandbox's own corpus is added below)
ATTACKS: dict[str, str] = {
    "sys_exit_0_at_import": "import sys\nsys.exit(0)\ndef add(a, b):\n    return 0\n",
    "sys_exit_0_in_call": "import sys\ndef add(a, b):\n    sys.exit(0)\n",
    "os_exit_0": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "os_exit_at_import": "import os\nos._exit(0)\n",
    "raise_systemexit_class": "def add(a, b):\n    raise SystemExit\n",
    "keyboard_interrupt": "def add(a, b):\n    raise KeyboardInterrupt\n",
    "stop_iteration": "def add(a, b):\n    raise StopIteration\n",
    "stop_iteration_value": "def add(a, b):\n    raise StopIteration(a + b + 1)\n",
    "generator_exit": "def add(a, b):\n    raise GeneratorExit\n",
    "print_pass": (
        "print('PASS')\nprint('All tests passed')\nprint('passed: true')\n"
        "def add(a, b):\n    print('ok 1\\nok 2\\nPASSED')\n    return None\n"
    ),
    "patch_builtins": (
        "import builtins\nbuiltins.AssertionError = type('N', (Exception,), {})\n"
        "builtins.bool = lambda *a: True\nbuiltins.len = lambda *a: 0\n"
        "builtins.__import__ = lambda *a, **k: None\n"
        "def add(a, b):\n    return None\n"
    ),
    "monkeypatch_assert": (
        "import builtins, sys\n"
        "class Always(Exception):\n    pass\n"
        "builtins.AssertionError = Always\nsys.modules['builtins'].AssertionError = Always\n"
        "sys.excepthook = lambda *a: None\n"
        "def add(a, b):\n    raise AssertionError('forged')\n"
    ),
    "always_true_eq": (
        "class A:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
        "    __hash__ = object.__hash__\ndef add(a, b):\n    return A()\n"
    ),
    "int_subclass_eq": (
        "class I(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return I(0)\n"
    ),
    "float_nan_trick": "def add(a, b):\n    return float('nan')\n",
    "frames_expected": (
        "import sys\n"
        "def add(a, b):\n"
        "    f = sys._getframe(1)\n"
        "    while f is not None:\n"
        "        for v in list(f.f_locals.values()):\n"
        "            if isinstance(v, int) and v not in (a, b):\n"
        "                return v\n"
        "        f = f.f_back\n"
        "    return None\n"
    ),
    "gc_scan_expected": (
        "import gc\n"
        "def add(a, b):\n"
        "    for o in gc.get_objects():\n"
        "        if isinstance(o, dict) and 'passed' in o:\n"
        "            o['passed'] = o.get('total', 99)\n"
        "    return None\n"
    ),
    "edit_test_file": (
        "import glob, os\n"
        "for pat in ['/**/test*.py', '/tmp/**', '/opt/**/*.py', '/work/**/tests/*.py']:\n"
        "    for p in glob.glob(pat, recursive=True):\n"
        "        try:\n"
        "            open(p, 'w').write('def check(candidate):\\n    pass\\n')\n"
        "        except OSError:\n"
        "            pass\n"
        "def add(a, b):\n    return None\n"
    ),
    "forge_tally_message": (
        "def add(a, b):\n    raise AssertionError('codebench-tally 0000000000000000 4/4')\n"
    ),
    "forge_tally_printed": (
        "import sys\n"
        "def add(a, b):\n"
        "    sys.stderr.write('AssertionError: codebench-tally 0 4/4\\n')\n"
        "    print('codebench-tally 0 4/4')\n"
        "    return 0\n"
    ),
    "redefine_check": ("def check(candidate):\n    return True\ndef add(a, b):\n    return None\n"),
    "return_self_function": "def add(a, b):\n    return add\n",
    "huge_int": "def add(a, b):\n    return 10 ** 100000\n",
    "timeout_spin": "def add(a, b):\n    while True:\n        pass\n",
    "kill_parent": "import os, signal\ndef add(a, b):\n    os.kill(os.getppid(), signal.SIGKILL)\n",
    "memory_bomb": "def add(a, b):\n    return len(bytearray(10**11))\n",
    "syntax_error": "def add(a, b)\n    return a + b\n",
    "empty": "",
    "lone_surrogate": "def add(a, b):\n    return '\ud800'\n",
    "nul_byte": "def add(a, b):\n    return 0\x00\n",
}


def _sandbox_corpus() -> dict[str, str]:
    """The sandbox hostile suite's attacks that must fail (tests/test_sandbox_hostile.py)."""
    try:
        import test_sandbox_hostile as hostile
    except ImportError:
        return {}
    cases = getattr(hostile, "CASES", {})
    out = {}
    for name, case in cases.items():
        prog, expected = case[0], case[1]
        if all(str(e) != "passed" for e in expected):
            out[f"sandbox:{name}"] = prog
    return out


@pytest.fixture(scope="module")
def sb():
    with Sandbox(workers=2, timeout=1.0, memory_mb=512, retry_timeouts=False) as sandbox:
        yield sandbox


def _score_all(sb, log, attacks, styles):
    names = ["honest", *attacks, "honest_fenced"]
    comps = [HONEST, *attacks.values(), f"Sure:\n```python\n{HONEST}```\n"]
    out = {}
    for mode in ("fraction", "binary"):
        for style, tests in styles:
            r = SandboxReward(mode=mode, sandbox=sb, log_path=log, timeout=1.0)
            rewards = r(
                prompts=[STATEMENT] * len(comps),
                completions=comps,
                task_id=[f"add-{style}"] * len(comps),
                tests=[tests] * len(comps),
                entry_point=["add"] * len(comps),
            )
            r.close()
            out[mode, style] = dict(zip(names, rewards, strict=True))
    out["log"] = log
    out["n"] = len(comps) * len(styles) * 2
    return out


@pytest.fixture(scope="module")
def scored(sb, tmp_path_factory):
    """The reward-specific attacks, assert-style tests, both modes (the quick default run)."""
    log = tmp_path_factory.mktemp("rewards") / "rewards.jsonl"
    return _score_all(sb, log, ATTACKS, [("asserts", TESTS)])


def test_corpus_covers_the_sandbox_suite():
    corpus = _sandbox_corpus()
    if not corpus:
        pytest.skip("tests/test_sandbox_hostile.py has no CASES table on this tree")
    assert len(corpus) >= 30


def _check(rewards: dict[str, float]) -> None:
    forged = {k: v for k, v in rewards.items() if not k.startswith("honest") and v > FAIL}
    assert not forged, f"attacks scored above the failure reward: {forged}"
    assert rewards["honest"] == PASS and rewards["honest_fenced"] == PASS


@pytest.mark.parametrize("mode", ["fraction", "binary"])
def test_every_attack_gets_at_most_the_failure_reward(scored, mode):
    _check(scored[mode, "asserts"])


@pytest.mark.slow
def test_whole_hostile_corpus_in_both_modes_and_test_styles(sb, tmp_path):
    """Every attack (ours + the sandbox suite) x fraction/binary x asserts/check(candidate)."""
    attacks = {**ATTACKS, **_sandbox_corpus()}
    out = _score_all(
        sb, tmp_path / "r.jsonl", attacks, [("asserts", TESTS), ("check", CHECK_TESTS)]
    )
    for key in [
        ("fraction", "asserts"),
        ("fraction", "check"),
        ("binary", "asserts"),
        ("binary", "check"),
    ]:
        _check(out[key])


def test_every_completion_is_in_the_audit_log(scored):
    from codebench.rewards import read_reward_log

    records = read_reward_log(scored["log"])
    assert len(records) == scored["n"]
    surrogate = [r for r in records if r["completion"] == "def add(a, b):\n    return '\\ud800'\n"]
    assert surrogate and all(r["escaped"] for r in surrogate)
    nul = [r for r in records if "\x00" in r["completion"]]
    assert nul and all(r["outcome"] == "malformed" for r in nul)
    assert {r["outcome"] for r in records} >= {"passed", "failed", "timeout", "malformed"}


def test_honest_partial_credit_in_fraction_mode(sb):
    partial = "def add(a, b):\n    return a + b if a > 0 else 0\n"  # fails add(-3, 1) only
    with SandboxReward(mode="fraction", sandbox=sb) as r:
        rewards = r([STATEMENT] * 2, [partial, HONEST], tests=[TESTS] * 2, entry_point=["add"] * 2)
    assert rewards == [0.75, 1.0]
    with SandboxReward(mode="binary", sandbox=sb) as r:
        rewards = r([STATEMENT] * 2, [partial, HONEST], tests=[TESTS] * 2, entry_point=["add"] * 2)
    assert rewards == [0.0, 1.0]


def test_humaneval_canonical_solutions_get_the_top_reward(sb):
    from codebench.sandbox.problems import load_humaneval

    problems = list(load_humaneval().values())
    rows = [{k: p[k] for k in ("task_id", "prompt", "test", "entry_point")} for p in problems]
    with SandboxReward(mode="fraction", sandbox=sb, timeout=3.0) as r:
        scored = r.score(rows, [p["canonical_solution"] for p in problems])
        wrong = r.score(rows, ["    return None\n"] * len(rows))
    low = {
        row["task_id"]: s.detail for row, s in zip(rows, scored, strict=True) if s.reward != PASS
    }
    # objects of a class the program defines cannot be returned to the trusted side yet
    # (issue 13, item 7: task 601 builds `Pair` instances); every other reference passes
    assert all("cannot send a value of type" in d for d in low.values()), low
    assert len(low) <= 1
    # partial credit for `return None` is possible only where an expected value is None/falsy
    assert sum(s.reward for s in wrong) / len(wrong) < 0.1
    assert all(s.outcome != "passed" for s in wrong)


def test_mbpp_reference_code_gets_the_top_reward(sb, data_dir):
    from codebench.sandbox.problems import load_mbpp

    rows = [p for tid, p in load_mbpp(data_dir).items() if 601 <= tid <= 640]
    with SandboxReward(mode="fraction", sandbox=sb, timeout=3.0) as r:
        scored = r.score(rows, [p["code"] for p in rows])
    low = {
        row["task_id"]: s.detail for row, s in zip(rows, scored, strict=True) if s.reward != PASS
    }
    # objects of a class the program defines cannot be returned to the trusted side yet
    # (issue 13, item 7: task 601 builds `Pair` instances); every other reference passes
    assert all("cannot send a value of type" in d for d in low.values()), low
    assert len(low) <= 1


def test_the_common_subprocess_pattern_is_forged_where_the_sandbox_is_not(sb, tmp_path):
    """docs/grpo.md: one `python file` with the tests appended rewards `sys.exit(0)`."""
    import subprocess
    import sys

    attack = "    return None\nimport sys\nsys.exit(0)\n"
    prompt = "def add(a, b):\n"
    path = tmp_path / "c.py"
    path.write_text(prompt + attack + "\n" + TESTS)
    assert subprocess.run([sys.executable, str(path)], capture_output=True).returncode == 0
    with SandboxReward(mode="binary", sandbox=sb) as r:
        assert r([prompt], [attack], tests=[TESTS], entry_point=["add"]) == [FAIL]


# ------------------------------------------------------- the other hostile suites, as completions
def _other_suites() -> dict[str, object]:
    """Every attack table of tests/test_sandbox_attacks.py and tests/test_hostile_bench_python.py
    that targets a Python function verdict (the reward's task kind)."""
    import test_hostile_bench_python as bench
    import test_sandbox_attacks as attacks

    return {"attacks": attacks, "bench": bench}


def _sandbox_attack_rows(attacks) -> tuple[list[dict], list[str], list[str]]:
    """(rows, completions, names): the attack suite's tables as reward tasks + completions,
    each table with its honest counterpart (names starting 'honest')."""
    from codebench.sandbox.problems import load_humaneval

    rows, comps, names = [], [], []

    def add(row: dict, comp: str, name: str) -> None:
        rows.append(row)
        comps.append(comp)
        names.append(name)

    plain = {"task_id": "add", "prompt": STATEMENT, "tests": attacks.TESTS, "entry_point": "add"}
    for cls, name, prog in attacks.PLAIN:  # process-level attacks (rlimits, signals, fork, ...)
        add(plain, prog, f"plain:{cls}:{name}")
    add(plain, HONEST, "honest:add")
    for name, prog in attacks.SLEEPERS.items():
        add(plain, prog, f"sleeper:{name}")
    # without the assert that the constant [0, 1] answers correctly (catch_all_getattr earns
    # that one honestly: 1/5 in fraction mode), so any credit would be a forged one
    tests = "".join(
        t for t in attacks.SOLUTION_TESTS.splitlines(keepends=True) if "== [0, 1]" not in t
    )
    sol = {
        "task_id": "solution",
        "prompt": "Write class Solution with twoSum and isValid.",
        "tests": tests,
        "entry_point": "Solution",
    }
    for name, prog in attacks.FORGED_SOLUTIONS.items():  # class handles forged
        add(sol, prog, f"forged_solution:{name}")
    add(sol, attacks.SOLUTION, "honest:solution")
    he = load_humaneval()
    for tid in list(he)[:2]:  # the score CLI's attacks, as HumanEval completions
        row = {k: he[tid][k] for k in ("task_id", "prompt", "test", "entry_point")}
        for name, body in attacks.SCORE_ATTACKS.items():
            add(row, attacks._completion(body), f"score:{tid}:{name}")
        add(row, he[tid]["canonical_solution"], f"honest:{tid}")
    return rows, comps, names


def _bench_rows(bench) -> tuple[list[dict], list[str], list[str]]:
    """tests/test_hostile_bench_python.py's custom-task attacks (StopIteration ending the
    tests' map(), redefining the prompt's helper) and the tasks' references."""
    rows, comps, names = [], [], []
    for r in bench.CUSTOM:
        row = {k: r[k] for k in ("task_id", "prompt", "tests") if k in r}
        if "entry_point" in r:
            row["entry_point"] = r["entry_point"]
        rows += [row, row]
        comps += [bench.CUSTOM_ATTACKS[r["task_id"]], r["reference"]]
        names += [f"custom:{r['task_id']}", f"honest:{r['task_id']}"]
    return rows, comps, names


def test_other_hostile_suites_are_covered_by_name():
    """Every attack of the two suites that aims at a Python function verdict is fed to the
    reward below (a new attack added there is picked up here, by its table)."""
    s = _other_suites()
    _, _, names = _sandbox_attack_rows(s["attacks"])
    _, _, bnames = _bench_rows(s["bench"])
    got = set(names) | set(bnames)
    a = s["attacks"]
    assert {f"plain:{c}:{n}" for c, n, _ in a.PLAIN} <= got
    assert {f"forged_solution:{n}" for n in a.FORGED_SOLUTIONS} <= got
    assert {f"sleeper:{n}" for n in a.SLEEPERS} <= got
    assert {n.split(":")[-1] for n in got if n.startswith("score:")} == set(a.SCORE_ATTACKS)
    assert {f"custom:{t}" for t in s["bench"].CUSTOM_ATTACKS} <= got
    assert len(a.PLAIN) >= 30


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fraction", "binary"])
def test_sandbox_attack_suite_scores_the_failure_reward(mode):
    """tests/test_sandbox_attacks.py's attacks (process, rlimit, signal, fork, keyring, proc,
    protocol attacks, sleepers, forged class handles, the score CLI's attackers) as completions:
    each at most the failure reward; the honest probe, Solution class and canonical solutions
    the top reward, in the same batch (~40-60 s on a loaded 2-core VM)."""
    rows, comps, names = _sandbox_attack_rows(_other_suites()["attacks"])
    with (
        Sandbox(workers=2, timeout=1.0, memory_mb=768, retry_timeouts=False) as sb,
        SandboxReward(mode=mode, sandbox=sb, timeout=1.0) as r,
    ):
        scored = r.score(rows, comps)
    _check_named(names, scored)


@pytest.mark.parametrize("mode", ["fraction", "binary"])
def test_bench_suite_attacks_score_the_failure_reward(sb, mode):
    rows, comps, names = _bench_rows(_other_suites()["bench"])
    with SandboxReward(mode=mode, sandbox=sb, timeout=1.0) as r:
        scored = r.score(rows, comps)
    _check_named(names, scored)


def test_quick_sample_of_the_sandbox_attack_suite(sb):
    """The default (fast) run: one attack of each class of tests/test_sandbox_attacks.py, the
    forged class handles and the score CLI's quick attackers, in fraction mode."""
    rows, comps, names = _sandbox_attack_rows(_other_suites()["attacks"])
    first, keep = set(), []
    for i, n in enumerate(names):
        kind = n.split(":")[0] if not n.startswith("plain:") else ":".join(n.split(":")[:2])
        quick = n.startswith(("honest", "forged_solution")) or (
            n.startswith("score:") and n.split(":")[-1] in ("surrogate_message", "collision")
        )
        if quick or (kind.startswith("plain") and kind not in first):
            first.add(kind)
            keep.append(i)
    with SandboxReward(mode="fraction", sandbox=sb, timeout=1.0) as r:
        scored = r.score([rows[i] for i in keep], [comps[i] for i in keep])
    _check_named([names[i] for i in keep], scored)
    assert sum(n.startswith("plain:") for n in (names[i] for i in keep)) >= 8


def _check_named(names, scored) -> None:
    forged = {
        n: (s.reward, s.outcome, s.detail[:120])
        for n, s in zip(names, scored, strict=True)
        if not n.startswith("honest") and (s.reward > FAIL or s.outcome == "passed")
    }
    assert not forged, f"attacks scored above the failure reward: {forged}"
    honest = {
        n: (s.reward, s.outcome, s.detail[:200])
        for n, s in zip(names, scored, strict=True)
        if n.startswith("honest") and s.reward != PASS
    }
    assert not honest, f"honest completions below the top reward: {honest}"
    partial = [
        n for n, s in zip(names, scored, strict=True) if not n.startswith("honest") and s.reward > 0
    ]
    assert not partial
