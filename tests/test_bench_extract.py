"""Completion extraction edge cases: stops, string literals, fences, function bodies, truncation."""

from __future__ import annotations

import pytest

from codebench.bench.extract import extract_fenced, fenced_blocks, literal_spans, truncate_at_stops
from codebench.bench.humaneval import BASE_STOPS
from codebench.bench.mtpb import truncate_turn
from codebench.bench.multiple import function_body, function_name, java_offline

PROMPT = 'def f(x):\n    """Doc."""\n'


# --------------------------------------------------------------------------- stop strings
def test_cut_at_the_earliest_stop() -> None:
    text = "    return x\n\ndef g():\n    pass\n\nprint(f(1))\n"
    assert truncate_at_stops(text, BASE_STOPS, language="python", prefix=PROMPT) == "    return x\n"
    assert (
        truncate_at_stops("    return x\nif True:\n    pass", BASE_STOPS, language="python")
        == "    return x"
    )
    assert truncate_at_stops("no stop here", BASE_STOPS, language="python") == "no stop here"
    assert truncate_at_stops("abc", [], language="python") == "abc"


def test_stop_inside_a_python_string_literal_is_not_a_stop() -> None:
    text = '    s = """\n# not a comment\ndef not_a_def\n"""\n    return s\n\ndef g():\n    pass\n'
    out = truncate_at_stops(text, BASE_STOPS, language="python", prefix=PROMPT)
    assert out == '    s = """\n# not a comment\ndef not_a_def\n"""\n    return s\n'
    # the literal-blind cut (what a backend does) would have broken the program
    assert truncate_at_stops(text, BASE_STOPS) == '    s = """'
    # escaped quotes and prefixes do not end the literal early
    text2 = "    s = r'''it\\'s\nif x'''\n    return s\nif __name__:\n"
    assert (
        truncate_at_stops(text2, BASE_STOPS, language="python")
        == "    s = r'''it\\'s\nif x'''\n    return s"
    )


def test_completion_continuing_an_open_literal_uses_the_prompt_as_context() -> None:
    prompt = 'def f():\n    """Start of a docstring\n'
    text = '\nif this line is prose\n    """\n    return 1\n\ndef g(): pass\n'
    out = truncate_at_stops(text, BASE_STOPS, language="python", prefix=prompt)
    assert out == '\nif this line is prose\n    """\n    return 1\n'


def test_stop_inside_c_like_and_shell_literals() -> None:
    js = '  const s = "a\n}";\n  return s;\n}\nfunction g() {}\n'
    assert (
        truncate_at_stops(js, ["\nfunction "], language="js")
        == '  const s = "a\n}";\n  return s;\n}'
    )
    cpp = '    std::string s = "x\n}";\n    return 1;\n}\nint main() {}'
    assert (
        truncate_at_stops(cpp, ["\n}"], language="cpp")
        == '    std::string s = "x\n}";\n    return 1;'
    )
    sh = "    echo 'a\n}'\n}\ncandidate"
    assert truncate_at_stops(sh, ["\n}"], language="sh") == "    echo 'a\n}'"


def test_literal_spans_cover_strings_and_comments() -> None:
    code = "x = 'a#b'  # note\ny = \"q\"\n"
    spans = literal_spans(code, "python")
    texts = [code[s:e] for s, e in spans]
    assert texts == ["'a#b'", "# note", '"q"']


# --------------------------------------------------------------------------- fences
def test_no_fence_python_starts_at_first_code_line() -> None:
    text = "Sure! Here you go:\ndef add(a, b):\n    return a + b\n"
    assert extract_fenced(text, "python", "add") == "def add(a, b):\n    return a + b\n"
    assert extract_fenced("just prose", "python") == "just prose\n"
    assert extract_fenced("", "python") == ""


def test_several_fences_pick_the_one_defining_the_entry_point() -> None:
    text = (
        "Example usage:\n```python\nprint(add(1, 2))\n```\n"
        "Implementation:\n```python\ndef add(a, b):\n    return a + b\n```\n"
        "Tests:\n```python\nassert add(1, 1) == 2\n```\n"
    )
    assert extract_fenced(text, "python", "add") == "def add(a, b):\n    return a + b\n"
    # without an entry point: the first block in the language
    assert extract_fenced(text, "python") == "print(add(1, 2))\n"


def test_language_tagged_fences_are_preferred() -> None:
    text = "```text\ndef add(a, b): wrong\n```\n```\nuntagged = 1\n```\n```py\ndef add(a, b):\n    return a + b\n```"
    assert extract_fenced(text, "python", "add") == "def add(a, b):\n    return a + b\n"
    js = "```python\ndef f(): pass\n```\n```javascript\nfunction f(x) { return x; }\n```"
    assert extract_fenced(js, "js", "f") == "function f(x) { return x; }\n"
    # untagged blocks come before other languages' blocks
    assert extract_fenced("```java\nclass A {}\n```\n```\nx = 1\n```", "python") == "x = 1\n"


def test_unterminated_fence_from_a_truncated_generation() -> None:
    text = "Here:\n```python\ndef add(a, b):\n    return a +"
    assert extract_fenced(text, "python", "add") == "def add(a, b):\n    return a +\n"
    assert fenced_blocks(text) == [("python", "def add(a, b):\n    return a +")]


def test_fence_with_indented_markers_and_trailing_text() -> None:
    text = "  ```python title\n  def f():\n      return 1\n  ```\nDone."
    assert extract_fenced(text, "python", "f") == "  def f():\n      return 1\n"


# --------------------------------------------------------------------------- MultiPL-E bodies
def test_function_name_and_body_by_brace_matching() -> None:
    assert function_name("// doc\nfunction strlen(string){\n") == "strlen"
    assert (
        function_name("#include<x>\nlong string_length(std::string string) {\n") == "string_length"
    )
    assert (
        function_name("class Problem {\n    public static long strlen(String string) {\n")
        == "strlen"
    )
    assert function_name("#!/bin/bash\nstrlen() {\n") == "strlen"
    code = '// strlen("}") in a comment\nfunction strlen(s) {\n  const t = "}{";\n  if (s) { return s.length; }\n  return 0;\n}\nconsole.log(strlen("x"));'
    assert (
        function_body(code, "strlen", "js")
        == '\n  const t = "}{";\n  if (s) { return s.length; }\n  return 0;\n'
    )
    assert function_body("int f(int);\nint f(int x) { return x; }", "f", "cpp") == " return x; "
    assert function_body("function g() {}", "f", "js") is None
    assert function_body("f() {\n  echo hi", "f", "sh") == "\n  echo hi"


def test_java_tuples_are_provided_offline() -> None:
    prog = "import java.util.*;\nimport org.javatuples.*;\nclass Problem {\n  Pair<Long, Long> p = Pair.with(1l, 2l);\n}\n"
    out = java_offline(prog)
    assert "org.javatuples" not in out and "final class Pair<A, B>" in out
    plain = "import org.javatuples.*;\nclass Problem { long x; }\n"
    assert "class Pair" not in java_offline(plain) and "org.javatuples" not in java_offline(plain)


# --------------------------------------------------------------------------- MTPB truncation
@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        # CodeGen's own test_truncate case
        (
            "\nif len_a > len_b:\n    result = a\nelse:\n    result = b\n\n\n\n#",
            "\nif len_a > len_b:\n    result = a\nelse:\n    result = b",
        ),
        ("x = 1\nprint(x)\nprint(x + 1)\n", "x = 1\nprint(x)\n"),
        ("def f():\n    return 1\ndef g():\n    return 2\n", "def f():\n    return 1\n"),
        ("y = 2\n# next step\nz = 3", "y = 2\n"),
        ('a = 1\n"""doc', "a = 1\n"),
    ],
)
def test_mtpb_turn_truncation_follows_codegen(completion: str, expected: str) -> None:
    assert truncate_turn(completion) == expected
