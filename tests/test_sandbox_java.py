"""Java main class and source file: read from code only, never from comments or strings.

MultiPL-E's HumanEval_153 (Strongest_Extension) prompt says "... as the class and an array ..."
in a comment; reading `class (\\w+)` out of the raw text made `and` the main class, so every
completion of that problem failed to run under the upstream protocol.
"""

from __future__ import annotations

import pytest

from codebench.bench import get_task
from codebench.sandbox.languages import _java_classes, add_nonce, java_code_only

SOLUTION_153 = """        String best = extensions.get(0);
        int bestStrength = Integer.MIN_VALUE;
        for (String e : extensions) {
            int s = 0;
            for (char c : e.toCharArray()) {
                if (Character.isUpperCase(c)) s++;
                else if (Character.isLowerCase(c)) s--;
            }
            if (s > bestStrength) { bestStrength = s; best = e; }
        }
        return class_name + "." + best;
    }
"""


def _problem_153():
    task = get_task("multiple-java:base", verdict="upstream")
    (p,) = [p for p in task.problems() if "_153_" in p.task_id]
    return task, p


def test_comment_words_after_class_are_not_class_names() -> None:
    _, p = _problem_153()
    assert "the class and" in p.prompt  # the trap is in the prompt itself
    program = p.prompt + SOLUTION_153 + p.tests
    assert _java_classes(program) == ("Problem.java", "Problem")


@pytest.mark.parametrize(
    "program, expected",
    [
        # a string literal and a char literal holding the words
        (
            'class Problem {\n  static String s = "public class Evil { class Foo";\n'
            "  static char q = '\\'';\n  public static void main(String[] a) {}\n}\n",
            ("Problem.java", "Problem"),
        ),
        # block comment (with a fake main) and line comment
        (
            "/* public class Evil {\n public static void main(String[] a) {} */\n"
            "class Main2 { // class Bar\n  public static void main(String[] a) {}\n}\n",
            ("Problem.java", "Main2"),
        ),
        # a text block
        (
            'public class Real {\n  static String t = """\n    class Fake\n    """;\n'
            "  public static void main(String[] a) {}\n}\n",
            ("Real.java", "Real"),
        ),
        # escaped quote inside a string does not end it
        (
            'class Problem {\n  static String s = "\\" class Nope \\"";\n'
            "  public static void main(String[] a) {}\n}\n",
            ("Problem.java", "Problem"),
        ),
    ],
)
def test_literals_and_comments_are_ignored(program: str, expected: tuple[str, str]) -> None:
    assert _java_classes(program) == expected


def test_masking_keeps_offsets_and_lines() -> None:
    src = 'class A { String s = "x\\"y"; /* c\n d */ int b; } // e\n'
    code = java_code_only(src)
    assert len(code) == len(src) and code.count("\n") == src.count("\n")
    assert "class A" in code and "int b" in code and "x" not in code and "// e" not in code


def test_nonce_trailer_renames_the_real_main_not_one_in_a_comment() -> None:
    src = (
        "class Problem {\n  public static void main(String[] args) {\n"
        '    System.out.println("public static void main(String[] args)");\n  }\n'
        "  // public static void main(String[] args)\n}\n"
    )
    out, main_class = add_nonce("java", src, "NONCE", "Problem")
    assert main_class == "CodebenchMain"
    assert out.count("public static void codebenchTestsMain(String[] args)") == 1
    assert '"public static void main(String[] args)"' in out  # the string is untouched


@pytest.mark.toolchain
@pytest.mark.parametrize("verdict", ["upstream", "trusted"])
def test_problem_153_solution_passes_and_wrong_fails_in_java(verdict: str) -> None:
    import shutil

    if not shutil.which("javac"):
        pytest.skip("javac not installed")
    from codebench.sandbox import Sandbox

    task = get_task("multiple-java:base", verdict=verdict)
    (p,) = [p for p in task.problems() if "_153_" in p.task_id]
    wrong = SOLUTION_153.replace("s > bestStrength", "s >= bestStrength")
    programs = [task.extract(p, c) for c in (SOLUTION_153, wrong)]
    with Sandbox(workers=2, timeout=20.0) as sb:
        results = sb.map([task.job(p, prog) for prog in programs])
    verdicts = [task.verdict(p, prog, r) for prog, r in zip(programs, results, strict=True)]
    assert verdicts[0][0] == "passed", verdicts[0]
    assert verdicts[1][0] == "failed", verdicts[1]
