"""Sandbox errors are never final: every stage that stores execution results reruns them on resume.

A `sandbox-error` is our failure (the worker could not start, a sample process could not be set
up), not the sample's. 04_evaluate (`bench.evaluate`), `codebench score`, 01_build_data's I/O
generation (`stages.run_iogen`) and input-prediction verification (`stages.run_verify`) store
results keyed by unit of work and skip what is stored on resume; here a first run whose sandbox
fails on every job stores sandbox errors, and a resume with a working sandbox must rerun
exactly those units (from the stored model output: nothing is regenerated) and replace them.
Every stored record also names the isolation it ran under.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codebench import bench
from codebench.bench import EvalConfig
from codebench.codeio import iogen, stages
from codebench.codeio.execute import SandboxExecutor
from codebench.codeio.records import unified_record
from codebench.codeio.verify import VerifyConfig
from codebench.generate import Completion
from codebench.records import JsonlStore, read_jsonl
from codebench.sandbox import Outcome, Result


class _Broken:
    """A sandbox whose every job ends as a sandbox error (as when workers cannot start)."""

    isolation_label = "bwrap"

    def __init__(self) -> None:
        self.jobs = 0

    def map(self, jobs, progress=None):
        jobs = list(jobs)
        self.jobs += len(jobs)
        return [
            Result(Outcome.SANDBOX_ERROR, detail="sandbox worker could not start") for _ in jobs
        ]

    def close(self) -> None:
        pass


class _Counting:
    """Wraps a real executor and counts the jobs it runs."""

    def __init__(self, inner) -> None:
        self.inner, self.jobs = inner, 0

    def map(self, jobs, progress=None):
        jobs = list(jobs)
        self.jobs += len(jobs)
        return self.inner.map(jobs)

    @property
    def isolation_label(self):
        return self.inner.isolation_label


@pytest.fixture(scope="module")
def sandbox():
    from codebench.sandbox import Sandbox

    with Sandbox(workers=2, timeout=5.0) as sb:
        yield sb


# --------------------------------------------------------------------------- the store
def test_replace_rewrites_stored_keys_and_adds_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with JsonlStore(path, "k") as st:
        st.extend([{"k": 1, "v": "a"}, {"k": 2, "v": "sandbox-error"}])
        assert st.replace([{"k": 2, "v": "b"}, {"k": 3, "v": "c"}]) == 2
        st.extend([{"k": 4, "v": "d"}, {"k": 2, "v": "ignored: already stored"}])
    recs = list(read_jsonl(path))
    assert [(r["k"], r["v"]) for r in recs] == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    with JsonlStore(path, "k") as st:  # reopened: one record per key, the replacement kept
        assert len(st) == 4 and st.records[(2,)]["v"] == "b"


# --------------------------------------------------------------------------- 04_evaluate
def test_evaluate_reruns_sandbox_errors_on_resume_without_regenerating(
    tmp_path: Path, sandbox
) -> None:
    task = bench.get_task("humaneval")
    by_prompt = {p.prompt: p for p in task.problems(4)}
    prompts: list[str] = []

    class Backend:
        tokenizer = None

        def generate(self, ps, cfg, progress=None):
            prompts.extend(ps)
            # HumanEval/0 and /2: canonical; /1 and /3: wrong
            return [
                [
                    Completion(
                        by_prompt[p].reference
                        if int(by_prompt[p].task_id.split("/")[1]) % 2 == 0
                        else "    return None\n",
                        "stop",
                        5,
                    )
                    for _ in range(cfg.n)
                ]
                for p in ps
            ]

    cfg = EvalConfig(limit=4, max_new_tokens=64, canaries=False)
    out = tmp_path / "eval"
    kw = dict(model="m", config=cfg, progress=False, log=lambda *_: None)
    broken = _Broken()
    first = bench.evaluate(Backend(), "humaneval", out, sandbox=broken, **kw)
    assert first["outcomes"] == {"sandbox-error": 4} and broken.jobs == 4 and len(prompts) == 4
    before = {r["task_id"]: r for r in read_jsonl(out / "samples.jsonl")}
    assert all(r["isolation"] == "bwrap" for r in before.values())

    real = _Counting(sandbox)
    second = bench.evaluate(Backend(), "humaneval", out, sandbox=real, **kw)
    assert len(prompts) == 4  # nothing regenerated
    assert real.jobs == 4  # exactly the four stored sandbox errors ran again
    assert second["outcomes"] == {"failed": 2, "passed": 2}
    assert second["metrics"]["pass@1"]["value"] == pytest.approx(0.5)
    after = list(read_jsonl(out / "samples.jsonl"))
    assert len(after) == 4  # replaced in place, never duplicated
    for r in after:
        assert r["raw"] == before[r["task_id"]]["raw"]  # the stored output, rerun
        assert r["isolation"] == sandbox.isolation_label
        assert r["passed"] == (int(r["task_id"].split("/")[1]) % 2 == 0)

    third = _Counting(sandbox)
    bench.evaluate(Backend(), "humaneval", out, sandbox=third, **kw)
    assert third.jobs == 0 and len(prompts) == 4  # final verdicts are kept


class _KilledDuringRetry:
    """Runs each job for real; job 0 'times out starved of CPU' on its first attempt, so its
    first verdict goes to `first_pass`, and the run is killed while that retry would run."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.isolation_label = inner.isolation_label

    def imap(self, jobs, first_pass=None, retry_only=()):
        jobs = list(jobs)
        assert not list(retry_only)
        first_pass(0, Result(Outcome.TIMEOUT, detail="starved of CPU"))
        yield from enumerate(self.inner.map(jobs[1:]), 1)
        raise KeyboardInterrupt  # killed while job 0's retry runs


class _RetryOnly:
    """Records which jobs a resumed run asks to retry only."""

    def __init__(self, inner) -> None:
        self.inner, self.jobs, self.retry_only = inner, 0, []
        self.isolation_label = inner.isolation_label

    def imap(self, jobs, first_pass=None, retry_only=()):
        jobs = list(jobs)
        self.jobs += len(jobs)
        self.retry_only.extend(retry_only)
        yield from enumerate(self.inner.map(jobs))


def test_evaluate_stores_a_first_verdict_before_its_retry_and_resumes_only_the_retry(
    tmp_path: Path, sandbox
) -> None:
    task = bench.get_task("humaneval")
    by_prompt = {p.prompt: p for p in task.problems(3)}
    prompts: list[str] = []

    class Backend:
        tokenizer = None

        def generate(self, ps, cfg, progress=None):
            prompts.extend(ps)
            return [[Completion(by_prompt[p].reference, "stop", 5)] for p in ps]

    cfg = EvalConfig(limit=3, max_new_tokens=64, canaries=False, batch_size=3)
    out = tmp_path / "eval"
    kw = dict(model="m", config=cfg, progress=False, log=lambda *_: None)
    with pytest.raises(KeyboardInterrupt):
        bench.evaluate(Backend(), "humaneval", out, sandbox=_KilledDuringRetry(sandbox), **kw)
    stored = {r["task_id"]: r for r in read_jsonl(out / "samples.jsonl")}
    assert list(stored) == ["HumanEval/0"]  # the first verdict, written before the retry
    assert stored["HumanEval/0"]["retry_pending"] and stored["HumanEval/0"]["outcome"] == "timeout"
    resumed = _RetryOnly(sandbox)
    res = bench.evaluate(Backend(), "humaneval", out, sandbox=resumed, **kw)
    assert resumed.retry_only == [0]  # the stored first pass: only its retry runs
    assert res["outcomes"] == {"passed": 3}
    after = list(read_jsonl(out / "samples.jsonl"))
    assert len(after) == 3 and not any(r.get("retry_pending") for r in after)
    p0 = next(p for p, prob in by_prompt.items() if prob.task_id == "HumanEval/0")
    assert prompts.count(p0) == 1 and len(prompts) == 5  # /0 never regenerated; /1, /2 were lost


# --------------------------------------------------------------------------- 01_build_data
def _unified(code: str) -> dict:
    return unified_record(
        refcode=code,
        problem="p",
        io_requirements="r",
        origin={"source": "test"},
        input_spec={"type": "kwargs", "params": {"n": {"type": "int", "lo": 0, "hi": 50}}},
    )


CFG = iogen.IOConfig(max_pairs=3, min_pairs=2, call_budget=6, call_timeout=0.5)


def test_iogen_reruns_sandbox_errors_on_resume(tmp_path: Path) -> None:
    us = [
        _unified("def main_solution(n):\n    return n * 3 + 1\n"),
        _unified("def main_solution(n):\n    return [n, n % 7]\n"),
    ]
    broken = _Broken()
    first = stages.run_iogen(us, CFG, tmp_path, broken)
    assert broken.jobs > 0
    assert [r["reason"] for r in first] == ["sandbox-error"] * 2
    assert not any(r["kept"] for r in first)
    with SandboxExecutor(workers=1, timeout=0.5, memory_mb=1024) as ex:
        real = _Counting(ex.plain)
        second = stages.run_iogen(us, CFG, tmp_path, real)
        assert real.jobs > 0
        assert [r["kept"] for r in second] == [True, True]
        assert all(r["isolation"] == ex.plain.isolation_label for r in second)
        third = _Counting(ex.plain)
        stages.run_iogen(us, CFG, tmp_path, third)
        assert third.jobs == 0  # kept records are final
    assert len(list(read_jsonl(tmp_path / "ios.jsonl"))) == 2


def test_verification_reruns_sandbox_errors_on_resume(tmp_path: Path) -> None:
    u = _unified("def main_solution(n):\n    return n % 5\n")
    prompt = {
        "id": f"{u['fid']}:0:input",
        "fid": u["fid"],
        "idx": 0,
        "direction": "input",
        "input": {"n": 7},
        "output": 2,
    }
    pred = {"text": '```json\n{"input": {"n": 12}}\n```', "finish_reason": "stop"}
    path = tmp_path / "verified.jsonl"
    cfg = VerifyConfig(call_timeout=0.5)
    got = stages.run_verify([(prompt, pred)], path, {u["fid"]: u}, _Broken(), cfg, "v")
    assert got[prompt["id"]]["status"] == "sandbox-error"  # not the prediction's "exception"
    with SandboxExecutor(workers=1, timeout=0.5, memory_mb=1024) as ex:
        real = _Counting(ex.plain)
        got = stages.run_verify([(prompt, pred)], path, {u["fid"]: u}, real, cfg, "v")
        assert real.jobs == 1 and got[prompt["id"]]["status"] == "success"
        assert got[prompt["id"]]["isolation"] == ex.plain.isolation_label
    assert len(list(read_jsonl(path))) == 1


# --------------------------------------------------------------------------- codebench score
def test_score_reruns_stored_sandbox_errors_and_keeps_final_records(tmp_path: Path) -> None:
    import json

    from codebench import score
    from codebench.sandbox.problems import load_humaneval

    he = load_humaneval()
    tids = ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    samples = [{"task_id": t, "completion": he[t]["canonical_solution"]} for t in tids]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    base = {"passed": False, "result": "failed: x", "isolation": "bwrap"}
    stored = [
        {**base, "index": 0, **samples[0], "outcome": "sandbox-error", "detail": "worker lost"},
        # a final verdict (deliberately not the real one) that resume must keep as it is
        {**base, "index": 1, **samples[1], "outcome": "failed", "detail": "kept-marker"},
    ]
    out = tmp_path / "s_results.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in stored))
    score.score(str(path), "humaneval", workers=1)
    recs = {r["index"]: r for r in read_jsonl(out)}
    assert sorted(recs) == [0, 1, 2]
    assert recs[0]["outcome"] == "passed" and recs[0]["isolation"]  # rerun, not kept
    assert recs[1]["detail"] == "kept-marker"  # final records are not rerun
    assert recs[2]["outcome"] == "passed"
