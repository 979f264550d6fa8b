"""HumanEval-X / MultiPL-E in JavaScript, C++, Java and Bash (data_dir/humaneval-x/).

base      the model continues the translated prompt; the completion is cut at the problem's
          own `stop_tokens` (outside string literals and comments); program = prompt +
          completion + tests. The tests open with the closing brace of the function where the
          stop token removed it (C++, Java, Bash), as MultiPL-E lays them out.
instruct  the prompt in a chat message; from the fenced block, the body of the function named
          like the prompt's is cut out by brace matching (literal-aware) and put into the
          prompt, so the tests run against exactly the prompt's signature.

Verdicts (task option `verdict`):

trusted   (default) the test program is parsed into cases (`candidate(ARGS) == EXPECTED`, one
          per line); the sandbox runs prompt + completion + a harness that serialises the
          function's result on each case's arguments, and the host compares them with expected
          values computed by a separate program holding no model code (`multiple_trusted`).
          Nothing the completion can reach holds an expected value or a success token.
upstream  MultiPL-E's own protocol, for comparison with published numbers: the whole program
          (prompt + completion + assert lines) runs in the sandbox with a nonce trailer; a pass
          needs exit status 0 and the nonce. A completion that redefines `assert`, patches
          `node:assert`, redefines shell builtins or reads its own source can forge a pass. Java: the data imports
`org.javatuples.*` (a jar DeepSeek-Coder ships); offline, codebench strips that import and
appends a small source-compatible `Pair` (the only tuple class the tests use), see JAVA_PAIR.
MultiPL-E has no reference solutions; the canaries use the hand-written ones in REFERENCES.
"""

from __future__ import annotations

import re
from pathlib import Path

from codebench.bench import multiple_trusted as trusted
from codebench.bench.extract import extract_fenced, literal_spans, truncate_at_stops
from codebench.bench.tasks import BenchError, Problem, Task, read_rows, register

LANGUAGES: dict[str, dict] = {
    "js": {
        "file": "humaneval-js.jsonl",
        "full": "JavaScript",
        "fence": "javascript",
        "tests_close": False,
    },
    "cpp": {"file": "humaneval-cpp.jsonl", "full": "C++", "fence": "cpp", "tests_close": True},
    "java": {"file": "humaneval-java.jsonl", "full": "Java", "fence": "java", "tests_close": True},
    "sh": {"file": "humaneval-sh.jsonl", "full": "Bash", "fence": "bash", "tests_close": True},
}

# Hand-written correct completions (base protocol: the text after the prompt) for canaries and
# tests. Keys are MultiPL-E problem names.
REFERENCES: dict[str, dict[str, str]] = {
    "js": {
        "HumanEval_23_strlen": "  return string.length;\n}\n",
        "HumanEval_53_add": "  return x + y;\n}\n",
        "HumanEval_13_greatest_common_divisor": "  while (b !== 0) { const t = a % b; a = b; b = t; }\n  return a;\n}\n",
    },
    "cpp": {
        "HumanEval_23_strlen": "    return string.size();\n",
        "HumanEval_53_add": "    return x + y;\n",
        "HumanEval_13_greatest_common_divisor": "    while (b != 0) { long t = a % b; a = b; b = t; }\n    return a;\n",
    },
    "java": {
        "HumanEval_23_strlen": "        return string.length();\n",
        "HumanEval_53_add": "        return x + y;\n",
        "HumanEval_8_sum_product": (
            "        long s = 0, p = 1;\n"
            "        for (long x : numbers) { s += x; p *= x; }\n"
            "        return Pair.with(s, p);\n"
        ),
    },
    "sh": {
        "HumanEval_23_strlen": '    echo "${#1}"\n',
        "HumanEval_53_add": "    echo $(( $1 + $2 ))\n",
        "HumanEval_13_greatest_common_divisor": (
            '    local a=$1 b=$2 t\n    while (( b != 0 )); do t=$(( a % b )); a=$b; b=$t; done\n    echo "$a"\n'
        ),
    },
}

WRONG: dict[str, str] = {
    "js": "  return null;\n}\n",
    "cpp": "    return -987654321;\n",
    "java": "        return -987654321;\n",  # `return null;` where the method returns an object
    "sh": '    echo "codebench-wrong"\n',
}


# Forgeries the canaries run under the trusted verdict (base protocol; each must fail): print
# look-alike result lines, then leave with exit status 0 before the harness runs.
ATTACKS: dict[str, str] = {
    "js": (
        "  return null;\n}\nfor (let i = 0; i < 100; i++) "
        "require('fs').writeSync(1, '\\n\\x1eCBR ' + i + ' 0\\n');\nprocess.exit(0);\n"
    ),
    "cpp": (
        "    return {}; }\nstatic int codebench_forge = [] {\n"
        '    for (int i = 0; i < 100; i++) printf("\\n\\x1e" "CBR %d 0\\n", i);\n'
        "    fflush(stdout); _exit(0); return 0; }();\nvoid codebench_dummy() {\n"
    ),
    "java": '        System.out.println("\\u001eCBR 0 0");\n        System.exit(0);\n        throw new RuntimeException();\n',
    "sh": "    :; }\nfor i in $(seq 0 100); do printf '\\n\\036CBR %s MA==\\n' \"$i\"; done\nexit 0\ncodebench_dummy() {\n    :\n",
}


def wrong_completion(problem: Problem) -> str:
    """A completion that compiles and returns a wrong value (for the must-fail canary)."""
    if problem.language == "java":
        sig = [ln for ln in problem.prompt.rstrip().split("\n") if ln.strip()][-1]
        if not re.search(r"\b(long|int|float|double)\s+\w+\s*\(", sig):
            return "        return null;\n"
    return WRONG[problem.language]


# A source-compatible subset of org.javatuples.Pair (with, getValue0/1, equals, hashCode, toString).
JAVA_PAIR = """
final class Pair<A, B> {
    private final A value0;
    private final B value1;
    private Pair(A value0, B value1) { this.value0 = value0; this.value1 = value1; }
    public static <A, B> Pair<A, B> with(A value0, B value1) { return new Pair<A, B>(value0, value1); }
    public A getValue0() { return value0; }
    public B getValue1() { return value1; }
    public Object getValue(int pos) { if (pos == 0) return value0; if (pos == 1) return value1; throw new IllegalArgumentException(); }
    public int getSize() { return 2; }
    @Override public boolean equals(Object o) {
        if (this == o) return true;
        if (!(o instanceof Pair)) return false;
        Pair<?, ?> p = (Pair<?, ?>) o;
        return java.util.Objects.equals(value0, p.value0) && java.util.Objects.equals(value1, p.value1);
    }
    @Override public int hashCode() { return java.util.Objects.hash(value0, value1); }
    @Override public String toString() { return "[" + value0 + ", " + value1 + "]"; }
}
"""


def humaneval_number(name: str) -> int:
    m = re.match(r"HumanEval_(\d+)_", name)
    return int(m.group(1)) if m else 10**6


def function_name(prompt: str) -> str | None:
    """The function the prompt's last line declares (`function f(`, `long f(`, `f() {`)."""
    lines = [ln for ln in prompt.rstrip().split("\n") if ln.strip()]
    m = re.search(r"(\w+)\s*\(", lines[-1]) if lines else None
    return m.group(1) if m else None


def function_body(code: str, name: str, language: str) -> str | None:
    """The text between the braces of function `name` in `code` (literal-aware), or None."""
    spans = literal_spans(code, language)

    def inside(pos: int) -> bool:
        return any(s <= pos < e for s, e in spans)

    for m in re.finditer(rf"\b{re.escape(name)}\s*\(", code):
        if inside(m.start()):
            continue
        # the declaration's opening brace: first '{' after the parameter list, outside literals
        i = m.end()
        depth = 1
        while i < len(code) and depth:
            if not inside(i):
                depth += {"(": 1, ")": -1}.get(code[i], 0)
            i += 1
        j = i
        while j < len(code) and (code[j] != "{" or inside(j)):
            if code[j] == ";" and not inside(j):
                break  # a call or prototype, not a definition
            j += 1
        if j >= len(code) or code[j] != "{":
            continue
        depth, k = 0, j
        while k < len(code):
            if not inside(k):
                if code[k] == "{":
                    depth += 1
                elif code[k] == "}":
                    depth -= 1
                    if depth == 0:
                        return code[j + 1 : k]
            k += 1
        return code[j + 1 :]  # unterminated: generation ran out
    return None


def java_offline(program: str) -> str:
    """Replace `import org.javatuples.*;` by the bundled Pair when the program uses it."""
    if "org.javatuples" not in program:
        return program
    program = re.sub(r"^import org\.javatuples\.\*;\n", "", program, flags=re.M)
    if re.search(r"\bPair\b", program):
        program += "\n" + JAVA_PAIR
    return program


VERDICTS = ("trusted", "upstream")
_EXPECTED = trusted.ExpectedValues()


class MultiPLE(Task):
    """One MultiPL-E language."""

    protocols = ("base", "instruct")
    canary_count = 3

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.verdict_mode = str(self.options.get("verdict") or "trusted")
        if self.verdict_mode not in VERDICTS:
            raise BenchError(
                f"{self.name}: unknown verdict mode {self.verdict_mode!r} (known: {', '.join(VERDICTS)})"
            )
        self._pending: dict[str, Problem] = {}

    def info(self) -> dict:
        return {**super().info(), "verdict": self.verdict_mode}

    def _path(self) -> Path:
        if self.options.get("path"):
            return Path(self.options["path"])
        from codebench.paths import data_dir

        return data_dir(self.data_dir) / "humaneval-x" / LANGUAGES[self.language]["file"]

    def data_files(self) -> list[Path]:
        return [self._path()]

    def load(self) -> list[Problem]:
        rows = read_rows(self._path(), self.name)
        rows.sort(key=lambda r: (humaneval_number(r["name"]), r["name"]))
        refs = REFERENCES.get(self.language, {})
        return [
            Problem(
                task_id=r["name"],
                prompt=r["prompt"],
                language=self.language,
                entry_point=function_name(r["prompt"]),
                tests=r["tests"],
                stop=list(r["stop_tokens"]),
                reference=refs.get(r["name"]),
            )
            for r in rows
        ]

    def messages(self, problem: Problem) -> list[dict]:
        lang = LANGUAGES[self.language]
        content = (
            f"Complete the following {lang['full']} function. Reply with the whole function in one "
            f"```{lang['fence']} code block.\n\n```{lang['fence']}\n{problem.prompt.strip()}\n```"
        )
        return [{"role": "user", "content": content}]

    def completion(self, problem: Problem, raw: str) -> str:
        """The text that goes between the prompt and the tests."""
        if self.protocol == "base":
            return truncate_at_stops(
                raw, problem.stop, language=self.language, prefix=problem.prompt
            )
        code = extract_fenced(raw, self.language, problem.entry_point)
        body = (
            function_body(code, problem.entry_point or "", self.language)
            if problem.entry_point
            else None
        )
        if body is None:
            return code
        body = body.strip("\n") + "\n"
        return body if LANGUAGES[self.language]["tests_close"] else body + "}\n"

    def extract(self, problem: Problem, raw: str) -> str:
        completion = self.completion(problem, raw)
        if self.verdict_mode == "trusted":
            program = trusted.candidate_program(
                self.language, problem.prompt, completion, problem.tests, problem.entry_point
            )
        else:
            program = problem.prompt + completion + "\n" + problem.tests
        return java_offline(program) if self.language == "java" else program

    def expected_program(self, problem: Problem) -> str:
        """The trusted program that computes this problem's expected values (no model code)."""
        program = trusted.expected_program(
            self.language, problem.prompt, problem.tests, problem.entry_point
        )
        return java_offline(program) if self.language == "java" else program

    def cases(self, problem: Problem) -> list[trusted.Case]:
        return trusted.parse_tests(self.language, problem.tests, problem.entry_point)

    def expected(self, problem: Problem) -> tuple[list | None, str | None]:
        """(expected values, None) or (None, why they could not be computed)."""
        if self._pending:  # compute every problem whose jobs were made so far, in one batch
            batch = [
                (self.language, len(self.cases(p)), self.expected_program(p))
                for p in self._pending.values()
            ]
            self._pending.clear()
            _EXPECTED.prepare(batch)
        return _EXPECTED.get(
            self.language, len(self.cases(problem)), self.expected_program(problem)
        )

    def job(self, problem: Problem, program: str):
        from codebench.sandbox import ProgramJob

        if self.verdict_mode == "trusted":
            self._pending[problem.task_id] = problem
            return ProgramJob(program=program, language=self.language)
        return ProgramJob(program=program, language=self.language, nonce=True)

    def verdict(self, problem: Problem, program: str, result) -> tuple[str, str]:
        if self.verdict_mode != "trusted":
            return str(result.outcome), result.detail
        values, why = self.expected(problem)
        if values is None:
            if why.startswith(trusted.BROKEN):
                return "failed", f"expected values unavailable: {why}"
            return "sandbox-error", f"expected values unavailable: {why}"
        return trusted.compare(self.language, self.cases(problem), values, result)

    def _as_instruct(self, problem: Problem, completion: str) -> str:
        closing = {"js": "", "cpp": "}\n", "java": "    }\n}\n", "sh": "}\n"}[self.language]
        code = problem.prompt + completion + closing
        return f"Here is the function.\n\n```{LANGUAGES[self.language]['fence']}\n{code}```\n"

    def reference(self, problem: Problem) -> str | None:
        if problem.reference is None:
            return None
        return (
            problem.reference
            if self.protocol == "base"
            else self._as_instruct(problem, problem.reference)
        )

    def wrong(self, problem: Problem) -> str:
        w = wrong_completion(problem)
        return w if self.protocol == "base" else self._as_instruct(problem, w)

    def attacks(self, problem: Problem) -> list[str]:
        """Forged outputs the canaries require to fail (trusted verdict, base protocol)."""
        if self.verdict_mode != "trusted" or self.protocol != "base":
            return []
        return [ATTACKS[self.language]]


def _make(lang: str) -> type[MultiPLE]:
    cls = type(f"MultiPLE_{lang}", (MultiPLE,), {"name": f"multiple-{lang}", "language": lang})
    cls.__doc__ = f"MultiPL-E HumanEval in {LANGUAGES[lang]['full']}."
    return cls


for _lang in LANGUAGES:
    register(f"multiple-{_lang}")(_make(_lang))
