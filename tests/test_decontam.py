"""Decontamination catches renamed copies (code-shape n-grams) and leaves ordinary code alone.

Numbers (docs/protocols.md, "Decontamination"): planted HumanEval solutions with every
function, argument and variable renamed and re-printed by ast.unparse, docstrings dropped:
163/164 caught on their own, 162/164 inside a CodeI/O-style wrapper; word n-grams alone catch
4/164. On the 464 CodeI/O demo functions 1 is flagged (a GfG "min jumps" solution that MBPP
also holds, flagged by words too).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codebench.bench.humaneval import read_humaneval
from codebench.codeio.decontam import (
    Decontaminator,
    code_tokens,
    function_text,
    rename_identifiers,
    shape_ngrams,
)

WRAP_HEAD = (
    "# import necessary packages\nimport json\n\n"
    "# all class and function definitions in the code file, if any\n"
)


@pytest.fixture(scope="module")
def humaneval_only():
    return Decontaminator.build(["humaneval"], None, 10, 0.1)


@pytest.fixture(scope="module")
def planted():
    rows = read_humaneval()
    return [
        rename_identifiers(r["prompt"] + r["canonical_solution"], i, drop_docstrings=True)
        for i, r in enumerate(rows)
    ]


def _wrapped(code: str) -> str:
    fn = code.split("def ")[-1].split("(")[0]
    return (
        "Given the inputs, what is the output?\n"
        + WRAP_HEAD
        + code
        + f"\n\n# main function\ndef main_solution(input_json):\n    args = json.loads(input_json)\n"
        f"    return json.dumps({fn}(*args))\n"
    )


def test_rename_identifiers_renames_every_definition():
    code = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum."""\n    acc = 0\n    for x in xs:\n        acc += x  # add\n    return acc\n'
    out = rename_identifiers(code, 3, drop_docstrings=True)
    for name in ("total", "xs", "acc", "Sum", "# add"):
        assert name not in out
    assert "List" in out and "int" in out
    namespace: dict = {}
    exec(compile(out, "renamed", "exec"), namespace)
    fn = next(v for k, v in namespace.items() if callable(v) and k not in ("List",))
    assert fn([1, 2, 3]) == 6


def test_shape_ngrams_ignore_renaming_layout_and_docstrings():
    a = 'def f(a, b):\n    """Add."""\n    total = (a + b) * 2\n    return total if total > 0 else -total\n'
    b = "def g(x,y):\n    t = x + b_ * 2 if False else (x + y) * 2\n    return t if t > 0 else -t\n"
    renamed = "def zz(p, q):\n    s = (p + q) * 2  # comment\n    return s if s > 0 else -s\n"
    assert shape_ngrams(a, 12) == shape_ngrams(renamed, 12) != set()
    assert shape_ngrams(a, 12) != shape_ngrams(b, 12)
    assert code_tokens("x = 'a' + \"b\"")[2::2] == ["STR", "STR"]


def test_planted_renamed_humaneval_solutions_are_caught(humaneval_only, planted):
    caught = sum(humaneval_only.is_contaminated(p)[0] for p in planted)
    words_only = sum(humaneval_only.check(p)[0] >= 0.1 for p in planted)
    assert caught / len(planted) >= 0.9, caught
    assert words_only / len(planted) < 0.1  # the word n-grams alone miss them


def test_planted_solutions_inside_a_larger_function_are_caught(humaneval_only, planted):
    caught = sum(humaneval_only.is_contaminated(_wrapped(p))[0] for p in planted)
    assert caught / len(planted) >= 0.9, caught


def test_false_positive_rate_on_codeio_demo_functions(data_dir):
    path = data_dir / "codeio" / "rawcode_1k_parsed.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    d = Decontaminator.build(["humaneval", "mbpp", "mtpb"], data_dir, 10, 0.1)
    rows = [json.loads(x) for x in path.open() if x.strip()]
    flagged = [
        r["refcode"][:200]
        for r in rows
        if d.is_contaminated(
            function_text({"problem": r["problem_description"], "refcode": r["refcode"]})
        )[0]
    ]
    assert len(rows) == 464
    assert len(flagged) / len(rows) <= 0.01, flagged


def test_every_benchmark_spec_is_an_evaluation_set(tmp_path: Path, data_dir):
    custom = tmp_path / "mine.jsonl"
    solution = "def scramble(words):\n    out = []\n    for w in words:\n        if len(w) > 3:\n            out.append(w[::-1].upper() + str(len(w)))\n        else:\n            out.append(w)\n    return '-'.join(out)\n"
    custom.write_text(
        json.dumps(
            {
                "prompt": "def scramble(words):\n",
                "reference": solution.split("\n", 1)[1],
                "tests": "def check(c):\n    assert c(['ab']) == 'ab'\n",
                "entry_point": "scramble",
            }
        )
        + "\n"
    )
    missing = tmp_path / "absent.jsonl"
    d = Decontaminator.build(
        [f"custom:{custom}", "multiple-js", "pal-gsm8k", f"custom:{missing}"], data_dir, 10, 0.1
    )
    assert set(d.index) == {f"custom:{custom}", "multiple-js", "pal-gsm8k"}
    assert len(d.missing) == 1 and str(missing) in d.missing[0]
    bad, _, where = d.is_contaminated(rename_identifiers(solution, 7))
    assert bad and where == f"custom:{custom}"
    assert not d.is_contaminated("def add(a, b):\n    return a + b\n")[0]


def test_unknown_set_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown evaluation set 'nosuchset'"):
        Decontaminator.build(["humaneval", "nosuchset"], None)
