"""Several configurations of one variant side by side: outputs keyed by their settings (or a
named evaluation), the prompt protocol in the resume key, tables and the report comparing them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codebench import bench
from codebench.bench import BenchError, EvalConfig, suite
from codebench.bench import humaneval as he
from codebench.bench.runner import prompt_key, settings_key
from codebench.generate import Completion
from codebench.models import apply_chat
from codebench.runs import RunLayout, write_variant_info


class Fake:
    """Answers HumanEval problems 0 with the reference, the rest wrongly; counts prompts."""

    def __init__(self) -> None:
        task = bench.get_task("humaneval")
        self.ref = {p.prompt: p for p in task.problems()}
        self.prompts: list[str] = []
        self.tokenizer = None

    def generate(self, prompts, cfg, progress=None):
        self.prompts += list(prompts)
        out = []
        for p in prompts:
            prob = self.ref.get(p)
            good = prob is not None and prob.task_id == "HumanEval/0"
            text = prob.reference if good else "    return None\n"
            out.append([Completion(text, "stop", 5) for _ in range(cfg.n)])
        return out

    def chat_prompt(self, messages):
        return apply_chat(None, messages)


@pytest.fixture(scope="module")
def sandbox():
    from codebench.sandbox import Sandbox

    with Sandbox(timeout=10.0) as sb:
        yield sb


def _run(tmp_path: Path) -> RunLayout:
    run = RunLayout(tmp_path / "run", tmp_path / "figs")
    run.model_dir("base").mkdir(parents=True)
    write_variant_info(run.model_dir("base"), kind="base", parent=None)
    return run


def _eval(run, cfg, be, sandbox_unused=None):
    return suite.evaluate_variants(
        run, ["base"], ["humaneval"], cfg, backends={"base": be}, progress=False,
        log=lambda *_: None,
    )  # fmt: skip


GREEDY = EvalConfig(limit=2, max_new_tokens=32, canaries=False)
SAMPLED = EvalConfig(limit=2, max_new_tokens=32, canaries=False, temperature=0.2, n=3)


def test_configurations_coexist_and_resume_into_their_own_folders(tmp_path: Path) -> None:
    run, be = _run(tmp_path), Fake()
    first = _eval(run, GREEDY, be)["results"][0]
    second = _eval(run, SAMPLED, be)["results"][0]
    assert first["evaluation"] == "base"  # the plain folder stage 04 has always used
    tag = second["evaluation"]
    assert tag.startswith("base@t0.2-n3-") and second["variant"] == "base"
    assert (run.eval_dir("base", "humaneval") / "results.json").is_file()
    assert (run.eval_dir(tag, "humaneval") / "results.json").is_file()
    plain = json.loads((run.eval_dir("base", "humaneval") / "results.json").read_text())
    assert plain["config"]["temperature"] == 0 and plain["n"] == 1  # untouched
    # each configuration again: back to its own folder, nothing generated
    n_prompts = len(be.prompts)
    again = [_eval(run, c, be)["results"][0] for c in (GREEDY, SAMPLED)]
    assert [r["evaluation"] for r in again] == ["base", tag]
    assert [r["timing"]["generated"] for r in again] == [0, 0] and len(be.prompts) == n_prompts
    # the tables and the report compare them
    table = suite.results_table(suite.load_results(run)).dropna(subset=["metric"])
    p1 = table[table.metric == "pass@1"].set_index("evaluation")
    assert set(p1.index) == {"base", tag}
    assert p1.loc["base", "settings"] == "greedy, n=1, max 32"
    assert p1.loc[tag, "settings"] == "t=0.2 p=0.95, n=3, max 32"
    assert p1.loc["base", "value"] == pytest.approx(0.5) == p1.loc[tag, "value"]
    from codebench.report import read_evals

    evals = read_evals(run, [])
    assert set(evals[evals.metric == "pass@1"]["variant"]) == {"base", tag}


def test_named_evaluation_goes_to_its_own_folder(tmp_path: Path) -> None:
    run = _run(tmp_path)
    named = EvalConfig(**{**GREEDY.__dict__, "name": "greedy-32"})
    res = _eval(run, named, Fake())["results"][0]
    assert res["evaluation"] == "base@greedy-32"
    assert (run.eval_dir("base@greedy-32", "humaneval") / "samples.jsonl").is_file()
    assert not run.eval_dir("base", "humaneval").exists()
    for bad in ("", "../x", "a/b", "x" * 65, " sp"):
        with pytest.raises(BenchError, match="evaluation name"):
            EvalConfig(name=bad or "/")


def test_prompt_protocol_is_part_of_the_resume_key(monkeypatch, tmp_path: Path) -> None:
    keys = {p: prompt_key(bench.get_task(f"humaneval:{p}")) for p in he.HumanEval.protocols}
    assert len(set(keys.values())) == 3  # base, base-deepseek, instruct differ
    before = settings_key(GREEDY, bench.get_task("humaneval:instruct"))
    monkeypatch.setattr(he, "INSTRUCT_TEMPLATE", "Other wording:\n{prompt}")
    after = settings_key(GREEDY, bench.get_task("humaneval:instruct"))
    assert before != after  # samples of another instruct wording are never resumed
    assert settings_key(GREEDY, bench.get_task("humaneval")) == settings_key(
        EvalConfig(**{**GREEDY.__dict__, "limit": 5}), bench.get_task("humaneval")
    )  # the limit is not a setting of the samples: a larger one extends them


def test_other_prompt_wording_into_the_same_folder_is_refused_by_evaluate(
    monkeypatch, tmp_path: Path, sandbox
) -> None:
    be = Fake()
    kw = {"model": "base", "config": GREEDY, "sandbox": sandbox, "progress": False}
    bench.evaluate(be, "humaneval:instruct", tmp_path, log=lambda *_: None, **kw)
    monkeypatch.setattr(he, "INSTRUCT_TEMPLATE", "Other wording:\n{prompt}")
    with pytest.raises(BenchError, match="prompt protocol differ.*named evaluation"):
        bench.evaluate(be, "humaneval:instruct", tmp_path, log=lambda *_: None, **kw)


def test_fim_rerun_stays_in_its_folder(tmp_path: Path) -> None:
    """The settings key of a task that reads the tokenizer (FIM markers) is computed the way
    `evaluate` computes it, so the same configuration again resumes the plain folder."""

    class Tok:
        def get_vocab(self):
            return {"<|fim_prefix|>": 1, "<|fim_suffix|>": 2, "<|fim_middle|>": 3}

    run, be = _run(tmp_path), Fake()
    be.tokenizer = Tok()
    for _ in range(2):
        res = suite.evaluate_variants(
            run, ["base"], ["fim"], GREEDY, backends={"base": be}, progress=False,
            log=lambda *_: None,
        )["results"][0]  # fmt: skip
        assert res["status"] == "ok" and res["evaluation"] == "base"
    assert res["timing"]["generated"] == 0
