"""codeio.transform / annotate / sources: unification without a model, and parse failures."""

from __future__ import annotations

import ast
import contextlib
import json
import random

import pytest

from codebench.codeio import annotate, transform
from codebench.codeio.sources import iter_source

ORIGIN = {"source": "test", "key": "k"}


def _spec(annotation: str, param: str = "x") -> dict:
    return annotate.spec_of(ast.parse(annotation, mode="eval").body, param)


@pytest.mark.parametrize(
    ("annotation", "kind"),
    [
        ("int", "int"),
        ("float", "float"),
        ("str", "str"),
        ("bool", "bool"),
        ("List[int]", "list"),
        ("list[str]", "list"),
        ("List[List[int]]", "list"),
        ("Dict[str, float]", "dict"),
        ("dict", "dict"),
        ("Tuple[int, str]", "tuple"),
        ("tuple[int, ...]", "tuple"),
        ("Optional[int]", "union"),
        ("int | None", "union"),
        ("Union[int, str]", "union"),
        ("'List[int]'", "list"),
        ("typing.List[int]", "list"),
    ],
)
def test_supported_annotations(annotation: str, kind: str) -> None:
    spec = _spec(annotation)
    assert spec["type"] == kind
    rng = random.Random(0)
    for _ in range(20):
        json.dumps(annotate.draw(spec, rng), allow_nan=False)  # always plain JSON


@pytest.mark.parametrize(
    "annotation",
    [
        "TreeNode",
        "Dict[int, int]",
        "np.ndarray",
        "Callable[[int], int]",
        "Set[int]",
        "List[ListNode]",
    ],
)
def test_unsupported_annotations_are_named(annotation: str) -> None:
    with pytest.raises(annotate.Unsupported):
        _spec(annotation)


def test_draws_are_seeded_and_sizes_small() -> None:
    spec = {"type": "kwargs", "params": {"n": _spec("int", "n"), "xs": _spec("List[int]")}}
    a = annotate.draw_inputs(spec, seed=7, n=30)
    assert a == annotate.draw_inputs(spec, seed=7, n=30)
    assert a != annotate.draw_inputs(spec, seed=8, n=30)
    assert all(0 <= d["n"] <= 12 and len(d["xs"]) <= 6 for d in a)  # size-like names stay small


RAW = '''
import os
import numpy as np
from graph import Graph          # not available: dropped
print("side effect")             # top-level code: dropped
LIMIT = 10

def helper(x):
    return x + 1

def score(nums: List[int], bonus: int = 0) -> int:
    """Sum of the numbers plus a bonus."""
    return sum(nums) + bonus + LIMIT

if __name__ == "__main__":
    score([1])
'''


def test_unify_annotated_function() -> None:
    (rec,) = transform.unify_annotated(RAW, ORIGIN)
    assert rec["input_spec"]["params"].keys() == {"nums", "bonus"}
    code = rec["refcode"]
    assert (
        "def main_solution(nums, bonus):" in code and "return score(nums=nums, bonus=bonus)" in code
    )
    assert (
        "print(" not in code
        and "from graph" not in code
        and "__main__" not in code
        and "import numpy" in code
    )
    assert "Sum of the numbers" in rec["problem"]
    assert (
        "`nums` (List[int])" in rec["io_requirements"]
        and "`return` (int)" in rec["io_requirements"]
    )
    assert rec["fid"].startswith("f") and rec["origin"]["function"] == "score"


def test_unify_annotated_method_and_tuple_param() -> None:
    code = """
class Solution:
    def twoSum(self, pair: Tuple[int, int], target: int) -> List[int]:
        return [pair[0] + target, hash(pair) * 0]
"""
    (rec,) = transform.unify_annotated(code, ORIGIN)
    assert "pair = tuple(pair)" in rec["refcode"]
    assert "Solution().twoSum(pair=pair, target=target)" in rec["refcode"]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("def f(:\n", "syntax-error"),
        ("x = 1\n", "no-annotated-function"),
        ("def f(x):\n    return x\n", "no-annotated-function"),
        ("def f(root: TreeNode) -> int:\n    return 1\n", "unsupported-annotation"),
        ("def f(xs: List[int]) -> None:\n    xs.sort()\n", "unsupported-annotation"),
        (
            "class A:\n    def __init__(self, v):\n        self.v = v\n    def get(self, k: int) -> int:\n        return k\n",
            "no-annotated-function",
        ),
    ],
)
def test_unify_annotated_rejections(code: str, reason: str) -> None:
    with pytest.raises(transform.Reject) as e:
        transform.unify_annotated(code, ORIGIN)
    assert e.value.reason == reason


def test_unify_unified_checks_fields() -> None:
    good = {
        "problem_description": "p",
        "io_requirements": "io",
        "refcode": "def main_solution(a):\n    return a\n",
        "ios": [{"input": {"a": 1}, "output": 1}, "junk"],
    }
    rec = transform.unify_unified(good, ORIGIN)
    assert rec["ios"] == [{"input": {"a": 1}, "output": 1}]
    for broken, reason in (
        ({**good, "refcode": 5}, "malformed-record"),
        ({**good, "problem_description": ""}, "malformed-record"),
        ({**good, "refcode": "def other():\n    pass\n"}, "no-entry-point"),
        ({**good, "refcode": "def main_solution(:"}, "syntax-error"),
        ({**good, "funcname": "not an identifier"}, "malformed-record"),
    ):
        with pytest.raises(transform.Reject) as e:
            transform.unify_unified(broken, ORIGIN)
        assert e.value.reason == reason


MODEL_ANSWER = """## Main Function
```python
def main_solution(n):
    return n * 2
```
## Input Output Description
Input:
  `n` (int): a number
Output:
  `return` (int): twice n
## Input Generator
```python
import random
def input_generator():
    return {"n": random.randint(0, 9)}
```
## Problem Statement
What is twice the number `n`?
"""


def test_parse_transform_success_and_each_failure() -> None:
    rec = transform.parse_transform(MODEL_ANSWER, ORIGIN)
    assert "def input_generator" in rec["input_generator"] and rec["problem"].startswith("What is")
    assert "[Code Start]\nx = 1" in transform.transform_prompt("x = 1")
    cases = [
        (MODEL_ANSWER.split("## Problem Statement")[0], "stop", "missing-section"),
        (MODEL_ANSWER.split("## Input Generator")[0], "length", "truncated"),
        (MODEL_ANSWER.replace("def main_solution(n):", "def solve(n):"), "stop", "no-entry-point"),
        (
            MODEL_ANSWER.replace("def input_generator():", "def gen():"),
            "stop",
            "no-input-generator",
        ),
        (MODEL_ANSWER.replace("return n * 2", "return n *"), "stop", "syntax-error"),
        ("", "error", "generation-error"),
        ("complete nonsense", "stop", "missing-section"),
    ]
    for text, finish, reason in cases:
        with pytest.raises(transform.Reject) as e:
            transform.parse_transform(text, ORIGIN, finish)
        assert e.value.reason == reason, (reason, e.value)


def test_sources_classify_records(tmp_path) -> None:
    f = tmp_path / "mixed.jsonl"
    f.write_text(
        "\n".join(
            [
                json.dumps({"content": "def f(x: int) -> int:\n    return x\n", "blob_id": "b1"}),
                "{not json",
                json.dumps([1, 2]),
                json.dumps({"something": "else"}),
                json.dumps(
                    {
                        "refcode": "def main_solution():\n    pass\n",
                        "problem_description": "p",
                        "io_requirements": "r",
                    }
                ),
            ]
        )
        + "\n"
    )
    items = list(iter_source(str(f), None))
    assert [i.kind for i in items] == ["raw", "malformed", "malformed", "malformed", "unified"]
    assert items[0].key == "b1"
    assert (
        "not JSON" in items[1].error
        and "JSON object" in items[2].error
        and "no 'refcode'" in items[3].error
    )
    with pytest.raises(FileNotFoundError):
        list(iter_source(str(tmp_path / "missing.jsonl"), None))


def test_raw_demo_yields_annotated_functions(data_dir) -> None:
    n, ok = 0, 0
    for item in iter_source("codeio-raw", data_dir):
        n += 1
        with contextlib.suppress(transform.Reject):
            ok += len(transform.unify_annotated(item.payload["content"], ORIGIN))
    assert n == 1000 and ok >= 60  # real functions for the offline default
