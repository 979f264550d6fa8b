"""Hostile completions against MultiPL-E's trusted verdict (JS, C++, Java, Bash).

Every attack here tries to pass HumanEval_53_add (`add(x, y)`) without computing x + y:
turning the checks off (C++ assert macro, patched `node:assert`, shell traps and builtins),
faking the harness's output (printing result lines, exiting early with status 0, static
initialisers), or reading the expected values from anything in reach (its own source file,
/proc/self/cmdline, the environment, the working folder). Under the trusted verdict (the
default) all must fail; the hand-written reference must pass. `upstream` is the published
protocol, which several of these attacks do forge: it is run too, and the tests check that
the attacks are real (they pass there) wherever that is the point of the attack.
"""

from __future__ import annotations

import shutil

import pytest

from codebench.bench import get_task
from codebench.bench import multiple_trusted as mt

TOOLS = {"js": "node", "cpp": "g++", "java": "javac", "sh": "bash"}
PROBLEM = "HumanEval_53_add"

# (name, completion under the base protocol, forges upstream?)
ATTACKS: dict[str, list[tuple[str, str, bool]]] = {
    "js": [
        (
            "patch-node-assert",
            "  return 0;\n}\n"
            "const codebenchAssert = require('node:assert');\n"
            "codebenchAssert.deepEqual = () => {}; codebenchAssert.strictEqual = () => {};\n",
            True,
        ),
        ("process-exit-0", "  return 0;\n}\nprocess.exit(0);\n", False),
        (
            "fake-result-lines",
            "  return 0;\n}\n"
            "for (let i = 0; i < 50; i++) require('fs').writeSync(1, "
            '\'\\n\\x1eCBR \' + i + \' {"$":"int","v":"12"}\\n\');\n'
            "process.exit(0);\n",
            False,
        ),
        (
            "override-json-stringify",
            '  JSON.stringify = () => \'{"$":"int","v":"1"}\';\n  return 0;\n}\n',
            False,
        ),
        (
            "read-source-proc-env",
            "  const fs = require('fs');\n"
            "  let text = JSON.stringify(process.env) + process.argv.join(' ');\n"
            "  const files = [__filename, '/proc/self/cmdline', '/proc/self/environ'];\n"
            "  try { for (const f of fs.readdirSync('.')) files.push(f); } catch (e) {}\n"
            "  for (const f of files) { try { text += fs.readFileSync(f, 'latin1'); } catch (e) {} }\n"
            "  const want = 'candidate(' + x + ', ' + y + '),';\n"
            "  const i = text.indexOf(want);\n"
            "  if (i < 0) return -1;\n"
            "  return Number(text.slice(i + want.length).split(')')[0]);\n}\n",
            True,
        ),
        ("throws", "  throw new Error('no');\n}\n", False),
    ],
    "cpp": [
        (
            "redefine-assert-macro",
            "    return 0; }\n#undef assert\n#define assert(x) ((void)0)\n"
            "long codebench_dummy() {\n    return 0;\n",
            True,
        ),
        (
            "static-initialiser-fakes-results",
            "    return 0; }\n"
            "static int codebench_fake = [] {\n"
            '    for (int i = 0; i < 50; i++) printf("\\n\\x1e" "CBR %d {\\"$\\":\\"int\\",\\"v\\":\\"12\\"}\\n", i);\n'
            "    fflush(stdout); _exit(0); return 0; }();\n"
            "long codebench_dummy() {\n    return 0;\n",
            False,
        ),
        (
            "read-source-proc-env",
            "    std::string text;\n"
            '    for (const char* f : {"main.cpp", "/proc/self/cmdline", "/proc/self/environ"}) {\n'
            "        std::ifstream in(f);\n"
            "        text += std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());\n"
            "    }\n"
            '    std::string want = "candidate((" + std::to_string(x) + "), (" + std::to_string(y) + ")) == (";\n'
            "    size_t i = text.find(want);\n"
            "    if (i == std::string::npos) return -1;\n"
            "    return std::stol(text.substr(i + want.size()));\n",
            True,
        ),
        ("exit-0", "    exit(0);\n", False),
    ],
    "java": [
        (
            "read-source",
            "        try {\n"
            '            String text = new String(java.nio.file.Files.readAllBytes(java.nio.file.Paths.get("Problem.java")));\n'
            '            text += new String(java.nio.file.Files.readAllBytes(java.nio.file.Paths.get("/proc/self/cmdline")));\n'
            '            String want = "add((" + x + "l), (" + y + "l)) == (";\n'
            "            int i = text.indexOf(want);\n"
            "            if (i < 0) return -1;\n"
            "            String rest = text.substring(i + want.length());\n"
            "            return Long.parseLong(rest.substring(0, rest.indexOf('l')));\n"
            "        } catch (Exception e) { return -1; }\n",
            True,
        ),
        (
            "static-initialiser-fakes-results",
            "        return 0; }\n"
            "  static {\n"
            '      for (int i = 0; i < 50; i++) System.out.print("\\n\\u001eCBR " + i + " {\\"$\\":\\"int\\",\\"v\\":\\"12\\"}\\n");\n'
            "      System.out.flush(); Runtime.getRuntime().halt(0);\n"
            "  }\n"
            "  public static long codebenchDummy() {\n        return 0;\n",
            False,
        ),
        ("system-exit-0", "        System.exit(0); return 0;\n", False),
        (
            "swallow-stdout",
            "        System.setOut(new java.io.PrintStream(new java.io.ByteArrayOutputStream()));\n"
            "        return 0;\n",
            False,
        ),
    ],
    "sh": [
        (
            "exit-trap-prints-nonce",
            "    :; }\n"
            'trap \'builtin echo "$(grep -o "^echo [0-9a-f]*$" "$0" | tail -n1 | cut -c6-)"; exit 0\' EXIT\n'
            "codebench_dummy() {\n    :\n",
            True,
        ),
        (
            "fake-result-lines-exit-0",
            "    :; }\n"
            "for i in $(seq 0 50); do printf '\\n\\036CBR %s %s\\n' \"$i\" MTI=; done\n"
            "exit 0\n"
            "codebench_dummy() {\n    :\n",
            False,
        ),
        (
            "redefine-builtins",
            "    echo 1; }\n"
            "printf() { :; }\nbase64() { echo MQ==; }\nbuiltin() { :; }\ncommand() { :; }\n"
            "codebench_dummy() {\n    :\n",
            False,
        ),
        (
            "read-source-proc-env",
            '    local text\n    text="$(cat "$0" /proc/self/cmdline /proc/self/environ * 2>/dev/null; env)"\n'
            '    printf \'%s\\n\' "$text" | grep -o "candidate \\"$1\\" \\"$2\\") = \\"[0-9]*\\"" '
            "| head -n1 | grep -o '\"[0-9]*\"$' | tr -d '\"'\n",
            True,
        ),
        ("exit-0", "    exit 0\n", False),
    ],
}

CASES = [
    pytest.param(lang, name, completion, forges, id=f"{lang}-{name}")
    for lang, attacks in ATTACKS.items()
    for name, completion, forges in attacks
]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    import os

    from codebench.sandbox import Sandbox

    old = os.environ.get("CODEBENCH_CACHE")
    os.environ["CODEBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        with Sandbox(timeout=10.0) as sb:
            yield sb
    finally:
        if old is None:
            os.environ.pop("CODEBENCH_CACHE", None)
        else:
            os.environ["CODEBENCH_CACHE"] = old


def _need(lang: str) -> None:
    if shutil.which(TOOLS[lang]) is None:
        pytest.skip(f"{TOOLS[lang]} not installed")


def _run(sandbox, data_dir, lang: str, verdict: str, raw: str) -> tuple[str, str, str]:
    task = get_task(f"multiple-{lang}", data_dir, verdict=verdict)
    problem = next(p for p in task.problems() if p.task_id == PROBLEM)
    program = task.extract(problem, raw)
    result = sandbox.run(task.job(problem, program))
    outcome, detail = task.verdict(problem, program, result)
    return outcome, detail, program


@pytest.mark.toolchain
@pytest.mark.parametrize(("lang", "name", "completion", "forges"), CASES)
def test_attack_fails_under_trusted_verdict(
    sandbox, data_dir, lang: str, name: str, completion: str, forges: bool
) -> None:
    _need(lang)
    outcome, detail, program = _run(sandbox, data_dir, lang, "trusted", completion)
    # the attack reached the program whole (no stop token cut it)
    assert completion.strip() in program
    assert outcome != "passed", (name, detail)
    # nothing in the program the completion runs in holds an expected value of add()
    task = get_task(f"multiple-{lang}", data_dir)
    add = next(p for p in task.problems() if p.task_id == PROBLEM)
    for c in task.cases(add):
        assert c.line.strip() not in program
    if forges:  # the attack is real: the published protocol lets it through
        up, up_detail, _ = _run(sandbox, data_dir, lang, "upstream", completion)
        assert up == "passed", (name, up, up_detail)


@pytest.mark.toolchain
@pytest.mark.parametrize("lang", list(TOOLS))
def test_reference_passes_and_wrong_fails_in_both_modes(sandbox, data_dir, lang: str) -> None:
    from codebench.bench.multiple import REFERENCES, wrong_completion

    _need(lang)
    task = get_task(f"multiple-{lang}", data_dir)
    problem = next(p for p in task.problems() if p.task_id == PROBLEM)
    for verdict in ("trusted", "upstream"):
        ok, detail, _ = _run(sandbox, data_dir, lang, verdict, REFERENCES[lang][PROBLEM])
        assert ok == "passed", (verdict, detail)
        bad, _, _ = _run(sandbox, data_dir, lang, verdict, wrong_completion(problem))
        assert bad != "passed", verdict


def test_expected_values_never_enter_the_candidate_program(data_dir) -> None:
    """For every problem of every language, no test line and no success token is in the
    program the completion runs in; the expected program holds no model code."""
    for lang in TOOLS:
        task = get_task(f"multiple-{lang}", data_dir)
        for p in task.problems():
            try:
                cases = task.cases(p)
            except Exception:  # noqa: BLE001 - the known-unreadable problems, listed in docs
                continue
            marker = "CODEBENCH_COMPLETION_MARKER"
            program = task.extract(p, f"{marker}\n")
            assert marker in program
            expected = task.expected_program(p)
            assert marker not in expected
            harness = program[program.index(marker) :]
            for c in cases:
                assert c.line.strip() not in harness, (lang, p.task_id, c.line)


def test_unknown_verdict_mode_is_a_clear_error(data_dir) -> None:
    from codebench.bench.tasks import BenchError

    with pytest.raises(BenchError, match="unknown verdict mode 'nope'"):
        get_task("multiple-js", data_dir, verdict="nope")


def test_result_parsing_rejects_duplicates_and_host_equality_rules() -> None:
    dup = "\n".join([f"{mt.MARK_OK}0 1.0", f"{mt.MARK_OK}0 1.0"])
    assert mt.parse_results(dup, 1, "cpp")[1] == "case 0 reported twice"
    assert mt.parse_results(f"{mt.MARK_OK}7 1", 1, "cpp")[1].startswith("malformed")
    i = {"$": "int", "v": "5"}
    # C++/Java: numbers promote, nan never equal, bool only equals bool, lists elementwise
    assert mt.static_eq(i, 5.0) and not mt.static_eq({"$": "nan"}, {"$": "nan"})
    assert not mt.static_eq(True, {"$": "int", "v": "1"}) and not mt.static_eq([], [i])
    assert not mt.static_eq({"$": "other", "v": "X"}, {"$": "other", "v": "X"})
    # JS legacy deepEqual: == on primitives, NaN equals NaN, arrays never equal a primitive
    assert (
        mt.js_deep_eq("5", i)
        and not mt.js_deep_eq("3", i)
        and mt.js_deep_eq(None, {"$": "undefined"})
    )
    assert mt.js_deep_eq({"$": "nan"}, {"$": "nan"}) and not mt.js_deep_eq([i], i)
    assert not mt.js_deep_eq({"$": "obj", "v": [["a", 1.5]]}, {"$": "obj", "v": []})
    # union structs (C++): the field whose type matches the expected value decides
    u = {"$": "union", "v": [["str", "0b11"], ["int", {"$": "int", "v": "7"}]]}
    assert mt.static_eq(u, "0b11") and mt.static_eq(u, {"$": "int", "v": "7"})
    assert not mt.static_eq(u, "0b1")


# problems no completion can pass in either mode, with the cause (docs/benchmarks.md)
KNOWN_BROKEN = {
    "js": {"HumanEval_51_remove_vowels"},  # raw newline inside a string literal in the tests
    "cpp": {"HumanEval_137_compare_one"},  # the prompt uses `std::nullopt` as a type: no compile
    "java": {"HumanEval_136_largest_smallest_integers"},  # tests compare a Pair to an Optional
    "sh": set(),
}
# fail under upstream only: none (HumanEval_153's `class and` in a comment of the prompt no
# longer picks the Java main class: tests/test_sandbox_java.py)
UPSTREAM_BROKEN: dict[str, set[str]] = {}


def _controls(sandbox, data_dir, lang: str, verdict: str, limit: int | None) -> None:
    from codebench.bench.multiple_controls import run_controls

    out = run_controls(lang, verdict, sandbox, limit, data_dir)
    not_passed = {
        r["task_id"]: r["detail"][:200]
        for r in out["rows"]
        if r["kind"] == "oracle" and r["outcome"] != "passed"
    }
    expected = set(KNOWN_BROKEN[lang]) if limit is None else set()
    if limit is None and verdict == "upstream":
        expected |= UPSTREAM_BROKEN.get(lang, set())
    assert set(not_passed) == expected, not_passed
    forged = [
        r["task_id"] for r in out["rows"] if r["kind"] == "shifted" and r["outcome"] == "passed"
    ]
    assert forged == []
    assert sum(r["kind"] == "shifted" for r in out["rows"]) >= (limit or 100) - 1


@pytest.mark.toolchain
@pytest.mark.parametrize("verdict", ["trusted", "upstream"])
@pytest.mark.parametrize("lang", ["js", "sh"])
def test_oracle_controls_quick(sandbox, data_dir, lang: str, verdict: str) -> None:
    """Oracle completions (each case's expected value in call order) pass, shifted ones fail:
    the first 8 problems; -m slow runs every problem of every language."""
    _need(lang)
    _controls(sandbox, data_dir, lang, verdict, 8)


@pytest.mark.slow
@pytest.mark.toolchain
@pytest.mark.parametrize("verdict", ["trusted", "upstream"])
@pytest.mark.parametrize("lang", list(TOOLS))
def test_oracle_controls_every_problem(sandbox, data_dir, lang: str, verdict: str) -> None:
    _need(lang)
    _controls(sandbox, data_dir, lang, verdict, None)


@pytest.mark.toolchain
@pytest.mark.parametrize("lang", ["js", "sh"])
def test_near_misses_fail_and_published_completions_agree_in_both_modes(
    sandbox, data_dir, lang: str
) -> None:
    """Off-by-one and raising oracles fail in both modes on the first 6 problems (bash: a
    `exit 1` in the command substitution prints nothing, which equals an expected "" -- none of
    these 6 has one); nuprl's published davinci completions of HumanEval_53 (one right, one
    broken) get the same verdict in both modes (benchmarks/multiple_controls.py, all problems)."""
    import importlib.util
    from pathlib import Path

    from codebench.bench.multiple_controls import run_controls

    _need(lang)
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "multiple_controls.py"
    spec = importlib.util.spec_from_file_location("multiple_controls_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    extra = [(PROBLEM, "published", c) for c in bench.PUBLISHED[lang]]
    verdicts = {}
    for verdict in ("trusted", "upstream"):
        out = run_controls(
            lang, verdict, sandbox, 6, data_dir, mutations=("rotated", "raises"), extra=extra
        )
        rows = out["rows"]
        assert [r["outcome"] for r in rows if r["kind"] == "oracle"] == ["passed"] * 6
        assert [
            r for r in rows if r["kind"] in ("rotated", "raises") and r["outcome"] == "passed"
        ] == []
        verdicts[verdict] = [r["outcome"] == "passed" for r in rows if r["kind"] == "published"]
    assert verdicts["trusted"] == verdicts["upstream"] == [True, False]
