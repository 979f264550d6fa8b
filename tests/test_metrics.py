"""codebench.metrics against known values: sacrebleu's published example, identity and
unrelated-input bounds for BERTScore and CodeBLEU, and CodeBLEU's components by hand."""

from __future__ import annotations

import json

import pytest

from codebench import metrics

# The example in sacrebleu's README (two reference streams): BLEU = 48.53, chrF2 = 59.73.
SYS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
REFS = [
    ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
    ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
]

ADD = '''def add_all(xs, start=0):
    """Sum xs onto start."""
    total = start
    for x in xs:
        total += x  # accumulate
    return total
'''
ADD_RENAMED = """def add_all(values, init=0):
    acc = init
    for v in values:
        acc += v
    return acc
"""
UNRELATED = """import os


class Walker:
    def list(self, root):
        return sorted(os.listdir(root))
"""


def test_bleu_and_chrf_match_sacrebleu_readme() -> None:
    assert metrics.bleu(SYS, REFS) == pytest.approx(48.53, abs=0.01)
    assert metrics.chrf(SYS, REFS) == pytest.approx(59.73, abs=0.01)


def test_single_reference_layout_and_sentence_bleu() -> None:
    assert metrics.bleu(["a b c d e"], ["a b c d e"]) == pytest.approx(100.0)
    assert metrics.sentence_bleu(
        "the cat sat on the mat", "the cat sat on the mat"
    ) == pytest.approx(100.0)
    assert metrics.chrf(["hello world"], ["hello world"]) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        metrics.bleu(["a", "b"], ["a"])


def test_bertscore_local_encoder_identity_and_order() -> None:
    hyps = ["Return the sum of two numbers.", "Sort the list in place.", ""]
    refs = ["Return the sum of two numbers.", "Download the weather forecast for Paris.", "x"]
    s = metrics.bertscore(hyps, refs)
    assert s["f1"][0] == pytest.approx(1.0, abs=1e-4)
    assert s["precision"][0] == pytest.approx(1.0, abs=1e-4)
    assert s["f1"][1] < 0.9  # different meaning scores lower than identity
    assert s["f1"][2] == 0.0  # empty hypothesis
    paraphrase = metrics.bertscore(["Add the two numbers and return the result."], [refs[0]])["f1"][
        0
    ]
    assert s["f1"][1] < paraphrase < 1.0


def test_bertscore_missing_encoder_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no config.json"):
        metrics.bertscore(["a"], ["a"], model_path=tmp_path)


def test_codebleu_identical_is_one() -> None:
    for code in (ADD, UNRELATED, "def f(a):\n    return [i * a for i in range(a)]\n"):
        r = metrics.codebleu([code], [code])
        assert r["codebleu"] == pytest.approx(1.0), (code, r)


def test_codebleu_is_the_reference_package_with_its_argument_order() -> None:
    pytest.importorskip("codebleu", reason="optional extra: pip install -e '.[codebleu]'")
    # value printed by `codebleu.calc_codebleu([ref], [pred], lang="python")`, codebleu 0.7.0
    pred = "def add(a, b):\n    return a + b\n"
    ref = "def add(x, y):\n    return x + y\n"
    r = metrics.codebleu([pred], [ref])
    assert r["codebleu"] == pytest.approx(0.523297991, abs=1e-6)
    assert r["syntax_match"] == pytest.approx(1.0) and r["dataflow_match"] == pytest.approx(1.0)
    # predictions and references are not interchangeable: the wrapper must not swap them
    short, long = "def f(x):\n    return x\n", ADD
    assert metrics.codebleu([short], [long]) != metrics.codebleu([long], [short])


def test_codebleu_unrelated_is_low_and_renaming_keeps_structure() -> None:
    unrelated = metrics.codebleu([UNRELATED], [ADD])
    renamed = metrics.codebleu([ADD_RENAMED], [ADD])
    assert unrelated["codebleu"] < 0.3
    assert renamed["syntax_match"] > unrelated["syntax_match"]
    assert unrelated["codebleu"] < renamed["codebleu"] < 1.0
    with pytest.raises(ValueError, match="1 predictions but 2 references"):
        metrics.codebleu([ADD], [ADD, ADD])


def test_codebleu_without_the_package_says_how_to_install(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "codebleu", None)  # import fails as if not installed
    with pytest.raises(metrics.MetricUnavailable, match=r"\.\[codebleu\]"):
        metrics.codebleu([ADD], [ADD])


# --------------------------------------------------------------------------- explain benchmark


class _Out:
    def __init__(self, text: str) -> None:
        self.text = text


class OracleBackend:
    """Explains with the problem's own description and round-trips to the reference code
    (or, with `wrong`, unrelated prose and a wrong function); counts generate calls."""

    def __init__(self, task, wrong: bool = False) -> None:
        self.problems, self.wrong, self.calls = task.problems(), wrong, 0

    def chat_prompt(self, messages: list[dict]) -> str:
        return messages[-1]["content"]

    def generate(self, prompts, cfg, progress=None):
        self.calls += 1
        out = []
        for pr in prompts:
            if pr.startswith("Explain"):
                p = next(p for p in self.problems if p.meta["code"].rstrip() in pr)
                out.append([_Out("It prints a poem about the sea." if self.wrong else p.reference)])
            else:
                p = next(p for p in self.problems if p.meta["signature"] in pr)
                code = f"{p.meta['signature']}\n    return None\n" if self.wrong else p.meta["code"]
                out.append([_Out(f"```python\n{code}```")])
        return out


def test_explain_problems_hide_the_docstring() -> None:
    from codebench.bench.explain import Explain, strip_docstrings

    probs = Explain(protocol="humaneval").problems()
    assert len(probs) == 164 and all(p.reference for p in probs)
    assert not any(
        '"""' in p.meta["code"] and p.task_id != "HumanEval/64" for p in probs
    )  # /64: a FIX constant
    assert (
        probs[0].meta["signature"]
        == "def has_close_elements(numbers: List[float], threshold: float) -> bool:"
    )
    assert strip_docstrings('def f():\n    """only a docstring"""\n') == "def f():\n    pass\n"


def test_explain_oracle_scores_perfect_and_resumes(tmp_path) -> None:
    from codebench.bench.explain import Explain
    from codebench.generate import GenerationConfig

    task = Explain(protocol="humaneval")
    backend = OracleBackend(task)
    cfg = GenerationConfig(max_new_tokens=16)
    r = task.evaluate(backend, tmp_path, cfg=cfg, roundtrip_cfg=cfg, limit=3, variant="oracle")
    m = r["metrics"]
    assert m["bleu"]["value"] == pytest.approx(100.0) and m["chrf"]["value"] == pytest.approx(100.0)
    assert m["bertscore_f1"]["value"] == pytest.approx(1.0, abs=1e-4)
    assert m["roundtrip_pass@1"]["value"] == 1.0 and m["codebleu"]["value"] == pytest.approx(1.0)
    assert r["problems"] == 3 and r["status"] == "ok" and (tmp_path / "results.json").is_file()
    calls = backend.calls
    again = task.evaluate(backend, tmp_path, cfg=cfg, roundtrip_cfg=cfg, limit=3)
    assert backend.calls == calls and again["metrics"] == m  # every problem was already scored
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 3


def test_explain_wrong_answers_score_low(tmp_path) -> None:
    from codebench.bench.explain import Explain
    from codebench.generate import GenerationConfig

    task = Explain(protocol="mbpp")
    cfg = GenerationConfig(max_new_tokens=16)
    r = task.evaluate(
        OracleBackend(task, wrong=True), tmp_path, cfg=cfg, roundtrip_cfg=cfg, limit=3
    )
    m = r["metrics"]
    assert m["roundtrip_pass@1"]["value"] == 0.0 and m["bleu"]["value"] < 5
    assert m["bertscore_f1"]["value"] < 0.5 and m["codebleu"]["value"] < 0.6
    rows = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert {x["outcome"] for x in rows} == {"failed"}


@pytest.mark.slow
def test_explain_through_the_eval_runner_with_the_tiny_model(tiny_model_dir, tmp_path) -> None:
    """The registered spec, run by bench.runner like 04_evaluate does, on the session's tiny model."""
    from codebench.bench.runner import EvalConfig, evaluate
    from codebench.generate import make_backend

    backend = make_backend("hf", model=str(tiny_model_dir), device="cpu")
    r = evaluate(
        backend,
        "explain",
        tmp_path,
        model="base",
        config=EvalConfig(limit=2, max_new_tokens=24),
        progress=False,
    )
    assert set(r["metrics"]) == {"bertscore_f1", "bleu", "chrf", "roundtrip_pass@1", "codebleu"}
    assert json.loads((tmp_path / "results.json").read_text())["benchmark"] == "explain:humaneval"
