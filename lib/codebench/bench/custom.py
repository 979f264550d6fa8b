"""Custom benchmarks: any JSONL of problems with a prompt, tests and an entry point.

Spec: `custom:path/to/file.jsonl` (base protocol) or `custom:path/to/file.jsonl:instruct`.
One JSON object per line (format in docs/benchmarks.md, example in
examples/custom_benchmark.jsonl):

    task_id      optional, default "<file stem>/<line number>"
    prompt       required: the text the model continues (base) or completes (instruct)
    tests        required: Python test code that defines `check(candidate)` (HumanEval style),
                 or assert lines (a string or a list of strings, MBPP style); for other
                 languages, code appended after the completion in MultiPL-E's layout, one
                 `f(args) == expected` check per line: each call's result is serialised in
                 the sandbox and compared on the host with the expected value computed by a
                 program without model code (option verdict="upstream": the whole program
                 runs and must exit 0, which a completion can forge)
    entry_point  the function under test (required for check-style tests)
    language     python (default), js, cpp, java, sh
    stop         stop strings for the base protocol (Python default: HumanEval's set)
    reference    optional known-good completion (text after the prompt) -- the canaries
                 need at least one; `canonical_solution` is accepted as an alias. Without
                 any, the canaries cannot run: the evaluation refuses to report a score
                 (say so with canaries off, `evaluate.canaries: false` / `--canaries off`)

DeepSeek-Coder's LeetCode shape is accepted as it is (see `codebench.bench.leetcode`): a
`class Solution` prompt (its last line of indentation is dropped from the base prompt), `test`
as an alias of `tests` with `my_solution = Solution()` and asserts on its methods (run on the
trusted side through handles to the sandboxed object), `prompt_sft` as the instruct message,
and the reference harness's import header (`from typing import *`, ...) in front of the program.
A reference for such a problem is the method body, indented for the class.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from codebench.bench import leetcode
from codebench.bench import multiple_trusted as trusted
from codebench.bench.extract import extract_fenced, truncate_at_stops
from codebench.bench.humaneval import BASE_STOPS, python_program
from codebench.bench.multiple import LANGUAGES, function_body, java_offline
from codebench.bench.tasks import (
    BenchError,
    Problem,
    Task,
    fenced,
    python_header,
    read_problem_lines,
    register,
)

LANGS = ("python", *LANGUAGES)
CLOSING = {"python": "", "js": "", "cpp": "}\n", "java": "    }\n}\n", "sh": "}\n"}


# Trusted wrapper around the function under test: an exception that steers iteration
# (StopIteration ends `map`/`filter` early, so `assert all(map(candidate, xs))` would pass) is
# turned into a RuntimeError before it reaches the tests.
GUARD = """
def _codebench_guard(f):
    def _guarded(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except (StopIteration, StopAsyncIteration, GeneratorExit) as e:
            raise RuntimeError(f"the function under test raised {type(e).__name__}") from None
    return _guarded
"""


def _is_stub(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A function with nothing but a docstring / pass / ... (the model is to write it)."""
    for st in fn.body:
        if isinstance(st, ast.Pass):
            continue
        if isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant):
            continue  # docstring or ...
        return False
    return True


def trusted_prelude(prompt: str, entry_point: str | None) -> str:
    """The prompt's code that runs on the trusted side: imports, constants and helper functions
    it defines in full. The function under test and stubs the model is to write are left out
    (the tests get proxies for those)."""
    for source in (prompt, python_header(prompt, entry_point) if entry_point else ""):
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        lines = source.split("\n")
        drop: set[int] = set()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
                node.name == entry_point or _is_stub(node)
            ):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                drop.update(range(first - 1, node.end_lineno or node.lineno))
        return "\n".join(ln for i, ln in enumerate(lines) if i not in drop)
    return ""


def asserts_entry_point(prompt: str, tests: str) -> str | None:
    """For assert-style tests without an entry_point: the last function the prompt defines
    that the tests use (called or passed by name)."""
    try:
        defs = [
            n.name
            for n in ast.parse(prompt).body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
    except SyntaxError:
        defs = re.findall(r"^def\s+(\w+)\s*\(", prompt, re.M)
    used = set(re.findall(r"\b\w+\b", tests))
    named = [d for d in defs if d in used]
    return named[-1] if named else None


def _problem(obj: Any, where: str, stem: str, lineno: int) -> Problem:
    if not isinstance(obj, dict):
        raise BenchError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "prompt" not in obj:
        raise BenchError(f"{where}: missing required field 'prompt'")
    if "tests" not in obj and "test" not in obj:
        raise BenchError(f"{where}: missing required field 'tests' (or 'test')")
    if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
        raise BenchError(f"{where}: 'prompt' must be a non-empty string")
    tests = obj["tests"] if "tests" in obj else obj["test"]
    if isinstance(tests, list):
        if not all(isinstance(t, str) for t in tests):
            raise BenchError(f"{where}: 'tests' as a list must hold strings")
        tests = "\n".join(t.strip() for t in tests) + "\n"
    if not isinstance(tests, str) or not tests.strip():
        raise BenchError(f"{where}: 'tests' must be a non-empty string or list of strings")
    lang = obj.get("language", "python")
    if lang not in LANGS:
        raise BenchError(f"{where}: unknown language {lang!r} (known: {', '.join(LANGS)})")
    ep = obj.get("entry_point")
    check_style = lang == "python" and "def check(" in tests
    if check_style and not ep:
        raise BenchError(f"{where}: 'entry_point' is required when tests define check(candidate)")
    stop = obj.get("stop", BASE_STOPS if lang == "python" else [])
    if not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise BenchError(f"{where}: 'stop' must be a list of strings")
    ref = obj.get("reference", obj.get("canonical_solution"))
    if ref is not None and not isinstance(ref, str):
        raise BenchError(f"{where}: 'reference' must be a string")
    meta: dict[str, Any] = {"check_style": check_style, "line": lineno}
    if lang == "python" and not check_style and leetcode.is_leetcode_shape(obj["prompt"], tests):
        sft = obj.get("prompt_sft")
        if sft is not None and (not isinstance(sft, str) or not sft.strip()):
            raise BenchError(f"{where}: 'prompt_sft' must be a non-empty string")
        meta.update(leetcode=True, prompt_sft=sft)
        ep = ep or leetcode.method_name(obj["prompt"])
        if ref is not None and ref[:1] not in (" ", "\t", "\n"):  # written after the indentation
            tail = obj["prompt"][len(leetcode.base_prompt(obj["prompt"])) :]
            ref = tail + ref
    return Problem(
        task_id=str(obj.get("task_id") or f"{stem}/{lineno}"),
        prompt=obj["prompt"],
        language=lang,
        entry_point=ep,
        tests=tests,
        stop=list(stop),
        reference=ref,
        meta=meta,
    )


def read_custom(path: str | Path) -> list[Problem]:
    """Problems of a custom JSONL; errors name file, line and field."""
    p = Path(path)
    if not p.is_file():
        raise BenchError(f"custom benchmark file not found: {p}")
    return read_problem_lines(p, lambda row, where, lineno: _problem(row, where, p.stem, lineno))


@register("custom")
class Custom(Task):
    """A user JSONL benchmark (see module doc)."""

    name = "custom"
    protocols = ("base", "instruct")
    canary_count = 3

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        if not self.options.get("path"):
            raise BenchError("custom benchmark needs a path: 'custom:path/to/file.jsonl'")
        self.path = Path(self.options["path"]).expanduser().resolve()
        self.verdict_mode = str(self.options.get("verdict") or "trusted")
        if self.verdict_mode not in ("trusted", "upstream"):
            raise BenchError(
                f"custom: unknown verdict mode {self.verdict_mode!r} (known: trusted, upstream)"
            )
        self._pending: dict[str, Problem] = {}

    @property
    def spec(self) -> str:
        return f"custom:{self.path}:{self.protocol}"

    def info(self) -> dict[str, Any]:
        return {**super().info(), "path": str(self.path), "verdict": self.verdict_mode}

    def _trusted(self, problem: Problem) -> bool:
        return problem.language != "python" and self.verdict_mode == "trusted"

    def data_files(self) -> list[Path]:
        return [self.path]

    def load(self) -> list[Problem]:
        problems = read_custom(self.path)
        if self.verdict_mode == "trusted":
            for p in problems:
                if p.language == "python":
                    continue
                try:
                    trusted.parse_tests(p.language, p.tests, p.entry_point)
                except BenchError as e:
                    raise BenchError(
                        f"{self.path}:{p.meta['line']}: {p.language} tests must be one "
                        f"`f(args) == expected` check per line, MultiPL-E style, for a trusted "
                        f"verdict ({e}); with option verdict='upstream' they run as one program "
                        "that must exit 0, which a completion can forge"
                    ) from None
        return problems

    def prompt(self, problem: Problem, chat=None) -> str:
        if self.protocol == "base" and problem.meta.get("leetcode"):
            return leetcode.base_prompt(problem.prompt)
        return super().prompt(problem, chat)

    def messages(self, problem: Problem) -> list[dict]:
        if problem.meta.get("prompt_sft"):
            return [{"role": "user", "content": problem.meta["prompt_sft"]}]
        tag = "python" if problem.language == "python" else LANGUAGES[problem.language]["fence"]
        content = (
            f"Complete the following code. Reply with the whole function in one ```{tag} code block.\n\n"
            f"```{tag}\n{problem.prompt.strip()}\n```"
        )
        return [{"role": "user", "content": content}]

    def extract(self, problem: Problem, raw: str) -> str:
        lang = problem.language
        if problem.meta.get("leetcode"):
            if self.protocol == "base":
                return leetcode.base_program(problem.prompt, raw)
            return leetcode.instruct_program(self._class_code(problem), raw)
        if lang == "python":
            if self.protocol == "base":
                return problem.prompt + truncate_at_stops(
                    raw, problem.stop, language="python", prefix=problem.prompt
                )
            return python_program(problem, extract_fenced(raw, "python", problem.entry_point))
        if self.protocol == "base":
            body = truncate_at_stops(raw, problem.stop, language=lang, prefix=problem.prompt)
        else:
            code = extract_fenced(raw, lang, problem.entry_point)
            inner = function_body(code, problem.entry_point, lang) if problem.entry_point else None
            body = (
                code
                if inner is None
                else inner.strip("\n") + "\n" + ("" if LANGUAGES[lang]["tests_close"] else "}\n")
            )
        if self._trusted(problem):
            program = trusted.candidate_program(
                lang, problem.prompt, body, problem.tests, problem.entry_point
            )
        else:
            program = problem.prompt + body + "\n" + problem.tests
        return java_offline(program) if lang == "java" else program

    @staticmethod
    def _class_code(problem: Problem) -> str:
        """The code the instruct answer completes (LeetCode shape): prompt_sft's fenced class,
        else the prompt's."""
        sft = problem.meta.get("prompt_sft")
        return leetcode.class_code(sft) if sft else leetcode.base_prompt(problem.prompt).strip()

    def _expected_program(self, problem: Problem) -> str:
        program = trusted.expected_program(
            problem.language, problem.prompt, problem.tests, problem.entry_point
        )
        return java_offline(program) if problem.language == "java" else program

    def verdict(self, problem: Problem, program: str, result) -> tuple[str, str]:
        if not self._trusted(problem):
            return super().verdict(problem, program, result)
        from codebench.bench.multiple import _EXPECTED

        cases = trusted.parse_tests(problem.language, problem.tests, problem.entry_point)
        if self._pending:
            batch = [
                (
                    p.language,
                    len(trusted.parse_tests(p.language, p.tests, p.entry_point)),
                    self._expected_program(p),
                )
                for p in self._pending.values()
            ]
            self._pending.clear()
            _EXPECTED.prepare(batch)
        values, why = _EXPECTED.get(problem.language, len(cases), self._expected_program(problem))
        if values is None:
            if why.startswith(trusted.BROKEN):
                return "failed", f"expected values unavailable: {why}"
            return "sandbox-error", f"expected values unavailable: {why}"
        return trusted.compare(problem.language, cases, values, result)

    def job(self, problem: Problem, program: str):
        from codebench.sandbox import ProgramJob, TestsJob

        if problem.meta.get("leetcode"):
            return leetcode.job(problem.tests, program)
        if self._trusted(problem):
            self._pending[problem.task_id] = problem
            return ProgramJob(program=program, language=problem.language)
        if problem.language != "python":
            return ProgramJob(program=program, language=problem.language, nonce=True)
        ep = problem.entry_point
        if problem.meta["check_style"]:
            return TestsJob(
                program=program,
                tests=f"{GUARD}\n{problem.tests}\n\ncheck(_codebench_guard({ep}))\n",
                entry_point=ep,
                prelude=trusted_prelude(problem.prompt, ep),
            )
        ep = ep or asserts_entry_point(problem.prompt, problem.tests)
        if ep is None:
            return TestsJob(program=program, tests=problem.tests, entry_point=None)
        # the function under test is named explicitly, so `filter(is_even, xs)` (passed by name,
        # never called in the tests) gets a proxy too; it is wrapped by the guard first
        return TestsJob(
            program=program,
            tests=f"{GUARD}\n{ep} = _codebench_guard({ep})\n{problem.tests}",
            entry_point=ep,
            prelude=trusted_prelude(problem.prompt, ep),
        )

    def reference(self, problem: Problem) -> str | None:
        if problem.reference is None:
            return None
        if self.protocol == "base":
            return problem.reference
        if problem.meta.get("leetcode"):
            return fenced(leetcode.base_prompt(problem.prompt) + problem.reference.lstrip("\n"))
        tag = "python" if problem.language == "python" else LANGUAGES[problem.language]["fence"]
        return fenced(problem.prompt + problem.reference + CLOSING[problem.language], tag)

    def wrong(self, problem: Problem) -> str:
        if problem.meta.get("leetcode"):
            body = leetcode.wrong_body()
            if self.protocol == "base":
                return body
            return fenced(leetcode.base_prompt(problem.prompt) + body)
        if problem.language == "python":
            body = "    return None  # codebench-wrong\n"
            if self.protocol == "base":
                return body
            return fenced(f"def {problem.entry_point or 'solution'}(*args, **kwargs):\n{body}")
        from codebench.bench.multiple import wrong_completion

        w = wrong_completion(problem)
        if self.protocol == "base":
            return w
        return fenced(
            problem.prompt + w + CLOSING[problem.language], LANGUAGES[problem.language]["fence"]
        )
