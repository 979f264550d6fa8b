"""Reference solutions pass and wrong answers fail, through each task's own extraction,
sandbox job and trusted verdict (the path model samples take)."""

from __future__ import annotations

import shutil

import pytest

from codebench.bench import get_task
from codebench.bench.tasks import Task
from codebench.paths import missing_data

FIM_TOKENS = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")


@pytest.fixture(scope="module")
def sandbox():
    from codebench.sandbox import Sandbox

    with Sandbox(timeout=10.0) as sb:
        yield sb


def _score(task: Task, sandbox, raw_of, problems=None) -> dict[str, tuple[str, str]]:
    """{task_id: (outcome, detail)} for raw outputs given by raw_of(problem)."""
    problems = (
        problems if problems is not None else [p for p in task.problems() if raw_of(p) is not None]
    )
    programs = [task.extract(p, raw_of(p)) for p in problems]
    jobs = [task.job(p, prog) for p, prog in zip(problems, programs, strict=True)]
    results = iter(sandbox.map([j for j in jobs if j is not None]))
    out = {}
    for p, prog, job in zip(problems, programs, jobs, strict=True):
        out[p.task_id] = task.verdict(p, prog, None if job is None else next(results))
    return out


def _failures(scored: dict[str, tuple[str, str]], want_pass: bool = True) -> dict:
    return {t: v for t, v in scored.items() if (v[0] == "passed") != want_pass}


def _fim(spec: str) -> Task:
    from codebench.models import FimTokens

    task = get_task(spec)
    task.tokens = FimTokens(*FIM_TOKENS)
    return task


@pytest.mark.parametrize("protocol", ["base", "instruct"])
def test_humaneval_all_164_references_pass(sandbox, protocol: str) -> None:
    task = get_task(f"humaneval:{protocol}")
    scored = _score(task, sandbox, task.reference)
    assert len(scored) == 164
    assert _failures(scored) == {}


def test_humaneval_wrong_answers_all_fail(sandbox) -> None:
    task = get_task("humaneval")
    scored = _score(task, sandbox, task.wrong, task.problems())
    assert len(scored) == 164 and _failures(scored, want_pass=False) == {}


def test_mbpp_test_split_references_pass(data_dir, sandbox) -> None:
    task = get_task("mbpp", data_dir)
    problems = task.problems()
    assert [p.task_id for p in problems[:2]] == ["mbpp/11", "mbpp/12"] and len(problems) == 500
    scored = _score(task, sandbox, task.reference)
    failures = _failures(scored)
    # docs/benchmarks.md lists the exceptions; at the time of writing there are none
    assert len(failures) <= 5, failures
    assert (500 - len(failures)) / 500 >= 0.99


@pytest.mark.slow
def test_mbpp_instruct_references_pass(data_dir, sandbox) -> None:
    task = get_task("mbpp:instruct", data_dir)
    assert len(_failures(_score(task, sandbox, task.reference))) <= 5


def test_mbpp_prompt_is_the_standard_three_shot(data_dir) -> None:
    p = get_task("mbpp", data_dir).problems(1)[0]
    assert p.prompt.count("[BEGIN]") == 4 and p.prompt.count("[DONE]") == 3
    assert p.prompt.startswith(
        "You are an expert Python programmer, and here is your task: Write a function to find the similar elements"
    )
    assert p.prompt.endswith('assert remove_Occ("PHP","P") == "H"\n[BEGIN]')
    assert "is_not_prime" in p.prompt and "heap_queue_largest" in p.prompt and p.stop == ["[DONE]"]


# compiled languages under the instruct protocol are slow-marked (each program compiles, ~2 s)
MULTIPLE_CASES = [
    pytest.param(
        lang,
        proto,
        marks=[pytest.mark.slow] if proto == "instruct" and lang in ("cpp", "java") else [],
        id=f"{proto}-{lang}",
    )
    for proto in ("base", "instruct")
    for lang in ("js", "cpp", "java", "sh")
]


@pytest.mark.parametrize(("lang", "protocol"), MULTIPLE_CASES)
def test_multiple_hand_written_solutions_pass_and_wrong_fail(
    data_dir, sandbox, lang: str, protocol: str
) -> None:
    tool = {"js": "node", "cpp": "g++", "java": "javac", "sh": "bash"}[lang]
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")
    task = get_task(f"multiple-{lang}:{protocol}", data_dir)
    refs = [p for p in task.problems() if p.reference is not None]
    assert len(refs) >= 2
    if lang in ("cpp", "java") and protocol == "base":
        # keep the default run short (each program compiles); -m slow covers the rest
        refs = refs[:1]
    assert _failures(_score(task, sandbox, task.reference, refs)) == {}
    assert _failures(_score(task, sandbox, task.wrong, refs), want_pass=False) == {}


def test_multiple_problems_keep_their_own_stop_tokens(data_dir) -> None:
    for lang, stop in (("js", "\nfunction "), ("cpp", "\n}"), ("java", "\n    }\n"), ("sh", "\n}")):
        problems = get_task(f"multiple-{lang}", data_dir).problems()
        assert len(problems) >= 150 and all(stop in p.stop for p in problems)
        assert problems[0].task_id.startswith("HumanEval_0_")


@pytest.mark.parametrize("protocol", ["single-line", "multi-line"])
def test_fim_references_pass_and_masks_are_deterministic(sandbox, protocol: str) -> None:
    task = _fim(f"fim:{protocol}")
    scored = _score(task, sandbox, task.reference)
    assert len(scored) == 164 and _failures(scored) == {}
    again = _fim(f"fim:{protocol}").problems()
    assert [p.prompt for p in again] == [p.prompt for p in task.problems()]
    other = get_task(f"fim:{protocol}", mask_seed=1)
    assert [p.prompt for p in other.problems()] != [p.prompt for p in task.problems()]
    first = task.problems()[0]
    if protocol == "single-line":
        assert first.reference.count("\n") == 1
    assert task.prompt(first).startswith(FIM_TOKENS[0]) and task.prompt(first).endswith(
        FIM_TOKENS[2]
    )


@pytest.mark.parametrize("subset", ["gsm8k", "svamp", "mawps"])
def test_pal_math_hand_written_solutions_pass(data_dir, sandbox, subset: str) -> None:
    task = get_task(f"pal-{subset}", data_dir)
    if reason := missing_data(task.data_files()):  # MAWPS is not shipped (codebench/data)
        pytest.skip(reason)
    refs = [p for p in task.problems() if p.reference is not None]
    assert len(refs) >= 2
    assert _failures(_score(task, sandbox, task.reference, refs)) == {}
    assert _failures(_score(task, sandbox, task.wrong, refs), want_pass=False) == {}


def test_pal_math_gsm_hard_reference_programs_pass(data_dir, sandbox) -> None:
    task = get_task("pal-gsm-hard", data_dir)
    problems = task.problems()[:100]
    assert _failures(_score(task, sandbox, task.reference, problems)) == {}


@pytest.mark.slow
def test_pal_math_gsm_hard_all_reference_programs_pass(data_dir, sandbox) -> None:
    task = get_task("pal-gsm-hard", data_dir)
    scored = _score(task, sandbox, task.reference)
    assert len(scored) == 1319 and _failures(scored) == {}


def test_pal_math_numeric_comparison() -> None:
    from codebench.bench.palmath import numeric_match

    assert numeric_match(18, 18.0) and numeric_match("1,234", 1234.0) and numeric_match("$5", 5.0)
    assert numeric_match(0.1 + 0.2, 0.3) and numeric_match(100000.4, 100000.0)  # within rel 1e-4
    assert (
        not numeric_match(18.1, 18.0)
        and not numeric_match(True, 1.0)
        and not numeric_match(None, 0.0)
    )
    assert not numeric_match(1800, 18.0)  # no "percentage" leniency
    assert not numeric_match([18], 18.0) and not numeric_match(float("nan"), 0.0)


@pytest.mark.parametrize("protocol", ["multi", "single"])
def test_mtpb_references_pass_and_wrong_fail(data_dir, sandbox, protocol: str) -> None:
    task = get_task(f"mtpb:{protocol}", data_dir)
    problems = task.problems()
    assert len(problems) == 575 and len({p.meta["problem_id"] for p in problems}) == 115
    refs = [p for p in problems if task.reference(p) is not None]
    assert len(refs) == 15
    assert _failures(_score(task, sandbox, task.reference, refs)) == {}
    assert _failures(_score(task, sandbox, task.wrong, refs), want_pass=False) == {}


def test_mtpb_equivalence_follows_codegen() -> None:
    from codebench.bench.mtpb import equivalent

    def enc(value, type_=None, **kw):
        return {
            "kind": "value",
            "type": type_ or type(value).__name__,
            "value": value,
            "str": str(value),
            **kw,
        }

    assert equivalent(enc(7980), 7980)[0]
    assert equivalent(enc(3.0000000001), 3.0)[0] and not equivalent(enc(3.01), 3.0)[0]
    assert equivalent(enc(3.0, int=3), 3)[0]  # cast to the expected type, as CodeGen does
    assert equivalent(enc("True", type_="str"), True)[0]  # bools compare as strings, as in CodeGen
    assert not equivalent(enc("False", type_="str"), True)[0]
    assert equivalent(enc(["a", "b"]), ["a", "b"])[0]
    assert equivalent({"kind": "ndarray", "type": "ndarray", "value": [1.0, 2.0]}, [1, 2])[0]
    assert (
        equivalent(enc({"a": 1}), {"a": 1})[0] and equivalent(enc(None), None)[0]
    )  # codebench extension
    assert not equivalent(enc("x", list=None), [1])[0]
