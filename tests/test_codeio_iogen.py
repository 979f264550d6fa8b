"""codeio.iogen and input-prediction verification in the real sandbox, with planted functions."""

from __future__ import annotations

import pytest

from codebench.codeio import iogen, transform
from codebench.codeio.execute import SandboxExecutor, uses_numpy
from codebench.codeio.records import unified_record
from codebench.codeio.verify import VerifyConfig, verify_batch

CFG = iogen.IOConfig(
    max_pairs=3,
    min_pairs=2,
    call_budget=6,
    call_timeout=0.5,
    function_budget=1.0,
    max_output_chars=1024,
)


@pytest.fixture(scope="module")
def sandboxes():
    # the executor 01_build_data uses: plain pool + numpy pool (started by the numpy programs)
    with (
        SandboxExecutor(workers=2, timeout=0.5, memory_mb=1024) as a,
        SandboxExecutor(workers=1, timeout=0.5, memory_mb=1024) as b,
    ):
        yield a, b


def _rec(
    code: str, spec: dict | None = None, ios: list | None = None, generator: str | None = None
) -> dict:
    return unified_record(
        refcode=code,
        problem="p",
        io_requirements="r",
        origin={"source": "test"},
        input_spec=spec,
        ios=ios,
        input_generator=generator,
    )


INT = {"type": "kwargs", "params": {"n": {"type": "int", "lo": 0, "hi": 50}}}
LIST = {
    "type": "kwargs",
    "params": {"xs": {"type": "list", "item": {"type": "int", "lo": 0, "hi": 9}, "max_len": 6}},
}
GRID = {
    "type": "kwargs",
    "params": {
        "grid": {
            "type": "list",
            "item": {"type": "list", "item": {"type": "int", "lo": 0, "hi": 3}, "max_len": 3},
            "max_len": 3,
        }
    },
}
WORDS_IOS = [{"input": {"words": [f"w{i}{j}" for j in range(8)]}, "output": None} for i in range(4)]

PLANTED = {
    "good": ("def main_solution(n):\n    return n * n\n", INT, None, None),
    "random": (
        "import random\ndef main_solution(n):\n    return n + random.randint(0, 10**9)\n",
        INT,
        None,
        "non-deterministic",
    ),
    "clock": (
        "import time\ndef main_solution(n):\n    return [n, time.perf_counter_ns()]\n",
        INT,
        None,
        "non-deterministic",
    ),
    "global-state": (
        "seen = []\ndef main_solution(n):\n    seen.append(n)\n    return len(seen) * 1000 + n\n",
        INT,
        None,
        "non-deterministic",
    ),
    "set-order": (
        "def main_solution(words):\n    return list(set(words))\n",
        None,
        WORDS_IOS,
        "non-deterministic",
    ),
    "mutates": (
        "def main_solution(xs):\n    xs.append(0)\n    return sum(xs)\n",
        LIST,
        None,
        "mutates-input",
    ),
    "mutates-nested": (
        "def main_solution(grid):\n    for row in grid:\n        row.sort(reverse=True)\n    return len(grid)\n",
        GRID,
        None,
        "mutates-input",
    ),
    "constant": ("def main_solution(n):\n    return 42\n", INT, None, "constant-output"),
    "raises": ("def main_solution(n):\n    raise ValueError('no')\n", INT, None, "exception"),
    "loops": ("def main_solution(n):\n    while True:\n        n += 1\n", INT, None, "timeout"),
    "set-output": ("def main_solution(n):\n    return {n, n + 1}\n", INT, None, "not-serializable"),
    "nan-output": (
        "def main_solution(n):\n    return float('nan')\n",
        INT,
        None,
        "not-serializable",
    ),
    "huge-output": ("def main_solution(n):\n    return 'x' * (2000 + n)\n", INT, None, "too-large"),
    "load-error": (
        "import no_such_module_here\ndef main_solution(n):\n    return n\n",
        INT,
        None,
        "load-error",
    ),
    "exits": ("import sys\ndef main_solution(n):\n    sys.exit(0)\n", INT, None, "exception"),
    "stale-stored": (
        "def main_solution(n):\n    return n + 1\n",
        None,
        [{"input": {"n": i}, "output": i + 1 + (i == 2)} for i in range(4)],
        "irreproducible",
    ),
    "no-inputs": ("def main_solution(n):\n    return n\n", None, None, "too-few-pairs"),
    "numpy": ("def main_solution(n):\n    return int(np.arange(n).sum())\n", INT, None, None),
    "numpy-random": (
        "import numpy as np\ndef main_solution(n):\n    return n + int(np.random.randint(0, 10**9))\n",
        INT,
        None,
        "non-deterministic",
    ),
}


@pytest.fixture(scope="module")
def planted(sandboxes):
    recs = {name: _rec(code, spec, ios) for name, (code, spec, ios, _) in PLANTED.items()}
    out = iogen.generate_all(list(recs.values()), CFG, *sandboxes)
    return {name: r for name, r in zip(recs, out, strict=True)}


def test_numpy_programs_run_in_the_numpy_pool(sandboxes, planted) -> None:
    from codebench.codeio.execute import program

    assert uses_numpy(type("J", (), {"program": program(_rec(PLANTED["numpy"][0], INT))})())
    assert not uses_numpy(type("J", (), {"program": program(_rec(PLANTED["good"][0], INT))})())
    assert all(ex._numpy is not None for ex in sandboxes)  # started by the numpy programs
    pairs = planted["numpy"]["pairs"]
    assert pairs and all(p["output"] == sum(range(p["input"]["n"])) for p in pairs)


@pytest.mark.parametrize("name", list(PLANTED))
def test_planted_function_is_classified(planted, name: str) -> None:
    rec = planted[name]
    expected = PLANTED[name][3]
    assert rec["reason"] == expected, rec
    assert rec["kept"] is (expected is None)


def test_kept_pairs_are_distinct_bounded_and_indexed(planted) -> None:
    rec = planted["good"]
    assert 2 <= len(rec["pairs"]) <= CFG.max_pairs
    assert [p["idx"] for p in rec["pairs"]] == list(range(len(rec["pairs"])))
    assert len({str(p["input"]) for p in rec["pairs"]}) == len(rec["pairs"])
    assert all(p["output"] == p["input"]["n"] ** 2 for p in rec["pairs"])


def test_generation_is_reproducible(sandboxes) -> None:
    recs = [_rec(PLANTED["good"][0], INT)]
    assert iogen.generate_all(recs, CFG, *sandboxes) == iogen.generate_all(recs, CFG, *sandboxes)


def test_input_generator_route(sandboxes) -> None:
    gen = "import random\ndef input_generator():\n    return {'a': random.randint(0, 100), 'b': random.choice('xyz')}\n"
    code = "def main_solution(a, b):\n    return b * (a % 4)\n"
    broken = "def input_generator():\n    return 1 / 0\n"
    other = code.replace("% 4", "% 3")
    out = iogen.generate_all(
        [_rec(code, generator=gen), _rec(other, generator=broken)], CFG, *sandboxes
    )
    assert out[0]["kept"] and len(out[0]["pairs"]) == CFG.max_pairs
    assert out[1]["reason"] == "exception" and "ZeroDivisionError" in out[1]["generator_error"]


def test_budget_caps_slow_functions(sandboxes) -> None:
    slow = "def main_solution(n):\n    s = 0\n    for i in range(3_000_000):\n        s += i\n    return s + n\n"
    cfg = iogen.IOConfig(max_pairs=3, call_budget=6, call_timeout=2.0, function_budget=0.05)
    (rec,) = iogen.generate_all([_rec(slow, INT)], cfg, *sandboxes)
    assert (
        rec["pair_reasons"].get("timeout", 0) >= 4
    )  # later calls refused once the budget is spent


def test_malformed_raw_record_is_a_recorded_reason() -> None:
    with pytest.raises(transform.Reject) as e:
        transform.unify_annotated("def broken(:\n  pass", {"source": "t"})
    assert e.value.reason == "syntax-error"


# --------------------------------------------------------------------------- input prediction


def test_input_predictions_are_re_executed(sandboxes) -> None:
    u = _rec(
        "def main_solution(a, b):\n    if a < 0:\n        raise ValueError('negative')\n    while b == 99:\n        pass\n    return a % 5 + b\n"
    )
    prompt = {
        "fid": u["fid"],
        "idx": 0,
        "direction": "input",
        "input": {"a": 7, "b": 1},
        "output": 3,
    }

    def case(answer: str) -> tuple[dict, dict]:
        return {**prompt, "id": f"{u['fid']}:0:input"}, {
            "text": f'```json\n{{"input": {answer}}}\n```',
            "finish_reason": "stop",
        }

    pairs = [
        case('{"a": 2, "b": 1}'),  # another feasible input: 2 % 5 + 1 == 3
        case('{"a": 7, "b": 1}'),  # the reference input itself
        case('{"a": 4, "b": 1}'),  # feasible shape, wrong output (5)
        case('{"a": -1, "b": 1}'),  # raises
        case('{"a": 0, "b": 99}'),  # never returns
        case('{"a": 1}'),  # wrong keys
        case('{"a": 2, "b": 1.0000001}'),  # output 3.0000001 is within tolerance
    ]
    got = verify_batch(pairs, {u["fid"]: u}, sandboxes[0], VerifyConfig(call_timeout=0.5))
    assert [g["status"] for g in got] == [
        "success",
        "success",
        "wrong",
        "exception",
        "timeout",
        "wrong",
        "success",
    ]
    assert got[2]["actual_output"] == 5 and "ValueError" in got[3]["reason"]


def test_a_passed_call_without_an_output_pair_is_a_failed_call() -> None:
    # a program that forks at import can answer a call in its parent's place with any value
    from types import SimpleNamespace

    from codebench.sandbox.outcome import CallResult, Outcome

    code = "def main_solution(n):\n    return n * 3\n"
    cands = [{"n": i} for i in range(4)]
    honest = [CallResult(Outcome.PASSED, [3 * c["n"], dict(c)]) for c in cands]
    forged = [CallResult(Outcome.PASSED, None), CallResult(Outcome.PASSED, [1, 2, 3])]
    run_a = SimpleNamespace(values=[*forged, *honest[2:]], detail="", outcome="passed")
    run_b = SimpleNamespace(values=list(reversed(honest)), detail="", outcome="passed")
    rec = iogen.analyze(_rec(code), cands, [False] * 4, run_a, run_b, CFG)
    assert rec["n_ok"] == 2 and rec["pair_reasons"] == {"exception": 2}
    assert {p["input"]["n"] for p in rec["pairs"]} <= {2, 3}
