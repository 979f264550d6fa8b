"""Hostile completions on every Python path of 04_evaluate, by attack class, mixed with honest ones.

Each attack is one line of Python put where the benchmark's own wrong answer says
`return None` (`task.wrong(problem)`), so the same attack reaches every protocol: a HumanEval
or FIM body line, a whole MBPP / instruct program, a PAL `solution()`. The samples go through
04_evaluate's scoring path (`runner._score_units`: extraction, the task's job, the sandbox, the
task's trusted verdict), every attack followed by the reference solution of the same problem
on the same pool. Decided by outcome only (never by timing):

* no attack passes (0 false passes);
* every reference passes, wherever it ran among the attacks (no honest verdict changed by
  another sample) and the run finishes (no abort, no stall);
* model-controlled text (details) is stored as valid UTF-8.

The quick subset (one problem per benchmark, the fast attacks) runs by default; `-m slow` runs
three problems per benchmark and every attack.
"""

from __future__ import annotations

import json
import os

import pytest

from codebench.bench import get_task
from codebench.bench.runner import _score_units, _Unit

# attack class -> one statement line that ends by returning (or never returns)
FORGED = (
    "type('F', (), {'__eq__': lambda s, o: True, '__ne__': lambda s, o: False, "
    "'__hash__': lambda s: 0, '__bool__': lambda s: True, '__len__': lambda s: 1, "
    "'__lt__': lambda s, o: True, '__gt__': lambda s, o: True, '__float__': lambda s: 0.0, "
    "'__int__': lambda s: 0, '__index__': lambda s: 0, '__abs__': lambda s: 0, "
    "'__sub__': lambda s, o: 0, '__rsub__': lambda s, o: 0, '__round__': lambda s, n=0: 0})()"
)
ATTACKS = {
    # forging a comparison
    "eq-object": f"return {FORGED}",
    "eq-int-subclass": "return type('I', (int,), {'__eq__': lambda s, o: True, "
    "'__hash__': lambda s: 0})(0)",
    "eq-str-subclass": "return type('S', (str,), {'__eq__': lambda s, o: True, "
    "'__hash__': lambda s: 0})('x')",
    # leaving early / ending the tests
    "os-exit-0": "import os; os._exit(0)",
    "system-exit-0": "raise SystemExit(0)",
    "stop-iteration": "raise StopIteration",
    "keyboard-interrupt": "raise KeyboardInterrupt",
    # faking success on stdout
    "fd1-write": "import os; os.write(1, b'passed\\nOK\\n' * 1000); return None",
    "huge-output": "import sys; sys.stdout.write('x' * (1 << 24)); sys.stdout.flush(); return None",
    # reaching the trusted side
    "builtins-patch": "import builtins; builtins.all = lambda *a: True; "
    "builtins.isinstance = lambda *a: True; builtins.abs = lambda x: 0; "
    "builtins.AssertionError = type('E', (BaseException,), {}); return None",
    "frames-and-gc": "import sys, gc; [d.update(AssertionError=Warning, check=lambda *a: None) "
    "for d in gc.get_objects() if isinstance(d, dict)]; "
    "sys._getframe().f_back and sys._getframe().f_back.f_globals.update(AssertionError=Warning); "
    "return None",
    "environ-tokens": "import os; return open('/proc/self/environ', 'rb').read().decode() + "
    "open('/proc/1/cmdline', 'rb').read().decode() + repr(dict(os.environ))",
    # hurting the worker / other samples
    "kill-parent": "import os; [os.kill(p, 9) for p in (os.getppid(), 1)]; return None",
    "lower-limits": "import os, resource; [resource.prlimit(p, r, (1, 1)) for p in "
    "(os.getppid(), 1) for r in (resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC, "
    "resource.RLIMIT_AS)]; return None",
    "fork-bomb": "import os; [os.fork() for _ in range(9)]; return None",
    "sleeping-child": "import os, time; os.fork() == 0 and time.sleep(120); return None",
    # text the host must store
    "surrogate-error": "raise ValueError('\\ud800 \\x00 \\udfff' * 1000)",
    "surrogate-value": "return '\\ud800\\x00'",
}
SLOW_ATTACKS = {
    "sleep-forever": "import time; time.sleep(10 ** 6)",
    "loop-forever": "while True: pass",
    "hash-collisions": "return {k * (2 ** 61 - 1) for k in range(3000)}",
    "memory-hog": "return bytearray(1 << 34)",
}
QUICK = (
    "eq-object",
    "eq-int-subclass",
    "os-exit-0",
    "stop-iteration",
    "fd1-write",
    "builtins-patch",
    "frames-and-gc",
    "environ-tokens",
    "kill-parent",
    "lower-limits",
    "sleeping-child",
    "surrogate-error",
)
SPECS = [
    "humaneval",
    "humaneval:instruct",
    "mbpp",
    "mbpp:instruct",
    "pyfamilies",
    "fim",
    "fim:multi-line",
    "pal-gsm8k",
    "pal-svamp",
]


def _procs_of(uids: set[int]) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid in uids:
                    out.append(int(name))
            except OSError:
                continue
    return out


@pytest.fixture(scope="module")
def sandbox():
    from codebench.sandbox import Sandbox

    with Sandbox(workers=2, timeout=3.0) as sb:
        uids = {w.lease.uid for w in sb._workers if w.lease.uid is not None}
        assert uids or os.geteuid() != 0
        yield sb
    # no residue: fork bombs, sleeping children and killed workers leave no process behind
    assert _procs_of(uids) == []


def _task(spec: str, data_dir):
    task = get_task(spec, data_dir)
    if spec == "fim":
        from codebench.models import FimTokens

        task.tokens = FimTokens("<pre>", "<suf>", "<mid>")
    return task


def _problems(task, n: int) -> list:
    if task.spec.startswith("fim"):  # middles that are a `return` line: any statement fits there
        return [p for p in task.problems() if task.reference(p).strip().startswith("return ")][:n]
    return [p for p in task.problems() if task.reference(p) is not None][:n]  # PAL: some have none


def _attack_raw(task, problem, line: str) -> str:
    if task.spec.startswith("fim"):
        ref = task.reference(problem)
        return ref[: len(ref) - len(ref.lstrip())] + line + "\n"
    wrong = task.wrong(problem)
    for stub in ("return -123456789.25", "return None"):
        if stub in wrong:
            return wrong.replace(stub, line, 1)
    raise AssertionError(f"{task.spec}: no stub line in {wrong!r}")


def _run(spec: str, attacks: dict[str, str], n_problems: int, data_dir, sandbox) -> None:
    task = _task(spec, data_dir)
    units, labels = [], []
    for p in _problems(task, n_problems):
        for name, line in attacks.items():
            units.append(_Unit(p, len(units), _attack_raw(task, p, line)))
            labels.append(("attack", name, p.task_id))
            units.append(_Unit(p, len(units), task.reference(p)))  # honest, right after
            labels.append(("honest", name, p.task_id))
    assert units, f"{spec}: no problems"
    scored = _score_units(task, units, sandbox)
    # the attacks ran: not every one stopped at a syntax or extraction error
    ran = [det for lab, (_, _, _, det, _) in zip(labels, scored, strict=True) if lab[0] == "attack"]
    assert sum("SyntaxError" in d or "extraction error" in d for d in ran) < len(ran) / 4, ran
    false_passes = [
        lab
        for lab, (_, _, oc, _, _) in zip(labels, scored, strict=True)
        if lab[0] == "attack" and oc == "passed"
    ]
    changed = [
        (lab, oc, det[:200])
        for lab, (_, _, oc, det, _) in zip(labels, scored, strict=True)
        if lab[0] == "honest" and oc != "passed"
    ]
    assert false_passes == [], f"{spec}: attacks passed: {false_passes}"
    assert changed == [], f"{spec}: honest samples failed after attacks: {changed}"
    for _, _, oc, det, _ in scored:
        json.dumps(det, ensure_ascii=False).encode("utf-8")  # storable as UTF-8
        assert oc in {"passed", "failed", "timeout", "crashed", "out-of-memory"}, (oc, det)


@pytest.mark.parametrize("spec", SPECS)
def test_quick_attacks_fail_and_references_pass_on_every_path(spec, data_dir, sandbox) -> None:
    _run(spec, {k: ATTACKS[k] for k in QUICK}, 1, data_dir, sandbox)


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS)
def test_every_attack_on_every_path(spec, data_dir, sandbox) -> None:
    _run(spec, {**ATTACKS, **SLOW_ATTACKS}, 3, data_dir, sandbox)


# --------------------------------------------------------------------------- 01: I/O generation
# In 01_build_data the functions themselves are untrusted (scraped or model-transformed code).
HOSTILE_FUNCTIONS = {
    "lower-limits": "import os, resource\ndef main_solution(n):\n"
    "    for p in (os.getppid(), 1):\n        try:\n"
    "            resource.prlimit(p, resource.RLIMIT_NOFILE, (3, 3))\n"
    "        except OSError:\n            pass\n    return n\n",
    "kill-worker": "import os\ndef main_solution(n):\n    for p in (os.getppid(), 1):\n"
    "        try:\n            os.kill(p, 9)\n        except OSError:\n            pass\n"
    "    return n + 1\n",
    "os-exit": "import os\ndef main_solution(n):\n    os._exit(0)\n",
    "sleeping-child": "import os, time\ndef main_solution(n):\n"
    "    if os.fork() == 0:\n        time.sleep(120)\n    return n * 2\n",
    "surrogates": "def main_solution(n):\n    return '\\ud800' * n + '\\x00'\n",
    "huge-output": "import sys\ndef main_solution(n):\n    sys.stdout.write('x' * (1 << 22))\n"
    "    return [0] * (1 << 22)\n",
    "eq-object": "class F:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n"
    "def main_solution(n):\n    return F()\n",
    "load-bomb": "import os\n[os.fork() for _ in range(9)]\ndef main_solution(n):\n    return n\n",
}
HONEST_FUNCTIONS = [
    "def main_solution(n):\n    return n * 3 + 1\n",
    "def main_solution(n):\n    return [n % 7, n // 7]\n",
    "def main_solution(n):\n    return str(n)[::-1]\n",
]


QUICK_FUNCTIONS = ("lower-limits", "kill-worker", "os-exit", "surrogates", "eq-object")


@pytest.mark.parametrize(
    "names",
    [
        pytest.param(QUICK_FUNCTIONS, id="quick"),
        pytest.param(tuple(HOSTILE_FUNCTIONS), id="all", marks=pytest.mark.slow),
    ],
)
def test_io_generation_hostile_functions_change_no_honest_record(tmp_path, names) -> None:
    from codebench.codeio import iogen, stages
    from codebench.codeio.execute import SandboxExecutor
    from codebench.codeio.records import unified_record

    spec = {"type": "kwargs", "params": {"n": {"type": "int", "lo": 0, "hi": 50}}}

    def rec(code: str) -> dict:
        return unified_record(
            refcode=code, problem="p", io_requirements="r", origin={"source": "t"}, input_spec=spec
        )

    cfg = iogen.IOConfig(max_pairs=3, min_pairs=2, call_budget=6, call_timeout=0.5, chunk=64)
    honest = [rec(c) for c in HONEST_FUNCTIONS]
    hostile = [rec(HOSTILE_FUNCTIONS[n]) for n in names]
    mixed = [x for pair in zip(hostile, [*honest, *honest, *honest], strict=False) for x in pair]
    with SandboxExecutor(workers=2, timeout=0.5, memory_mb=1024) as ex:
        alone = {r["fid"]: r for r in stages.run_iogen(honest, cfg, tmp_path / "alone", ex)}
        got = stages.run_iogen([*hostile, *honest, *mixed], cfg, tmp_path / "mixed", ex)
    by_fid = {r["fid"]: r for r in got}
    assert len(by_fid) == len(hostile) + len(honest)  # every function has a record: no abort
    for u in honest:
        a, b = alone[u["fid"]], by_fid[u["fid"]]
        assert a["kept"] and b["kept"], (a, b)
        assert a["pairs"] == b["pairs"]  # the same pairs as when run alone
    for name, u in zip(names, hostile, strict=True):
        r = by_fid[u["fid"]]
        assert r["reason"] != "sandbox-error", (name, r)  # its own failure, never ours
        json.dumps(r, ensure_ascii=False).encode("utf-8", "surrogatepass")
        if name in ("os-exit", "eq-object"):
            assert not r["kept"], (name, r)


# --------------------------------------------------------------------------- custom JSONL
@pytest.fixture(scope="module")
def custom_spec(tmp_path_factory) -> str:
    """A custom benchmark file built from three HumanEval problems (check-style tests) and one
    MBPP-style problem (assert lines), each with its reference."""
    from codebench.sandbox.problems import load_humaneval

    he = load_humaneval()
    rows = [
        {
            "task_id": f"c/{t.split('/')[1]}",
            "prompt": he[t]["prompt"],
            "tests": he[t]["test"],
            "entry_point": he[t]["entry_point"],
            "reference": he[t]["canonical_solution"],
        }
        for t in ("HumanEval/0", "HumanEval/2", "HumanEval/4")
    ]
    rows.append(
        {
            "task_id": "c/asserts",
            "prompt": 'def add(a, b):\n    """Return a + b."""\n',
            "tests": ["assert add(2, 3) == 5", "assert add(-1, 1) == 0"],
            "reference": "    return a + b\n",
        }
    )
    f = tmp_path_factory.mktemp("custom") / "hostile.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return f"custom:{f}"


@pytest.mark.parametrize("protocol", ["base", "instruct"])
def test_custom_jsonl_attacks_fail_and_references_pass(
    custom_spec, protocol, data_dir, sandbox
) -> None:
    attacks = {k: ATTACKS[k] for k in QUICK}
    _run(f"{custom_spec}:{protocol}", attacks, 4, data_dir, sandbox)


# --------------------------------------------------------------------------- the playground
@pytest.mark.parametrize("bench_name", ["humaneval", "mbpp"])
def test_playground_run_tests_attacks_fail_and_references_pass(
    bench_name, data_dir, sandbox
) -> None:
    """The playground's "Run tests" (ProblemRunner.run_tests, its own entry point into the
    sandbox) on the quick attacks; each verdict shown in the widget is escaped HTML."""
    from codebench.playground import Playground, ProblemRunner

    runner = ProblemRunner(data_dir, sandbox_factory=lambda: sandbox)
    task = runner.task(bench_name)
    problem = task.problems(1)[0]
    pid = problem.task_id
    for name in QUICK:
        raw = _attack_raw(task, problem, ATTACKS[name])
        v = runner.run_tests(bench_name, pid, raw, "complete")
        assert v["outcome"] != "passed", (name, v)
        json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")
        honest = runner.run_tests(bench_name, pid, task.reference(problem), "complete")
        assert honest["outcome"] == "passed", (name, honest)
    # odd bytes and markup in a verdict reach the widget escaped, without an exception
    pg = Playground(problems=runner)
    pg.bench.value = bench_name
    pg.problem.value = pid
    pg.mode.value = "complete"
    pg.last_output = _attack_raw(
        task, problem, "raise ValueError('<script>alert(1)</script> \\ud800 \\x00')"
    )
    v = pg.on_run_tests()
    assert v is not None and v["outcome"] != "passed"
    assert "<script>" not in pg.verdict.value and "&lt;script&gt;" in pg.verdict.value
