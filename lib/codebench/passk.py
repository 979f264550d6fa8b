"""pass@k: the unbiased estimator (Chen et al., 2021), averaged over problems, with bootstrap CIs.

For one problem with n samples of which c pass, pass@k = 1 - C(n-c, k) / C(n, k): the chance
that at least one of k samples drawn without replacement from the n passes. It is computed as
a product (no huge binomials) and is exact for the integers involved. A benchmark's pass@k is
the mean over problems; it is reported only for k <= n (the smallest n over problems), never
extrapolated. Confidence intervals resample *problems* with replacement (seeded), because the
problems, not the samples, are the finite population a benchmark score generalises over.

Standard library only at import (numpy is imported by the bootstrap), so `codebench score`
uses the same estimator without starting numpy or the bench package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with `n` samples, `c` correct. 0.0 when c == 0."""
    if not (0 <= c <= n):
        raise ValueError(f"pass_at_k: need 0 <= c <= n, got n={n}, c={c}")
    if not (1 <= k <= n):
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got k={k}, n={n}")
    if c == 0:
        return 0.0
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def per_problem(counts: Mapping[str, tuple[int, int]], k: int) -> dict[str, float]:
    """pass@k for each problem from {task_id: (n, c)}."""
    return {t: pass_at_k(n, c, k) for t, (n, c) in counts.items()}


def valid_ks(counts: Mapping[str, tuple[int, int]], ks: Iterable[int]) -> list[int]:
    """The requested ks that every problem supports (k <= its n), sorted, unique."""
    if not counts:
        return []
    n_min = min(n for n, _ in counts.values())
    return sorted({int(k) for k in ks if 1 <= int(k) <= n_min})


def bootstrap_ci(
    values: Sequence[float], *, iters: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (resampling values, seeded)."""
    import numpy as np  # deferred: `codebench score` needs pass_at_k only and starts without it

    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (float("nan"), float("nan"))
    if v.size == 1 or np.all(v == v[0]):
        return (float(v.mean()), float(v.mean()))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(iters, v.size))
    means = v[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def paired_difference(
    a: Mapping[str, tuple[int, int]],
    b: Mapping[str, tuple[int, int]],
    k: int = 1,
    *,
    iters: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float] | None:
    """pass@k of `a` minus that of `b` on the problems both scored ({task_id: (n, c)} each),
    with a paired bootstrap interval: problems are resampled once for both, so the interval is
    that of the difference on the same problems (narrower than two separate intervals when
    the two models find the same problems hard). None when no problem is shared or k exceeds
    a shared problem's n."""
    ids = sorted(set(a) & set(b))
    if not ids or any(k > min(a[t][0], b[t][0]) for t in ids):
        return None
    diffs = [pass_at_k(*a[t], k) - pass_at_k(*b[t], k) for t in ids]
    lo, hi = bootstrap_ci(diffs, iters=iters, level=level, seed=seed + k)
    return {
        "value": sum(diffs) / len(diffs),
        "ci_low": lo,
        "ci_high": hi,
        "k": k,
        "problems": len(ids),
    }


def summarize(
    counts: Mapping[str, tuple[int, int]],
    ks: Iterable[int] = (1, 10, 100),
    *,
    iters: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """{'pass@k': {'value', 'ci_low', 'ci_high'}} for every k <= n, averaged over problems.

    `counts` maps task_id -> (n samples, c passed). Problems are sorted by id before
    bootstrapping so the interval does not depend on dict order.
    """
    import numpy as np  # deferred, as in bootstrap_ci

    out: dict[str, dict[str, float]] = {}
    ids = sorted(counts)
    for k in valid_ks(counts, ks):
        vals = [pass_at_k(*counts[t], k) for t in ids]
        lo, hi = bootstrap_ci(vals, iters=iters, level=level, seed=seed + k)
        out[f"pass@{k}"] = {
            "value": float(np.mean(vals)),
            "ci_low": lo,
            "ci_high": hi,
            "k": k,
            "problems": len(vals),
        }
    return out
