"""The runner end to end with fake backends: records, results.json, rescoring, resume after
kill -9, canary failures, skips, and every benchmark kind through the same path."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codebench import bench
from codebench.bench import BenchError, CanaryError, EvalConfig, suite
from codebench.generate import Completion
from codebench.models import apply_chat
from codebench.records import read_jsonl

REPO = Path(__file__).resolve().parents[1]


class FakeBackend:
    """A Backend that answers with `answer(prompt, sample_index)`; counts every prompt it sees."""

    def __init__(self, answer, tokenizer=None) -> None:
        self.answer = answer
        self.tokenizer = tokenizer
        self.prompts: list[str] = []
        self.configs: list = []

    def generate(self, prompts, cfg, progress=None):
        self.prompts += list(prompts)
        self.configs.append(cfg)
        return [[Completion(self.answer(p, j), "stop", 7) for j in range(cfg.n)] for p in prompts]

    def chat_prompt(self, messages):
        return apply_chat(None, messages)


@pytest.fixture(scope="module")
def sandbox():
    from codebench.sandbox import Sandbox

    with Sandbox(timeout=10.0) as sb:
        yield sb


def _humaneval_answers(good: set[int]):
    """Canonical solution for HumanEval problems whose number is in `good`, else a wrong body."""
    task = bench.get_task("humaneval")
    by_prompt = {p.prompt: p for p in task.problems()}

    def answer(prompt: str, j: int) -> str:
        p = by_prompt[prompt]
        return (
            p.reference + "\ndef extra():\n    pass\n"
            if int(p.task_id.split("/")[1]) in good
            else "    return None\n"
        )

    return answer


def test_end_to_end_greedy_records_results_and_rescore(tmp_path: Path, sandbox) -> None:
    be = FakeBackend(_humaneval_answers({0, 2, 4}))
    out = tmp_path / "eval" / "base" / "humaneval"
    res = bench.evaluate(
        be,
        "humaneval",
        out,
        model="base",
        config=EvalConfig(limit=6, max_new_tokens=64),
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert res["status"] == "ok" and res["greedy"] and res["problems"] == 6 and res["samples"] == 6
    assert res["metrics"]["pass@1"]["value"] == pytest.approx(0.5)
    assert set(res["metrics"]) == {"pass@1"}  # k <= n only
    lo, hi = res["metrics"]["pass@1"]["ci_low"], res["metrics"]["pass@1"]["ci_high"]
    assert 0.0 <= lo < 0.5 < hi <= 1.0
    assert res["outcomes"] == {"failed": 3, "passed": 3}
    assert res["canary"]["ok"] and len(res["canary"]["checks"]) == 6
    # the backend got the base protocol: the prompt itself, HumanEval's stop set, greedy
    assert (
        be.configs[0].stop == ["\ndef", "\nclass", "\nif", "\nprint", "\n#"]
        and be.configs[0].temperature == 0.0
    )
    # records: everything needed to audit a score
    recs = list(read_jsonl(out / "samples.jsonl"))
    assert len(recs) == 6
    r0 = next(r for r in recs if r["task_id"] == "HumanEval/0")
    assert r0["passed"] and r0["model"] == "base" and r0["protocol"] == "base" and r0["sample"] == 0
    assert r0["raw"].endswith("def extra():\n    pass\n") and "def extra" not in r0["program"]
    r1 = next(r for r in recs if r["task_id"] == "HumanEval/1")
    assert r1["outcome"] == "failed" and r1["detail"] and r1["exec_s"] >= 0 and "gen_s" in r1
    # results.json: metrics, config, versions, data hashes
    saved = json.loads((out / "results.json").read_text())
    assert saved["metrics"] == res["metrics"] and saved["config"]["limit"] == 6
    assert saved["provenance"]["packages"]["torch"] and saved["provenance"]["python"]
    ((data_file, digest),) = saved["data"].items()
    assert data_file.endswith("HumanEval.jsonl.gz") and len(digest) == 64
    # scores recomputed from the records alone, and by re-running them
    again = bench.rescore(out)
    assert again["base|base"]["metrics"] == res["metrics"]
    rerun = bench.rescore(out, execute=True, sandbox=sandbox)
    assert (
        rerun["base|base"]["metrics"] == res["metrics"]
        and rerun["base|base"]["outcomes"] == res["outcomes"]
    )
    # a second run generates nothing
    be2 = FakeBackend(_humaneval_answers(set()))
    res2 = bench.evaluate(
        be2,
        "humaneval",
        out,
        model="base",
        config=EvalConfig(limit=6, max_new_tokens=64),
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert be2.prompts == [] and res2["metrics"] == res["metrics"]


def test_sampled_pass_at_k_matches_hand_computation(tmp_path: Path, sandbox) -> None:
    task = bench.get_task("humaneval")
    by_prompt = {p.prompt: p for p in task.problems()}
    # problem i passes on samples j < c_i with c = 0, 1, 2, 3, 4 for HumanEval/0..4
    be = FakeBackend(
        lambda prompt, j: (
            by_prompt[prompt].reference
            if j < int(by_prompt[prompt].task_id.split("/")[1])
            else "    return None\n"
        )
    )
    cfg = EvalConfig(n=4, temperature=0.8, limit=5, ks=(1, 2, 4, 10), bootstrap=300)
    res = bench.evaluate(
        be,
        "humaneval",
        tmp_path,
        model="m",
        config=cfg,
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert set(res["metrics"]) == {"pass@1", "pass@2", "pass@4"}
    for k in (1, 2, 4):
        want = sum(1 - math.comb(4 - c, k) / math.comb(4, k) for c in range(5)) / 5
        assert res["metrics"][f"pass@{k}"]["value"] == pytest.approx(want)
    assert res["per_problem"]["HumanEval/3"] == {"n": 4, "c": 3}
    assert all(c.temperature == 0.8 and c.n == 4 for c in be.configs)
    # more samples later: only the missing ones are generated
    be2 = FakeBackend(lambda prompt, j: by_prompt[prompt].reference)
    cfg6 = EvalConfig(n=6, temperature=0.8, limit=5, ks=(1, 6), bootstrap=300)
    res6 = bench.evaluate(
        be2,
        "humaneval",
        tmp_path,
        model="m",
        config=cfg6,
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert len(be2.prompts) == 5 and all(c.n == 2 for c in be2.configs)
    assert res6["per_problem"]["HumanEval/0"] == {"n": 6, "c": 2}


def test_other_settings_into_the_same_records_is_an_error(tmp_path: Path, sandbox) -> None:
    be = FakeBackend(lambda p, j: "    return None\n")
    bench.evaluate(
        be,
        "humaneval",
        tmp_path,
        model="base",
        config=EvalConfig(limit=1, max_new_tokens=32, canaries=False),
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    with pytest.raises(BenchError, match="generated with other settings"):
        bench.evaluate(
            be,
            "humaneval",
            tmp_path,
            model="base",
            config=EvalConfig(limit=1, max_new_tokens=64, canaries=False),
            sandbox=sandbox,
            progress=False,
            log=lambda *_: None,
        )
    with pytest.raises(BenchError, match="greedy"):
        EvalConfig(n=3, temperature=0.0)


# --------------------------------------------------------------------------- canaries
class _PassEverything:
    """A broken 'sandbox' that reports every program as passed."""

    def map(self, jobs, progress=None):
        from codebench.sandbox import Outcome, Result

        return [Result(Outcome.PASSED) for _ in jobs]

    def close(self) -> None:
        pass


def test_canary_refuses_to_report_when_the_sandbox_passes_everything(tmp_path: Path) -> None:
    be = FakeBackend(lambda p, j: "    return None\n")
    with pytest.raises(CanaryError, match="wrong: passed"):
        bench.evaluate(
            be,
            "humaneval",
            tmp_path,
            model="base",
            config=EvalConfig(limit=3),
            sandbox=_PassEverything(),
            progress=False,
            log=lambda *_: None,
        )
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["status"] == "canary-failed" and "metrics" not in saved
    assert not saved["canary"]["ok"] and any(
        c["kind"] == "wrong" and not c["ok"] for c in saved["canary"]["checks"]
    )
    assert be.prompts == []  # nothing generated, nothing scored
    assert not (tmp_path / "samples.jsonl").exists()


def test_canary_refuses_to_report_when_a_reference_fails(tmp_path: Path, sandbox) -> None:
    from codebench.bench.humaneval import HumanEval

    class BrokenExtraction(HumanEval):
        """An extraction bug: drops the completion's first line."""

        def extract(self, problem, raw):
            return super().extract(problem, raw.split("\n", 1)[-1])

    be = FakeBackend(lambda p, j: "    return None\n")
    with pytest.raises(CanaryError, match="reference"):
        bench.evaluate(
            be,
            BrokenExtraction(),
            tmp_path,
            model="base",
            config=EvalConfig(limit=2),
            sandbox=sandbox,
            progress=False,
            log=lambda *_: None,
        )
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "canary-failed"


# --------------------------------------------------------------------------- resume after kill -9
RESUME_SCRIPT = """
import sys, time
from codebench import bench
from codebench.generate import Completion

class Slow:
    tokenizer = None
    def generate(self, prompts, cfg, progress=None):
        time.sleep(0.3)
        return [[Completion("    return None\\n", "stop", 3)] for _ in prompts]
    def chat_prompt(self, messages):
        return str(messages)

bench.evaluate(Slow(), "humaneval", sys.argv[1], model="base",
               config=bench.EvalConfig(limit=int(sys.argv[2]), batch_size=1, canaries=False), progress=False)
"""


def test_resume_after_kill_9_loses_and_duplicates_nothing(tmp_path: Path, sandbox) -> None:
    out = tmp_path / "eval"
    samples = out / "samples.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO / "lib")}
    proc = subprocess.Popen(
        [sys.executable, "-c", RESUME_SCRIPT, str(out), "12"], env=env, start_new_session=True
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if samples.exists() and samples.read_text().count("\n") >= 3:
                break
            if proc.poll() is not None:
                pytest.fail(f"worker exited early with {proc.returncode}")
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done = [r["task_id"] for r in read_jsonl(samples)]
    assert 3 <= len(done) < 12 and len(set(done)) == len(done)
    # a torn last line, as a kill in the middle of a write leaves it
    with samples.open("a") as fh:
        fh.write('{"task_id": "HumanEval/99", "sam')
    be = FakeBackend(lambda p, j: "    return None\n")
    res = bench.evaluate(
        be,
        "humaneval",
        out,
        model="base",
        config=EvalConfig(limit=12, batch_size=1, canaries=False),
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert len(be.prompts) == 12 - len(done)  # only the missing samples were generated
    recs = list(read_jsonl(samples))
    keys = [(r["task_id"], r["sample"]) for r in recs]
    assert len(keys) == 12 and len(set(keys)) == 12
    assert res["samples"] == 12 and res["status"] == "ok"


# --------------------------------------------------------------------------- other benchmark kinds
def test_instruct_protocol_uses_the_chat_template_and_fences(tmp_path: Path, sandbox) -> None:
    task = bench.get_task("humaneval:instruct")
    refs = {p.prompt.strip(): p for p in task.problems()}

    def answer(prompt: str, j: int) -> str:
        key = next(k for k in refs if k in prompt)
        p = refs[key]
        return f"Sure.\n```python\n{p.prompt}{p.reference}```\nThis works because..."

    be = FakeBackend(answer)
    res = bench.evaluate(
        be,
        "humaneval:instruct",
        tmp_path,
        model="chat",
        config=EvalConfig(limit=3),
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert res["metrics"]["pass@1"]["value"] == 1.0
    assert (
        be.prompts[0].startswith("### Instruction:\nPlease continue to complete the function.")
        and be.configs[0].stop == []
    )


def test_mtpb_multi_turn_context_grows_turn_by_turn(tmp_path: Path, data_dir, sandbox) -> None:
    task = bench.get_task("mtpb", data_dir)
    turn_ref = {}
    for p in task.problems(4):
        ref = task.reference(p)
        if ref:
            for prompt, code in zip(p.meta["prompts"], ref, strict=True):
                turn_ref[f"# {prompt}\n"] = code + "\n# trailing comment is truncated\n"

    def answer(context: str, j: int) -> str:
        return next((code for key, code in turn_ref.items() if context.endswith(key)), "pass\n")

    be = FakeBackend(answer)
    res = bench.evaluate(
        be,
        "mtpb",
        tmp_path,
        model="base",
        config=EvalConfig(limit=4),
        data_dir=data_dir,
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert res["problems"] == 20  # 4 problems x 5 test cases
    # problems 1, 3, 4 have references (15 cases); problem 2 gets "pass" and fails
    assert res["metrics"]["pass@1"]["value"] == pytest.approx(15 / 20)
    rec = next(r for r in read_jsonl(tmp_path / "samples.jsonl") if r["task_id"] == "mtpb/3/0")
    assert len(rec["raw"]) == 3 and rec["program"].startswith(
        "# Import libraries.\n\nimport numpy as np\n\n# Write a function"
    )
    assert "trailing comment" not in rec["program"]
    # the context grows: a later turn's prompt holds the earlier turns' code
    assert any(
        "def minutes_to_seconds" in p
        and p.endswith("# Print the total seconds of 2 hours and 13 minutes.\n")
        for p in be.prompts
    )


def test_fim_skips_without_fim_tokens_and_runs_with_them(tmp_path: Path, sandbox) -> None:
    be = FakeBackend(lambda p, j: "")
    res = bench.evaluate(
        be,
        "fim",
        tmp_path / "none",
        model="base",
        config=EvalConfig(limit=2),
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert res["status"] == "skipped" and "no fill-in-the-middle tokens" in res["reason"]

    class Tok:
        def get_vocab(self):
            return {"<|fim_prefix|>": 1, "<|fim_suffix|>": 2, "<|fim_middle|>": 3}

    task = bench.get_task("fim")
    from codebench.models import FimTokens

    task.tokens = FimTokens("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
    middles = {task.prompt(p): p.reference for p in task.problems(4)}
    be = FakeBackend(
        lambda prompt, j: middles[prompt] if prompt in list(middles)[:2] else "    pass\n",
        tokenizer=Tok(),
    )
    res = bench.evaluate(
        be,
        "fim",
        tmp_path / "fim",
        model="base",
        config=EvalConfig(limit=4),
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert res["status"] == "ok" and res["metrics"]["pass@1"]["value"] == pytest.approx(0.5)
    assert res["task"]["fim_tokens"] == ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"]
    assert "\n" in be.configs[0].stop  # single-line mode stops at the end of the line


def test_pal_math_runs_solution_and_compares_numbers(tmp_path: Path, data_dir, sandbox) -> None:
    task = bench.get_task("pal-gsm8k", data_dir)
    answers = {p.prompt: p.meta["answer"] for p in task.problems(4)}

    def answer(prompt: str, j: int) -> str:
        value = answers[prompt] if list(answers).index(prompt) % 2 == 0 else answers[prompt] + 1
        return f"\n```python\ndef solution():\n    x = {value!r}\n    return x\n```\n"

    be = FakeBackend(answer)
    res = bench.evaluate(
        be,
        "pal-gsm8k",
        tmp_path,
        model="base",
        config=EvalConfig(limit=4),
        data_dir=data_dir,
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert res["metrics"]["pass@1"]["value"] == pytest.approx(0.5)
    assert be.configs[0].stop == ["Question", "----------------"]
    assert res["task"]["rel_tol"] == 1e-4


def test_custom_benchmark_from_the_example_file(tmp_path: Path, sandbox) -> None:
    path = REPO / "examples" / "custom_benchmark.jsonl"
    task = bench.get_task(f"custom:{path}")
    refs = {p.prompt: p.reference for p in task.problems()}
    refs[next(p.prompt for p in task.problems() if p.task_id == "custom/fizz")] = (
        "    return ['Fizz' if i % 3 == 0 else i for i in range(1, n + 1)]\n"
    )
    be = FakeBackend(lambda prompt, j: refs[prompt])
    res = bench.evaluate(
        be,
        f"custom:{path}",
        tmp_path,
        model="base",
        config=EvalConfig(),
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert res["problems"] == 4 and res["metrics"]["pass@1"]["value"] == 1.0
    assert res["benchmark"] == f"custom:{path}:base"


def test_custom_benchmark_errors_name_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"prompt": "def f():\\n", "tests": "def check(c): pass", "entry_point": "f"}\n{"prompt": "x"}\n'
    )
    with pytest.raises(BenchError, match=r"bad.jsonl:2: missing required field 'tests'"):
        bench.get_task(f"custom:{bad}").problems()
    bad.write_text('{"prompt": "def f():\\n", "tests": "def check(candidate): pass"}\n')
    with pytest.raises(BenchError, match=r"bad.jsonl:1: 'entry_point' is required"):
        bench.get_task(f"custom:{bad}").problems()
    bad.write_text("{not json\n")
    with pytest.raises(BenchError, match=r"bad.jsonl:1: malformed JSONL line"):
        bench.get_task(f"custom:{bad}").problems()
    with pytest.raises(BenchError, match="unknown benchmark"):
        bench.get_task("humaneval-x-klingon")
    with pytest.raises(BenchError, match="unknown protocol"):
        bench.get_task("mbpp:chatty")


def _codeio_split(path: Path) -> None:
    """A held-out file written the way 01_build_data writes it (stages.heldout_records)."""
    from codebench.codeio.prompts import prompt_records
    from codebench.codeio.records import unified_record
    from codebench.codeio.stages import heldout_records
    from codebench.codeio.verify import VerifyConfig
    from codebench.records import write_jsonl

    code = "def main_solution(n, k):\n    return n * k + 1\n"
    unified = unified_record(
        refcode=code,
        problem="Multiply and add one.",
        io_requirements="n, k: int; returns int",
        origin={"test": True},
    )
    pairs = [
        {"idx": 0, "input": {"n": 2, "k": 3}, "output": 7},
        {"idx": 1, "input": {"n": 1, "k": 1}, "output": 2},
    ]
    recs = prompt_records(unified, pairs, ["output", "input"], "heldout")
    write_jsonl(path, heldout_records(recs, [unified], VerifyConfig()))


def test_codeio_heldout_io_prediction(tmp_path: Path, sandbox) -> None:
    be = FakeBackend(lambda p, j: "")
    res = bench.evaluate(
        be,
        f"codeio:{tmp_path / 'missing.jsonl'}",
        tmp_path / "a",
        model="base",
        config=EvalConfig(),
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert res["status"] == "skipped" and "held-out split not found" in res["reason"]

    split = tmp_path / "data" / "heldout.jsonl"
    _codeio_split(split)

    def answer(prompt: str, j: int) -> str:
        if "predict the output" in prompt:  # right for the first pair, wrong for the second
            return (
                '```json\n{"output": 7}\n```'
                if '"n": 2' in prompt
                else '```json\n{"output": 3}\n```'
            )
        # any input giving the output works: n=3, k=2 -> 7 for the first pair; wrong keys for the second
        return (
            '```json\n{"input": {"n": 3, "k": 2}}\n```'
            if "\n7\n" in prompt
            else '```json\n{"input": {"x": 1}}\n```'
        )

    be = FakeBackend(answer)
    res = bench.evaluate(
        be,
        f"codeio:{split}",
        tmp_path / "b",
        model="base",
        config=EvalConfig(),
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert res["problems"] == 4 and res["metrics"]["pass@1"]["value"] == pytest.approx(0.5)
    passed = {r["task_id"] for r in read_jsonl(tmp_path / "b" / "samples.jsonl") if r["passed"]}
    assert {t.split(":")[-1] for t in passed} == {"output", "input"}


def test_evaluate_variants_reports_missing_variants_and_builds_tables(
    tmp_path: Path, sandbox, monkeypatch
) -> None:
    from codebench.plots import evaluate as eval_plots
    from codebench.runs import RunLayout, write_variant_info

    run = RunLayout(tmp_path / "run", tmp_path / "figs")
    for v in ("base", "finetuned"):
        (run.model_dir(v)).mkdir(parents=True)
        write_variant_info(run.model_dir(v), kind=v, parent=None)
    backends = {
        "base": FakeBackend(_humaneval_answers({0})),
        "finetuned": FakeBackend(_humaneval_answers({0, 1, 2})),
    }
    logs: list[str] = []
    summary = suite.evaluate_variants(
        run,
        ["base", "finetuned", "int4"],
        ["humaneval", "fim"],
        EvalConfig(limit=4),
        backends=backends,
        progress=False,
        log=logs.append,
    )
    assert summary["missing"] == ["int4"] and any("'int4' not found" in m for m in logs)
    assert {(s["variant"], s["benchmark"]) for s in summary["skipped"]} == {
        ("base", "fim"),
        ("finetuned", "fim"),
    }
    table = suite.results_table(summary["results"])
    scores = table.dropna(subset=["metric"]).set_index("variant")["value"]
    assert scores["base"] == pytest.approx(0.25) and scores["finetuned"] == pytest.approx(0.75)
    assert (run.eval_dir("finetuned", "humaneval") / "results.json").is_file()
    results = suite.load_results(run)
    outcomes, per_problem = (
        bench.suite.outcomes_table(results),
        bench.suite.per_problem_table(results),
    )
    assert len(per_problem) == 8 and set(outcomes["outcome"]) == {"passed", "failed"}
    paths = [
        eval_plots.passk_intervals(suite.results_table(results), run.figures),
        eval_plots.outcome_breakdown(outcomes, run.figures),
        eval_plots.problem_heatmap(per_problem, run.figures),
        eval_plots.language_bars(suite.results_table(results), run.figures),
    ]
    assert all(p is not None and p.is_file() and p.stat().st_size > 1000 for p in paths)
    assert eval_plots.passk_intervals(table.iloc[0:0], run.figures) is None
    # the report stage reads the same files
    from codebench.report import read_evals

    evals = read_evals(run, [])
    assert set(evals["variant"]) == {"base", "finetuned"} and set(evals["metric"]) == {"pass@1"}


def test_generation_errors_are_not_recorded_and_are_retried(tmp_path: Path, sandbox) -> None:
    class Flaky(FakeBackend):
        def generate(self, prompts, cfg, progress=None):
            out = super().generate(prompts, cfg, progress)
            out[0] = [Completion("", "error", 0, error="HTTP 503") for _ in out[0]]
            return out

    cfg = EvalConfig(limit=3, batch_size=8, canaries=False)
    res = bench.evaluate(
        Flaky(lambda p, j: "    return None\n"),
        "humaneval",
        tmp_path,
        model="m",
        config=cfg,
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert (
        res["status"] == "incomplete"
        and res["incomplete"] == ["HumanEval/0"]
        and res["samples"] == 2
    )
    assert res["timing"]["generation_errors"] == 1
    be = FakeBackend(lambda p, j: "    return None\n")
    res = bench.evaluate(
        be,
        "humaneval",
        tmp_path,
        model="m",
        config=cfg,
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert len(be.prompts) == 1 and res["status"] == "ok" and res["samples"] == 3


def test_evaluate_section_validates_greedy_and_sampling() -> None:
    from codebench.params import EvaluateSection, ProfileError, stage_config

    assert EvaluateSection(n=20, temperature=0.8).n == 20
    ns = {
        "profile": "p",
        "seed": 0,
        "device": "cpu",
        "data_dir": None,
        "run_dir": "/tmp/cb-p",
        "figures_dir": "/tmp/cb-f",
        "n": 5,
        "temperature": 0.0,
    }
    with pytest.raises(ProfileError, match="greedy"):
        stage_config("evaluate", ns)


def test_samples_of_other_weights_are_never_resumed(tmp_path: Path, sandbox) -> None:
    """A variant retrained (or recompressed) in the same folder: its old samples are set
    aside and generated again, not scored as the new model's (found in a fresh-clone rerun)."""
    from codebench.runs import RunLayout, write_variant_info

    run = RunLayout(tmp_path / "run", tmp_path / "figs")
    run.model_dir("base").mkdir(parents=True)
    write_variant_info(run.model_dir("base"), kind="base", parent=None)
    weights = run.model_dir("base") / "model.safetensors"
    weights.write_bytes(b"old weights")
    cfg = EvalConfig(limit=2, canaries=False)
    kw = dict(config=cfg, progress=False, log=lambda *_: None)
    old = FakeBackend(_humaneval_answers({0, 1}))
    first = suite.evaluate_variants(run, ["base"], ["humaneval"], backends={"base": old}, **kw)
    assert first["results"][0]["metrics"]["pass@1"]["value"] == 1.0
    again = FakeBackend(_humaneval_answers(set()))
    suite.evaluate_variants(run, ["base"], ["humaneval"], backends={"base": again}, **kw)
    assert again.prompts == []  # same weights: resumed, nothing generated
    weights.write_bytes(b"retrained weights")
    logs: list[str] = []
    new = FakeBackend(_humaneval_answers(set()))
    res = suite.evaluate_variants(
        run, ["base"], ["humaneval"], backends={"base": new}, **{**kw, "log": logs.append}
    )
    assert len(new.prompts) == 2  # regenerated with the new weights
    assert res["results"][0]["metrics"]["pass@1"]["value"] == 0.0
    folder = run.eval_dir("base", "humaneval")
    assert len(list(folder.glob("samples.other-weights-*.jsonl"))) == 1  # kept, not read
    assert any("other weights" in m for m in logs)
    keys = {r["model_key"] for r in read_jsonl(folder / "samples.jsonl")}
    assert len(keys) == 1 and None not in keys
