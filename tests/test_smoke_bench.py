"""The built-in pyfamilies smoke benchmark: generation, disjointness, harness canaries."""

from __future__ import annotations

import pytest

from codebench.bench import get_task, names, pyfamilies
from codebench.codeio.decontam import EVAL_SETS, Decontaminator


def _run(prompt: str, body: str, tests: str, entry: str) -> None:
    scope: dict = {}
    exec(prompt + body + "\n" + tests + f"\ncheck({entry})\n", scope)  # trusted, generated here


def test_registered_and_deterministic():
    assert "pyfamilies" in names()
    a = get_task("pyfamilies").problems()
    b = get_task("pyfamilies").problems()
    assert len(a) == pyfamilies.EVAL_PROBLEMS >= 100
    assert [(p.task_id, p.prompt, p.tests, p.reference) for p in a] == [
        (p.task_id, p.prompt, p.tests, p.reference) for p in b
    ]
    assert len({p.task_id for p in a}) == len(a) and len({p.prompt for p in a}) == len(a)
    families = {p.meta["family"] for p in a}
    assert families == {f.key for f in pyfamilies.FAMILIES}  # every family is evaluated
    sft = get_task("pyfamilies-sft").problems()
    assert len(sft) >= 100 and {p.meta["family"] for p in sft} == {
        f.key for f in pyfamilies.SFT_FAMILIES
    }
    assert not {p.prompt for p in sft} & {p.prompt for p in a}
    assert get_task("pyfamilies").info()["smoke"] is True
    assert get_task("pyfamilies:instruct").protocol == "instruct"


def test_the_600_problem_set_extends_pyfamilies():
    """`pyfamilies-600` is `pyfamilies` (same problems, same ids) and 450 more problems of the
    same evaluation pairs, all distinct, every family in it."""
    small, large = get_task("pyfamilies").problems(), get_task("pyfamilies-600").problems()
    assert len(large) == pyfamilies.LARGE_PROBLEMS == 600
    key = [(p.task_id, p.prompt, p.tests, p.reference) for p in large]
    assert key[:150] == [(p.task_id, p.prompt, p.tests, p.reference) for p in small]
    assert len({p.prompt for p in large}) == 600 and len({p.task_id for p in large}) == 600
    assert all(pyfamilies.is_eval_pair(p.entry_point, p.meta["family"]) for p in large)
    assert {p.meta["family"] for p in large[150:]} == {f.key for f in pyfamilies.FAMILIES}
    assert not {p.prompt for p in large} & {
        t.prompt for t in pyfamilies.training_instances(3000, seed=0)
    }


@pytest.mark.parametrize("name", ["pyfamilies", "pyfamilies-sft", "pyfamilies-600"])
def test_humaneval_format_and_reference_solutions_pass(name):
    for p in get_task(name).problems():
        assert p.prompt.startswith(f"def {p.entry_point}(") and p.prompt.rstrip().endswith('"""')
        assert p.reference.startswith("    return ") and p.tests.startswith("def check(candidate):")
        assert p.tests.count("assert candidate(") == 5
        _run(p.prompt, p.reference, p.tests, p.entry_point)


@pytest.mark.parametrize("name", ["pyfamilies", "pyfamilies-600"])
def test_wrong_answers_fail(name):
    """`return None` fails, and so does the right family with any other constant."""
    for p in get_task(name).problems():
        with pytest.raises(AssertionError):
            _run(p.prompt, "    return None\n", p.tests, p.entry_point)
        m = p.meta
        assert not _wrong_constants_passing(
            p.prompt, p.tests, p.entry_point, m["family"], m["arg"], m["constant"]
        )


def _wrong_constants_passing(prompt, tests, entry, family, arg, constant) -> list:
    """The other constants of the family whose one-line solution passes the tests (run here)."""
    fam = pyfamilies.FAMILY_BY_KEY[family]
    passing = []
    for other in fam.constants:
        if other != constant:
            try:
                _run(prompt, f"    return {fam.render(arg, other)[1]}\n", tests, entry)
            except AssertionError:
                continue
            passing.append(other)
    return passing


def _wrong_constant_passes(t: pyfamilies.Instance) -> bool:
    return bool(_wrong_constants_passing(t.prompt, t.tests, t.name, t.family, t.arg, t.constant))


def test_instances_with_weak_tests_are_marked_and_left_out():
    """`Instance.strict` says whether the tests fail every other constant, checked by running
    them; weak instances exist among training draws, and neither the benchmark nor the GRPO
    tasks hold one."""
    from codebench.train.grpo import pyfamilies_train_tasks

    train = pyfamilies.training_instances(3000, seed=1)
    weak = [t for t in train if not t.strict]
    assert 0 < len(weak) < 0.02 * len(train)  # measured: about 0.7 %
    for t in weak:
        assert _wrong_constant_passes(t), t.task_id
    for t in [t for t in train if t.strict][:300]:
        assert not _wrong_constant_passes(t), t.task_id
    rows = pyfamilies_train_tasks(3000, seed=1)
    assert {r["task_id"] for r in rows}.isdisjoint({t.task_id for t in weak})
    assert all(i.strict for i in pyfamilies.eval_instances(pyfamilies.LARGE_PROBLEMS))


def test_training_instances_are_disjoint_by_construction():
    train = pyfamilies.training_instances(3000, seed=0)
    assert train == pyfamilies.training_instances(3000, seed=0)  # deterministic
    assert train != pyfamilies.training_instances(3000, seed=1)
    evals = pyfamilies.eval_instances()
    eval_pairs = {(e.name, e.family) for e in evals}
    assert not eval_pairs & {(t.name, t.family) for t in train}
    assert not {e.prompt for e in evals} & {t.prompt for t in train}
    # ... yet every family and every name is seen in training
    assert {t.family for t in train} == {e.family for e in evals}
    assert {e.name for e in evals} <= {t.name for t in train}
    for t in train[:300]:
        _run(t.prompt, t.solution, t.tests, t.name)


def test_decontamination_knows_the_set():
    assert {"pyfamilies", "pyfamilies-600"} <= set(EVAL_SETS)
    large = Decontaminator.build(["pyfamilies-600"], None, n=10, threshold=0.1)
    assert (
        not large.missing
        and large.index["pyfamilies-600"]
        > Decontaminator.build(["pyfamilies"], None, n=10, threshold=0.1).index["pyfamilies"]
    )  # a strict superset of the 150 problems' n-grams
    dc = Decontaminator.build(["pyfamilies"], None, n=10, threshold=0.1)
    assert not dc.missing and dc.index["pyfamilies"]
    p = pyfamilies.eval_instances()[7]
    assert dc.is_contaminated(p.prompt + p.solution)[0]  # an evaluation problem itself is caught
    train = pyfamilies.training_instances(2000, seed=0)
    # word n-grams (names and constants count): only templated near-misses are flagged
    flagged = sum(dc.check(t.prompt + t.solution)[0] >= dc.threshold for t in train)
    assert flagged < 20
    # the name-blind shape signal sees that training instances share their family's template,
    # which is why stage 00 checks family instances with words only (tiny.family_instances)
    assert sum(dc.is_contaminated(t.prompt + t.solution)[0] for t in train) > 1000


def test_canaries_and_scoring_through_the_harness(tmp_path):
    """References pass and `return None` fails through the sandbox; a backend answering
    with the reference for half the problems scores 0.5."""
    from codebench.bench import EvalConfig, evaluate
    from codebench.generate import Completion

    task = get_task("pyfamilies")
    problems = task.problems(10)
    by_prompt = {p.prompt: p for p in problems}

    class Half:
        tokenizer = None

        def generate(self, prompts, cfg, progress=None):
            out = []
            for prompt in prompts:
                p = by_prompt[prompt]
                good = int(p.task_id.split("/")[1]) % 2 == 0
                text = p.reference + "\ndef extra():\n    pass\n" if good else "    return 0\n"
                out.append([Completion(text, "stop", 7)])
            return out

    res = evaluate(
        Half(),
        "pyfamilies",
        tmp_path / "out",
        model="half",
        config=EvalConfig(limit=10, ks=(1,), bootstrap=200),
        progress=False,
        log=lambda *a: None,
    )
    assert res["canary"]["ok"] and len(res["canary"]["checks"]) == 6
    assert res["metrics"]["pass@1"]["value"] == pytest.approx(0.5)
    assert res["metrics"]["pass@1"]["problems"] == 10


def test_per_benchmark_limit():
    from codebench.bench import EvalConfig
    from codebench.bench.tasks import BenchError
    from codebench.params import EvaluateSection

    cfg = EvalConfig(limit={"default": 8, "pyfamilies": None, "mbpp:instruct": 3})
    assert cfg.limit_for("pyfamilies") is None and cfg.limit_for("pyfamilies:instruct") is None
    assert cfg.limit_for("pyfamilies-sft") == 8  # its own name, not a prefix match
    assert cfg.limit_for("humaneval") == 8 and cfg.limit_for("mbpp:instruct") == 3
    assert cfg.limit_for("mbpp") == 8
    assert EvalConfig(limit={"mbpp": 2}).limit_for("humaneval") is None
    assert EvalConfig(limit=5).limit_for("anything") == 5
    with pytest.raises(BenchError, match="limit"):
        EvalConfig(limit={"default": 0})
    assert EvaluateSection(limit={"default": 8, "pyfamilies": None}).limit["default"] == 8
    with pytest.raises(ValueError, match="limit"):
        EvaluateSection(limit={"default": 0})
    with pytest.raises(ValueError):
        EvaluateSection(limit=0)


def test_per_benchmark_limit_recorded_as_a_number(tmp_path):
    from codebench.bench import EvalConfig, evaluate
    from codebench.generate import Completion

    class Wrong:
        tokenizer = None

        def generate(self, prompts, cfg, progress=None):
            return [[Completion("    return 0\n", "stop", 3)] for _ in prompts]

    res = evaluate(
        Wrong(),
        "pyfamilies",
        tmp_path / "o",
        model="w",
        config=EvalConfig(limit={"default": 2, "pyfamilies": 4}, ks=(1,), canaries=False),
        progress=False,
        log=lambda *a: None,
    )
    assert res["config"]["limit"] == 4 and res["metrics"]["pass@1"]["problems"] == 4
    assert res["metrics"]["pass@1"]["value"] == 0


def test_smoke_profile_fits_the_tiny_model_and_evaluates_pyfamilies_in_full():
    """The default profile's lengths fit the tiny model's window, and the smoke benchmark
    is evaluated on all its problems (>= 100) while the others keep a small limit."""
    from pathlib import Path

    from codebench.bench import EvalConfig
    from codebench.params import load_profile

    p = load_profile(Path(__file__).resolve().parents[1] / "params" / "smoke.yaml")
    window = p.model.tiny.context
    assert p.model.base == "tiny" and p.finetune.max_length <= window
    assert p.model.tiny.family_examples > 0
    assert "pyfamilies" in p.evaluate.benchmarks and "pyfamilies" in p.data.decontam_sets
    assert "pyfamilies-sft" in p.evaluate.benchmarks and "pyfamilies-sft" in p.data.decontam_sets
    cfg = EvalConfig(limit=p.evaluate.limit)
    assert cfg.limit_for("pyfamilies") is None and cfg.limit_for("pyfamilies:instruct") is None
    assert cfg.limit_for("pyfamilies-sft") is None
    others = [b for b in p.evaluate.benchmarks if not b.split(":")[0].startswith("pyfamilies")]
    assert others and all(cfg.limit_for(b) <= 10 for b in others)
    assert p.data.family_sft > 0  # the SFT mix holds family functions (codeio.families)
    assert p.evaluate.temperature == 0 and p.evaluate.n == 1
    # byte-level BPE: a prompt has at most as many tokens as bytes, so every pyfamilies
    # prompt plus its generation budget fits the window
    longest = max(
        len(q.prompt.encode())
        for name in ("pyfamilies", "pyfamilies-sft")
        for q in get_task(name).problems()
    )
    assert longest + p.evaluate.max_new_tokens <= window
    assert p.data.max_new_tokens >= 256
