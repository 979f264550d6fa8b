"""pyfamilies functions in the SFT mix (codebench.codeio.families): training pairs only,
decontaminated against the smoke benchmark, in the format its instruct protocol extracts."""

from __future__ import annotations

import pytest

from codebench.bench import pyfamilies
from codebench.bench.humaneval import INSTRUCT_TEMPLATE, deepseek_instruct_program
from codebench.codeio import families


def test_records_are_training_pairs_decontaminated_and_disjoint() -> None:
    recs, info = families.family_records(300, seed=0, n=10, threshold=0.1)
    assert info["kept"] == len(recs) and info["kept"] + info["removed"] == 300
    evals = pyfamilies.eval_instances()
    eval_prompts = {p.prompt for p in evals}
    eval_pairs = {(p.name, p.family) for p in evals}
    for r in recs:
        user = r["messages"][0]["content"]
        prompt = user.split("```python\n", 1)[1].rsplit("\n```", 1)[0] + "\n"
        name = prompt.split("(", 1)[0].removeprefix("def ")
        assert (name, r["family"]) not in eval_pairs
        assert prompt not in eval_prompts
        assert r["prompt"] == user and r["response"] == r["messages"][1]["content"]
    assert info["max_overlap_kept"] < 0.1
    assert families.family_records(0, 0, 10, 0.1) == ([], {"requested": 0, "kept": 0, "removed": 0})


def _run(program: str, inst) -> None:
    exec(program + "\n" + inst.tests + f"\ncheck({inst.name})\n", {})  # trusted: generated here


def test_answer_passes_through_the_instruct_protocol() -> None:
    """The SFT answer, extracted as pyfamilies:instruct extracts a reply, is a correct program;
    the same answer with a wrong body fails."""
    for inst in pyfamilies.training_instances(40, seed=3):
        _run(deepseek_instruct_program(inst.prompt, families.answer(inst)), inst)
        wrong = families.answer(inst).replace("return ", "return not ")
        with pytest.raises(AssertionError):
            _run(deepseek_instruct_program(inst.prompt, wrong), inst)


def test_seed_stream_differs_from_stage_00() -> None:
    ours = {r["messages"][0]["content"] for r in families.family_records(200, 0, 10, 0.1)[0]}
    stage00 = {
        INSTRUCT_TEMPLATE.format(prompt=i.prompt.strip())
        for i in pyfamilies.training_instances(200, 0)
    }
    assert len(ours & stage00) < 20  # another draw (a few prompts coincide by chance)
