"""codebench.sandbox: the wire codec, the three job kinds, outcomes, retries, the fallback
path and toolchains. (Hostile completions: test_sandbox_hostile.py; benchmarks:
test_sandbox_benchmarks.py; the score CLI: test_sandbox_score.py.)"""

from __future__ import annotations

import ast
import math
import shutil
import warnings
from collections import Counter, OrderedDict, namedtuple
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codebench.sandbox import (
    Args,
    CallJob,
    Outcome,
    ProgramJob,
    Result,
    Sandbox,
    TestsJob,
    isolation,
    languages,
    trusted,
    wire,
)


@pytest.fixture(scope="module")
def sb():
    with Sandbox(workers=2, timeout=2.0, memory_mb=1024) as box:
        yield box


# ---------------------------------------------------------------------------- wire codec
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.complex_numbers()
)
_hashable = st.recursive(
    _scalars, lambda c: st.tuples(c, c) | st.frozensets(c, max_size=3), max_leaves=4
)
_values = st.recursive(
    _scalars,
    lambda c: (
        st.lists(c, max_size=4)
        | st.tuples(c, c)
        | st.dictionaries(_hashable, c, max_size=3)
        | st.sets(_hashable, max_size=3)
        | st.frozensets(_hashable, max_size=3)
        | st.dictionaries(st.text(), c, max_size=3)
    ),
    max_leaves=10,
)


def _same(a, b) -> bool:
    """Equality that also checks exact types and treats nan as equal to nan."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, complex):
        return _same(a.real, b.real) and _same(a.imag, b.imag)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            any(_same(k, k2) and _same(v, b[k2]) for k2 in b) for k, v in a.items()
        )
    if isinstance(a, set | frozenset):
        return len(a) == len(b) and all(any(_same(x, y) for y in b) for x in a)
    return a == b


@settings(max_examples=300, deadline=None)
@given(_values)
def test_wire_round_trips_plain_data(value):
    assert _same(wire.loads(wire.dumps(value)), value)


def test_wire_keeps_the_awkward_cases():
    cases = [
        (1, 2),
        {1, 2},
        frozenset({3}),
        {(1, 2): "t", 3: [4]},
        float("nan"),
        float("inf"),
        -float("inf"),
        -0.0,
        None,
        b"\x00\xff",
        bytearray(b"ab"),
        10**100,
        -(10**5000),
        1 + 2j,
        {"a": {"b": [(), set()]}},
        "\ud800 lone surrogate",
        True,
        [True, 1, 1.0],
    ]
    for value in cases:
        assert _same(wire.loads(wire.dumps(value)), value), value


def test_wire_coerces_builtin_subclasses_and_refuses_the_rest():
    Point = namedtuple("Point", "x y")

    class Sneaky(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    assert _same(wire.loads(wire.dumps(Point(1, 2))), (1, 2))
    assert _same(wire.loads(wire.dumps(Counter("aab"))), {"a": 2, "b": 1})
    assert _same(wire.loads(wire.dumps(OrderedDict(a=1))), {"a": 1})
    decoded = wire.loads(wire.dumps(Sneaky(5)))
    assert type(decoded) is int and decoded == 5 and decoded != 6
    for bad in (object(), lambda: 1, (x for x in []), type, Ellipsis):
        with pytest.raises(wire.WireError):
            wire.dumps(bad)
    loop: list = []
    loop.append(loop)
    with pytest.raises(wire.WireError):
        wire.dumps(loop)


def test_wire_decoder_is_strict():
    for junk in [
        b'{"$x": 1}',
        b'{"$t": 1}',
        b'{"a": 1}',
        b'{"$s": [[1]]}',
        b'{"$b": "***"}',
        b'{"$t": [], "$s": []}',
        b"[" * 100_000,
        b"not json",
        b'{"$ref": "x"}',
        b'{"$D": [[[1], 2]]}',
        b'{"$i": "zz"}',
    ]:
        with pytest.raises(wire.WireError):
            wire.loads(junk)
    with pytest.raises(wire.WireError):
        wire.loads(b"[1, 2, 3]", max_bytes=4)
    for module in Path(wire.__file__).parent.glob("*.py"):  # no pickle anywhere in the sandbox
        tree = ast.parse(module.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not imported & {"pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle"}, (
            module
        )


# --------------------------------------------------------------------------- run_tests
def test_run_tests_pass_fail_and_details(sb):
    ok = sb.run_tests(
        "def f(x):\n    print('hi')\n    return x * 2\n", "assert f(2) == 4\nassert f(0) == 0\n"
    )
    assert (
        ok.outcome is Outcome.PASSED and ok.passed and ok.stdout == "hi\nhi\n" and ok.detail == ""
    )
    bad = sb.run_tests("def f(x):\n    return x\n", "assert f(0) == 0\nassert f(2) == 4\n")
    assert bad.outcome is Outcome.FAILED and "f(2) == 4" in bad.detail and not bad.passed
    assert isinstance(bad, Result) and bad.duration_s > 0
    boom = sb.run_tests("def f(x):\n    return 1 / x\n", "assert f(0) == 0\n")
    assert boom.outcome is Outcome.FAILED and "ZeroDivisionError" in boom.detail
    syntax = sb.run_tests("def f(x) return x\n", "assert f(1) == 1\n")
    assert syntax.outcome is Outcome.FAILED and "SyntaxError" in syntax.detail


def test_candidate_exceptions_come_back_as_builtin_types(sb):
    tests = (
        "try:\n    f(-1)\n    raise AssertionError('no error')\nexcept ValueError as e:\n"
        "    assert 'negative' in str(e)\nassert f(4) == 2\n"
    )
    good = (
        "def f(x):\n    if x < 0:\n        raise ValueError('negative')\n    return int(x ** 0.5)\n"
    )
    assert sb.run_tests(good, tests).passed
    custom = "class ValueError(Exception):\n    pass\ndef f(x):\n    raise ValueError('negative')\n"
    assert not sb.run_tests(custom, tests).passed  # a look-alike is not the builtin


def test_float_tolerance_and_helpers_in_the_trusted_prelude(sb):
    prelude = (
        "import math\ndef poly(xs, x):\n    return sum(c * x ** i for i, c in enumerate(xs))\n"
    )
    tests = "def check(candidate):\n    r = candidate([-6, 11, -6, 1])\n    assert abs(poly([-6, 11, -6, 1], r)) < 1e-6\ncheck(root)\n"
    program = prelude + "def root(xs):\n    return 1.0000000001\n"
    assert sb.run_tests(program, tests, "root", prelude=prelude).passed
    assert not sb.run_tests(
        prelude + "def root(xs):\n    return 1.1\n", tests, "root", prelude=prelude
    ).passed


def test_setup_objects_are_passed_by_reference(sb):
    program = (
        "class Node:\n    def __init__(self, v):\n        self.v, self.kids = v, []\n"
        "def depth(n):\n    return 1 + max((depth(k) for k in n.kids), default=0)\n"
    )
    setup = "root = Node(1)\nroot.kids.append(Node(2))\nroot.kids[0].kids.append(Node(3))\nleaf = Node(9)\n"
    tests = "assert depth(root) == 3\nassert depth(leaf) == 1\n"
    assert sb.run_tests(program, tests, setup=setup).passed
    assert trusted.assigned_names(setup) == ("root", "leaf")


def test_nonplain_return_is_a_handle_equal_only_to_itself(sb):
    # an object that is not plain data stays in the sandbox; the tests get a handle that no
    # __eq__ of the sample's can make equal to an expected value
    program = (
        "class Yes:\n    def __eq__(self, o):\n        return True\n"
        "    def __hash__(self):\n        return 0\n"
        "def f():\n    return Yes()\n"
    )
    for tests in ("assert f() == 1\n", "assert f() == f()\n", "assert 1 == f()\n"):
        res = sb.run_tests(program, tests)
        assert res.outcome is Outcome.FAILED, (tests, res)
    assert sb.run_tests(program, "h = f()\nassert h == h and h is not None\n").passed
    # call jobs keep returning plain data only
    r = sb.call(program, "f", [()])
    assert r.outcome is Outcome.FAILED and "cannot send" in r.values[0].error


def test_timeouts_cpu_and_sleepers_are_final():
    with Sandbox(workers=2, timeout=0.5) as box:
        spin, sleeper, fine = box.map(
            [
                TestsJob("def f():\n    while True:\n        pass\n", "assert f() is None\n"),
                TestsJob(
                    "import time\ndef f():\n    time.sleep(1.6)\n    return 1\n",
                    "assert f() == 1\n",
                ),
                TestsJob("def f():\n    return 1\n", "assert f() == 1\n"),
            ]
        )
    assert spin.outcome is Outcome.TIMEOUT
    if spin.attempts == 1:  # no retry only when the CPU budget was used up
        assert "CPU" in spin.detail
    # a sleeper is blocked, not starved: its wall-clock timeout is final, no retry
    assert sleeper.outcome is Outcome.TIMEOUT and sleeper.attempts == 1, sleeper
    assert "blocked" in sleeper.detail
    assert fine.passed and fine.attempts == 1


def test_prediction_does_not_change_verdicts(sb):
    """Predicted (batched) calls and live calls give the same verdicts, including order effects."""
    stateful = "n = 0\ndef f(x):\n    global n\n    n += 1\n    return x + n\n"
    tests = "assert f(1) == 2\nassert f(1) == 3\nfor i in range(3):\n    assert f(0) == 3 + i\n"
    first = sb.run_tests(stateful, tests)
    again = sb.run_tests(stateful, tests)  # now with a learned prediction
    assert first.passed and again.passed
    diverge = "import random\nassert f(random.randint(0, 5)) >= 0\nassert f(1) > 0\n"
    assert sb.run_tests("def f(x):\n    return x + 1\n", diverge).passed
    assert sb.run_tests("def f(x):\n    return x + 1\n", diverge).passed
    hang_late = "def f(x):\n    while x == 3:\n        pass\n    return x\n"
    res = sb.run_tests(hang_late, "assert f(1) == 1\nassert f(2) == 5\nassert f(3) == 3\n")
    assert res.outcome is Outcome.FAILED  # fails at f(2) before the hanging call is reached


# -------------------------------------------------------------------------------- call
def test_call_job_values_errors_and_fresh_arguments(sb):
    program = (
        "def main_solution(xs, k=1):\n    xs.append(k)\n    return {'sum': sum(xs), 'xs': xs}\n"
        "def boom(x):\n    raise KeyError(x)\n"
    )
    res = sb.call(program, "main_solution", [{"xs": [1, 2]}, ([1, 2],), Args([1, 2], k=5)])
    assert res.passed and [v.value for v in res.values] == [
        {"sum": 4, "xs": [1, 2, 1]},
        {"sum": 4, "xs": [1, 2, 1]},
        {"sum": 8, "xs": [1, 2, 5]},
    ]
    err = sb.call(program, "boom", [(1,)])
    assert err.outcome is Outcome.FAILED and err.values[0].error.startswith("KeyError")


def test_call_job_per_call_timeout_reload_and_size_limit():
    program = "import time\ndef f(x):\n    if x == 'hang':\n        while True:\n            pass\n    if x == 'big':\n        return 'x' * (1 << 20)\n    return x\n"
    with Sandbox(workers=1, timeout=0.5, retry_timeouts=False) as box:
        res = box.run(
            CallJob(program, "f", [(1,), ("hang",), (2,), ("big",), (3,)], max_value_bytes=100_000)
        )
    outcomes = [v.outcome for v in res.values]
    assert outcomes == [
        Outcome.PASSED,
        Outcome.TIMEOUT,
        Outcome.PASSED,
        Outcome.FAILED,
        Outcome.PASSED,
    ]
    assert res.values[2].value == 2 and res.values[4].value == 3
    assert "value too large" in res.values[3].error
    assert res.outcome is Outcome.TIMEOUT


def test_call_job_batch_gives_every_call_its_own_budget_and_keeps_state():
    # all calls go to the sample process in one round trip; each still has its own limit
    program = (
        "import os\nn = 0\ndef f(x):\n    global n\n    n += 1\n"
        "    if x == 'spin':\n        t = __import__('time').process_time()\n"
        "        while __import__('time').process_time() - t < 0.3:\n            pass\n"
        "    if x == 'die':\n        os._exit(3)\n    return n\n"
    )
    calls = [("spin",), ("spin",), (object(),), ("spin",), ("die",), ("x",), ("spin",)]
    with Sandbox(workers=1, timeout=0.5, retry_timeouts=False) as box:
        res = box.run(CallJob(program, "f", calls))
    outcomes = [v.outcome for v in res.values]
    assert outcomes == [
        Outcome.PASSED,
        Outcome.PASSED,
        Outcome.SANDBOX_ERROR,
        Outcome.PASSED,
        Outcome.FAILED,
        Outcome.PASSED,
        Outcome.PASSED,
    ]
    # 1.2 s of calls under a 0.5 s per-call limit: the budget is per call, not per batch
    assert [res.values[i].value for i in (0, 1, 3)] == [1, 2, 3]  # one process, state kept
    assert "exited with status 3" in res.values[4].error
    assert [res.values[i].value for i in (5, 6)] == [1, 2]  # a fresh process after the exit
    assert all(0.25 < res.values[i].duration_s < 2.0 for i in (0, 1, 3, 6))
    assert "cannot be sent" in res.values[2].error


def test_call_job_load_failure_fills_every_call(sb):
    res = sb.call("raise RuntimeError('nope')\n", "f", [(), ()])
    assert res.outcome is Outcome.FAILED and len(res.values) == 2
    assert all("RuntimeError" in v.error for v in res.values)


# ------------------------------------------------------------------------- run_program
def test_worker_and_samples_run_under_the_seccomp_filter(sb):
    """The worker installs the filter in itself once; each sample inherits it (mode 2)."""
    if sb.isolation_label != "bwrap":
        pytest.skip(f"isolation is {sb.isolation_label}: no seccomp filter here")
    res = sb.run_program(
        "for pid in ('1', 'self'):\n"
        "    with open(f'/proc/{pid}/status') as f:\n"
        "        print(pid, [l.split()[1] for l in f if l.startswith('Seccomp:')][0])\n"
    )
    assert res.passed, res.detail
    assert res.stdout.split() == ["1", "2", "self", "2"]


def test_run_program_python(sb):
    res = sb.run_program(
        "import sys\nprint(sys.stdin.read().upper())\nprint('err', file=sys.stderr)\n", stdin="hey"
    )
    assert res.passed and res.stdout == "HEY\n" and res.stderr == "err\n" and res.exit_code == 0
    bad = sb.run_program("import sys\nsys.exit(3)\n")
    assert bad.outcome is Outcome.FAILED and bad.exit_code == 3
    crash = sb.run_program("import os\nos.kill(os.getpid(), 11)\n")
    assert crash.outcome is Outcome.CRASHED and crash.exit_code == -11
    oom = sb.run_program("x = bytearray(1 << 40)\n")
    assert oom.outcome is Outcome.OUT_OF_MEMORY
    early = sb.run(
        ProgramJob("import sys\nprint('ok')\nsys.exit(0)\nprint('tests done')\n", nonce=True)
    )
    assert early.outcome is Outcome.FAILED and "nonce" in early.detail
    full = sb.run(ProgramJob("print('tests done')\n", nonce=True))
    assert full.passed and full.stdout == "tests done\n"


def test_toolchain_missing():
    with Sandbox(
        workers=1,
        toolchains={
            "cpp": {"compiler": "/nonexistent/g++"},
            "js": {"runtime": "no-such-node-binary"},
        },
    ) as box:
        cpp = box.run_program("int main() { return 0; }\n", language="cpp")
        js = box.run_program("console.log(1)\n", language="js")
        other = box.run_program("x", language="cobol")
    assert cpp.outcome is Outcome.TOOLCHAIN_MISSING and "/nonexistent/g++" in cpp.detail
    assert js.outcome is Outcome.TOOLCHAIN_MISSING
    assert other.outcome is Outcome.TOOLCHAIN_MISSING
    assert languages.toolchain("c++", {"cpp": {"compiler": "/x"}}).compile[0] == "/x"


# ------------------------------------------------------------------------------ fallback
def test_fallback_warns_once_and_still_judges(monkeypatch):
    monkeypatch.setattr(isolation, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Sandbox(workers=1, isolation="fallback", timeout=1.0, unsafe_no_isolation=True) as box:
            results = box.map(
                [
                    TestsJob("def add(a, b):\n    return a + b\n", "assert add(1, 2) == 3\n"),
                    TestsJob("def add(a, b):\n    return a - b\n", "assert add(1, 2) == 3\n"),
                    TestsJob(
                        "def add(a, b):\n    while True:\n        pass\n", "assert add(1, 2) == 3\n"
                    ),
                    TestsJob(
                        "import os\ndef add(a, b):\n    os.abort()\n", "assert add(1, 2) == 3\n"
                    ),
                ]
            )
        with Sandbox(workers=1, isolation="fallback", unsafe_no_isolation=True) as box2:
            assert box2.isolation == "fallback"
    ours = [w for w in caught if "bubblewrap" in str(w.message)]
    assert len(ours) == 1
    assert {r.isolation for r in results} == {"unsafe-fallback"}  # recorded in every result
    assert [r.outcome for r in results] == [
        Outcome.PASSED,
        Outcome.FAILED,
        Outcome.TIMEOUT,
        Outcome.CRASHED,
    ]


def test_fallback_worker_code_copied_when_the_checkout_is_private(monkeypatch):
    # a checkout below a private folder (a `mktemp -d` clone): the worker's uid cannot read
    # worker.py there, so a root-owned readable copy is used and removed with the worker
    real = isolation.others_can
    monkeypatch.setattr(
        isolation,
        "others_can",
        lambda path, bits=0o005: False if str(path).endswith("worker.py") else real(path, bits),
    )
    monkeypatch.setattr(isolation, "_warned", True)
    made = []
    spy = isolation.fallback_scripts
    monkeypatch.setattr(isolation, "fallback_scripts", lambda: made.append(spy()) or made[-1])
    with Sandbox(workers=1, isolation="fallback", timeout=2.0, unsafe_no_isolation=True) as box:
        r = box.run_tests("def add(a, b):\n    return a + b\n", "assert add(1, 2) == 3\n")
        dedicated = box._workers[0].lease.uid is not None
        assert all((d / "worker.py").is_file() for d, _ in made)
    assert r.outcome is Outcome.PASSED, r.detail
    if dedicated:
        assert made and all(private for _, private in made)
    assert not any(d.exists() for d, _ in made)  # removed with the worker


def test_isolation_choice_from_environment(monkeypatch):
    monkeypatch.setattr(isolation, "_warned", True)
    monkeypatch.setenv("CODEBENCH_SANDBOX_ISOLATION", "fallback")
    monkeypatch.delenv("CODEBENCH_UNSAFE_NO_SANDBOX", raising=False)
    with pytest.raises(isolation.IsolationError, match="unsafe"):
        isolation.resolve("auto")  # never unisolated without the explicit opt-in
    assert isolation.resolve("auto", unsafe_no_isolation=True) == "fallback"
    monkeypatch.setenv("CODEBENCH_UNSAFE_NO_SANDBOX", "1")
    assert isolation.resolve("auto") == "fallback"
    if isolation.bwrap_usable():
        assert isolation.resolve("bwrap") == "bwrap"
    with pytest.raises(ValueError):
        isolation.resolve("nope")


# ---------------------------------------------------------------------------- languages
_STRLEN = {
    "js": ("  return string.length;\n}\n", "  process.exit(0);\n}\n"),
    "cpp": ("    return string.size();\n", "    exit(0);\n"),
    "java": ("        return string.length();\n", "        System.exit(0); return 0;\n"),
    "sh": ('    echo -n "$1" | wc -c\n', "    exit 0\n"),
}
_TOOL = {"js": "node", "cpp": "g++", "java": "javac", "sh": "bash"}


@pytest.mark.toolchain
@pytest.mark.parametrize("lang", sorted(_STRLEN))
def test_multipl_e_language(sb, lang, data_dir):
    if not shutil.which(_TOOL[lang]):
        pytest.skip(f"{_TOOL[lang]} not installed")
    from codebench.sandbox import multipl_e_job
    from codebench.sandbox.problems import load_multipl_e

    prob = load_multipl_e(data_dir, lang)["HumanEval_23_strlen"]
    good, early_exit = _STRLEN[lang]
    wrong = (
        good.replace("length", "length + 1")
        .replace("size()", "size() + 1")
        .replace("wc -c", "wc -c; echo 7")
    )
    r_good, r_wrong, r_exit, r_syntax = sb.map(
        [
            multipl_e_job(prob, good, timeout=20),
            multipl_e_job(prob, wrong, timeout=20),
            multipl_e_job(prob, early_exit, timeout=20),
            multipl_e_job(prob, "}}}{{{ (((\n", timeout=20),
        ]
    )
    assert r_good.outcome is Outcome.PASSED, r_good.detail
    assert r_wrong.outcome in (Outcome.FAILED, Outcome.CRASHED) and not r_wrong.passed
    assert r_exit.outcome is Outcome.FAILED and not r_exit.passed, r_exit.detail
    assert r_syntax.outcome is Outcome.FAILED and not r_syntax.passed


@pytest.fixture(scope="module")
def data_dir():
    from codebench.paths import DataDirError
    from codebench.paths import data_dir as find

    try:
        return find()
    except DataDirError:
        pytest.skip("benchmark data folder not found")


# ------------------------------------------------------------------ C++ precompiled header
@pytest.mark.toolchain
def test_cpp_precompiled_header_only_for_multipl_e_style_programs(data_dir):
    from codebench.sandbox import multipl_e_job, pch
    from codebench.sandbox.problems import load_multipl_e

    head = "#include<assert.h>\n#include<bits/stdc++.h>\n"
    assert pch.qualifies(head + "long f() { return 1; }\n")
    assert pch.qualifies("\n// c\n#include <bits/stdc++.h>\nint main() {}\n")
    assert not pch.qualifies("#define N 5\n" + head)  # a macro before the includes
    assert not pch.qualifies("#include<assert.h>\n#include<vector>\n")  # not the whole library
    argv = ["g++", "-std=c++17", "-O0", "-o", "main", "main.cpp"]
    assert pch.compile_argv(argv, "#include <vector>\nint main() {}\n", "/x") == argv
    if not shutil.which("g++") or not pch.ensure():
        pytest.skip("no g++, or the precompiled header cannot be built here")
    assert pch.compile_argv(argv, head, "/x")[:5] == ["g++", "-include", pch.HEADER, "-I", "/x"]
    # same verdicts with and without it: a pass, a failure, and a missing include that must
    # still fail to compile (the library is not force-included into other programs)
    prob = load_multipl_e(data_dir, "cpp")["HumanEval_23_strlen"]
    missing = "#include <cstdio>\nint main() { std::vector<int> v; return 0; }\n"
    outcomes = {}
    for on in (False, True):
        with Sandbox(workers=1, cpp_pch=on) as box:
            rs = box.map(
                [
                    multipl_e_job(prob, "    return string.size();\n"),
                    multipl_e_job(prob, "    return 0;\n"),
                    ProgramJob(missing, "cpp"),
                ]
            )
        outcomes[on] = [r.outcome for r in rs]
        assert "compilation failed" in rs[2].detail
    assert outcomes[False] == outcomes[True]
    assert outcomes[True][0] is Outcome.PASSED and outcomes[True][1] in (
        Outcome.FAILED,
        Outcome.CRASHED,
    )
