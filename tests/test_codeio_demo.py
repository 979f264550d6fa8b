"""The 464 unified CodeI/O demo functions: stored outputs reproduce except for flagged functions.

Observed counts (docs/codeio.md explains them against the issue's 38/23/15/47): 375 kept,
47 constant-output, 22 non-deterministic, 7 mutates-input, 8 irreproducible (in-place mutators
whose stored input is the already-mutated argument), 3 not-serializable (inf), 2 load-error
(nltk, Crypto not installed). The full run is slow (~2-4 min on 2 cores); the default test
checks a fixed sample of every class.
"""

from __future__ import annotations

from collections import Counter

import pytest

from codebench.codeio import iogen, transform
from codebench.codeio.sources import iter_source
from codebench.sandbox import Sandbox

CFG = iogen.IOConfig(max_pairs=10, call_budget=10, chunk=64)  # every stored input is run

OBSERVED = {
    None: 375,
    "constant-output": 47,
    "non-deterministic": 22,
    "irreproducible": 8,
    "mutates-input": 7,
    "not-serializable": 3,
    "load-error": 2,
}

SAMPLE = {
    "fe96da6ea8f1f0c0e": None,
    "faca02e89f26cc527": None,
    "ff865868957fc9635": None,
    "fe2f4f2dba94fad77": None,
    "f6404e0e1527f2e01": "constant-output",
    "f4c24d03930869bb2": "constant-output",
    "fa3f210ffd9126358": "mutates-input",
    "fdd71d8cb1f3c07a9": "mutates-input",
    "f30661ef110f77d0c": "mutates-input",
    "f8f27b5f86c254054": "irreproducible",  # grid mutated by BFS: stored grid is the visited one
    "ff6f136d924518403": "irreproducible",  # ropes heapified and popped in place: stored list has one rope left
    "f87c06f67b7d9dac7": "irreproducible",  # queue swapped in place while counting bribes
    "f906762272ff598f1": "non-deterministic",
    "f4b31e0cb14fb7fe3": "non-deterministic",
    "f55202a51b91183d8": "non-deterministic",
    "fa01b223bdceaf12d": "load-error",  # nltk
    "f24224c1252fe1f85": "not-serializable",  # stored inputs hold Infinity
    "f9af25219ca2dfe66": "not-serializable",  # outputs hold inf
}


def _demo(data_dir) -> list[dict]:
    return [
        transform.unify_unified(i.payload, {"source": i.source, "key": i.key})
        for i in iter_source("codeio-demo", data_dir)
    ]


def _check_reproduction(rec: dict) -> None:
    rp = rec.get("reproduced")
    if rec["kept"]:
        # every stored pair that ran reproduces (exactly or within tolerance); none mismatches
        assert (
            rp["mismatch"] == 0 and rp["exact"] + rp["tolerance"] + rp["failed"] == rp["stored"]
        ), rec
        assert rp["exact"] + rp["tolerance"] >= 2


def test_sample_of_each_class(data_dir) -> None:
    recs = [r for r in _demo(data_dir) if r["fid"] in SAMPLE]
    assert len(recs) == len(SAMPLE)
    with Sandbox(workers=2) as a, Sandbox(workers=1) as b:
        out = iogen.generate_all(recs, CFG, a, b)
    for rec in out:
        assert rec["reason"] == SAMPLE[rec["fid"]], rec
        _check_reproduction(rec)


@pytest.mark.slow
def test_all_464_demo_functions(data_dir) -> None:
    recs = _demo(data_dir)
    assert len(recs) == 464 and len({r["fid"] for r in recs}) == 464
    with Sandbox(workers=2) as a, Sandbox(workers=1) as b:
        out = iogen.generate_all(recs, CFG, a, b)
    got = Counter(r["reason"] for r in out)
    # Eight demo functions time themselves (time.time() deltas): when both runs' timings agree
    # within the verification tolerance, such a function is "irreproducible" (its stored output
    # is another machine's timing) instead of "non-deterministic"; one of them flips between
    # the two from run to run. Every other count is exact.
    flaky = ("non-deterministic", "irreproducible")
    assert sum(got[k] for k in flaky) == sum(OBSERVED[k] for k in flaky)
    assert abs(got["non-deterministic"] - OBSERVED["non-deterministic"]) <= 1
    assert {k: v for k, v in got.items() if k not in flaky} == {
        k: v for k, v in OBSERVED.items() if k not in flaky
    }
    for rec in out:
        _check_reproduction(rec)
    # stored outputs that fail to reproduce belong to flagged functions only
    bad = [r for r in out if (r.get("reproduced") or {}).get("mismatch")]
    assert {r["reason"] for r in bad} <= {
        "non-deterministic",
        "mutates-input",
        "irreproducible",
        "constant-output",
    }
