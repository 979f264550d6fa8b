"""codeio.verify: answer extraction and tolerant comparison (no sandbox needed)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codebench.codeio.records import NotPlain, canonical, function_id, sample_id, to_plain
from codebench.codeio.verify import VerifyConfig, extract_answer, judge_text, values_match

# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    ("text", "value", "method"),
    [
        ('I think\n```json\n{"output": 3}\n```', 3, "fenced"),
        (
            'first ```json\n{"output": 1}\n``` then\n```json\n{"output": [1, 2]}\n```',
            [1, 2],
            "fenced",
        ),
        ('```\n{"output": "a"}\n```', "a", "fenced"),
        (
            'The answer is {"output": {"x": [1, {"y": null}]}} done.',
            {"x": [1, {"y": None}]},
            "balanced",
        ),
        ('use {a, b} sets... final: {"output": true}', True, "balanced"),
        ('{"output": 1} and later {"output": 2}', 2, "balanced"),
        ("{'output': (1, 2), 'ok': True}", [1, 2], "literal"),
        ("so {'output': None}", None, "literal"),
        ('braces in a string {"output": "}{"}', "}{", "balanced"),
        ('\\boxed{\\{"output": 7\\}}', 7, "boxed"),
        ('```python\n{"output": 4.5}\n```', 4.5, "fenced"),
    ],
)
def test_extraction_rules(text: str, value, method: str) -> None:
    ex = extract_answer(text, "output")
    assert ex.found, ex.reason
    assert ex.value == value and type(ex.value) is type(value)
    assert ex.method == method


def test_last_answer_wins_over_fenced_non_answer() -> None:
    text = '```json\n{"note": 1}\n```\nfinal {"output": 5}'
    assert extract_answer(text).value == 5


def test_input_key_and_nested_object() -> None:
    ex = extract_answer('```json\n{"input": {"n": 3, "s": "ab"}}\n```', "input")
    assert ex.value == {"n": 3, "s": "ab"}
    # a bare arguments object is not an answer: the wrapper key is required
    assert not extract_answer('{"n": 3}', "input").found


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("", "empty"),
        ("no braces here", "no JSON object"),
        ('{"result": 3}', "no JSON object with key"),
        ('Let me compute. {"output": [1, 2, 3', "unterminated"),
        ('{"output": [1, 2,, ]}', "does not parse"),
        ("{" * 5000, "no JSON object with key"),
    ],
)
def test_no_answer_reasons(text: str, reason_part: str) -> None:
    ex = extract_answer(text)
    assert not ex.found and reason_part in ex.reason


def test_non_json_answer_value_is_rejected_with_reason() -> None:
    ex = extract_answer("{'output': {1, 2}}")
    assert not ex.found


def test_hostile_text_is_fast() -> None:
    import time

    t0 = time.perf_counter()
    extract_answer('{"output": "' + "\\" * 20000 + "{" * 20000)
    extract_answer("{[" * 20000)
    assert time.perf_counter() - t0 < 5


# --------------------------------------------------------------------------- comparison


@pytest.mark.parametrize(
    ("pred", "target", "ok"),
    [
        (1, 1, True),
        (1, 2, False),
        (3, 3.0, True),  # an int and an equal float are the same number
        (0.1 + 0.2, 0.3, True),
        (1.0005, 1.0, True),  # within 1e-3 relative
        (1.002, 1.0, False),
        (1e-7, 0.0, True),  # within 1e-6 absolute
        (1e-5, 0.0, False),
        (True, 1, False),  # bool is not int
        (1, True, False),
        (False, 0.0, False),
        (True, True, True),
        (float("nan"), float("nan"), True),
        (float("nan"), 1.0, False),
        (float("inf"), float("inf"), True),
        (float("inf"), -float("inf"), False),
        (1e308, float("inf"), False),
        (10**30, 10**30 + 1, False),  # big ints compare exactly
        ("1", 1, False),
        (None, None, True),
        (None, 0, False),
        ([1, [2.0005, 3]], [1, [2, 3]], True),
        ([1, 2], [1, 2, 3], False),
        ([1, 2], (1, 2), True),
        ({"a": 1.0, "b": [True]}, {"b": [True], "a": 1}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": True}, {"a": 1}, False),
    ],
)
def test_values_match(pred, target, ok: bool) -> None:
    assert values_match(pred, target) is ok


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_value_matches_itself_and_its_json_round_trip(v) -> None:
    assert values_match(v, v)
    assert values_match(json.loads(json.dumps(v)), v)
    assert canonical(to_plain(v)) == canonical(json.loads(canonical(v)))


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_small_relative_perturbation_matches(x: float) -> None:
    assert values_match(x * (1 + 5e-4), x)
    if abs(x) > 1e-2:
        assert not values_match(x * (1 + 5e-3), x)


def test_to_plain() -> None:
    assert to_plain((1, (2, [3]))) == [1, [2, [3]]]
    for bad in ({1, 2}, {1: 2}, float("nan"), object(), b"x", 1j):
        with pytest.raises(NotPlain):
            to_plain(bad)
    assert to_plain(math.pi) == math.pi


def test_ids_are_content_based() -> None:
    a = function_id("def main_solution(x):\n    return x\n")
    assert a == function_id("def main_solution(x):   \r\n    return x\r\n\n")
    assert a != function_id("def main_solution(x):\n    return x + 1\n")
    assert sample_id(a, 3, "input") == f"{a}:3:input"
    with pytest.raises(ValueError):
        sample_id(a, 0, "both")


# --------------------------------------------------------------------------- judging


def _prompt(direction: str = "output") -> dict:
    return {
        "id": "f1:0:" + direction,
        "fid": "f1",
        "idx": 0,
        "direction": direction,
        "input": {"n": 2},
        "output": [1.5, True],
    }


def test_judge_output_success_wrong_and_truncated() -> None:
    cfg = VerifyConfig()
    rec, _ = judge_text(
        _prompt(),
        {"text": '```json\n{"output": [1.5001, true]}\n```', "finish_reason": "stop"},
        cfg,
    )
    assert rec["status"] == "success" and rec["method"] == "fenced"
    rec, _ = judge_text(_prompt(), {"text": '{"output": [1.5, 1]}', "finish_reason": "stop"}, cfg)
    assert rec["status"] == "wrong"
    rec, _ = judge_text(
        _prompt(),
        {"text": 'Step 1: ... {"output": [1.5,', "finish_reason": "length", "truncated": True},
        cfg,
    )
    assert rec["status"] == "truncated" and rec["truncated"] and "unterminated" in rec["reason"]
    rec, _ = judge_text(
        _prompt(), {"text": "", "finish_reason": "error", "error": "server down"}, cfg
    )
    assert rec["status"] == "no-answer" and "server down" in rec["reason"]


def test_judge_input_shape_checks_before_running() -> None:
    cfg = VerifyConfig()
    rec, _ = judge_text(_prompt("input"), {"text": '{"input": [2]}', "finish_reason": "stop"}, cfg)
    assert rec["status"] == "wrong" and "not an object" in rec["reason"]
    rec, _ = judge_text(
        _prompt("input"), {"text": '{"input": {"m": 2}}', "finish_reason": "stop"}, cfg
    )
    assert rec["status"] == "wrong" and "keys" in rec["reason"]
    rec, _ = judge_text(
        _prompt("input"), {"text": '{"input": {"n": 2}}', "finish_reason": "stop"}, cfg
    )
    assert rec["status"] == "success"  # the known input: no need to run
    rec, value = judge_text(
        _prompt("input"), {"text": '{"input": {"n": 5}}', "finish_reason": "stop"}, cfg
    )
    assert rec["status"] is None and value == {"n": 5}  # must be run in the sandbox
