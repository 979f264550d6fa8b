"""pyfamilies functions in the SFT mix (codebench.codeio.families): training pairs only,
decontaminated against both smoke benchmarks, as the base protocol's prompt and completion."""

from __future__ import annotations

import pytest

from codebench.bench import pyfamilies
from codebench.codeio import families


def test_records_are_training_pairs_decontaminated_and_disjoint() -> None:
    recs, info = families.family_records(300, seed=0, n=10, threshold=0.1)
    assert info["kept"] == len(recs) and info["kept"] + info["removed"] == 300
    evals = [*pyfamilies.eval_instances(), *pyfamilies.eval_instances(sft=True)]
    eval_prompts = {p.prompt for p in evals}
    eval_pairs = {(p.name, p.family) for p in evals}
    for r in recs:
        assert set(r) >= {"prompt", "completion"} and "messages" not in r
        name = r["prompt"].split("(", 1)[0].removeprefix("def ")
        assert (name, r["family"]) not in eval_pairs
        assert r["prompt"] not in eval_prompts
        assert r["completion"].startswith("    return ")
    assert info["max_overlap_kept"] < 0.1
    assert families.family_records(0, 0, 10, 0.1) == ([], {"requested": 0, "kept": 0, "removed": 0})


def test_mix_teaches_new_families_and_rehearses_the_old() -> None:
    recs, info = families.family_records(200, seed=0, n=10, threshold=0.1)
    new = {f.key for f in pyfamilies.SFT_FAMILIES}
    old = {f.key for f in pyfamilies.FAMILIES}
    assert not new & old
    got = {r["family"] for r in recs}
    assert got & new and got & old and got <= new | old
    assert info["kept_by_benchmark"][pyfamilies.SFT_NAME] == sum(r["family"] in new for r in recs)
    assert sum(r["family"] in new for r in recs) == pytest.approx(
        200 * families.SFT_SHARE, abs=info["removed"]
    )


def test_stage_00_never_sees_the_sft_families() -> None:
    """The tiny model's corpus (pyfamilies.training_instances, default families) holds none
    of the SFT-only families, so pyfamilies-sft measures what fine-tuning adds."""
    new = {f.key for f in pyfamilies.SFT_FAMILIES}
    assert not {i.family for i in pyfamilies.training_instances(3000, 0)} & new
    assert {i.family for i in pyfamilies.eval_instances(sft=True)} == new


def _run(program: str, inst) -> None:
    exec(program + "\n" + inst.tests + f"\ncheck({inst.name})\n", {})  # trusted: generated here


def test_completion_passes_the_base_protocol() -> None:
    """Each record's prompt + completion is a correct program for its tests (what the base
    protocol builds from a continuation); a wrong body fails."""
    recs, _ = families.family_records(60, seed=3, n=10, threshold=0.1)
    insts = {
        i.task_id: i
        for i in [
            *pyfamilies.training_instances(60, 3 + families.SEED_OFFSET, sft=True),
            *pyfamilies.training_instances(60, 3 + families.SEED_OFFSET),
        ]
    }
    for r in recs:
        inst = insts[r["id"]]
        _run(r["prompt"] + r["completion"], inst)
        with pytest.raises(AssertionError):
            _run(r["prompt"] + r["completion"].replace("return ", "return not "), inst)


def test_seed_stream_differs_from_stage_00() -> None:
    ours = {r["prompt"] for r in families.family_records(200, 0, 10, 0.1)[0]}
    stage00 = {i.prompt for i in pyfamilies.training_instances(200, 0)}
    assert len(ours & stage00) < 20  # another draw (a few prompts coincide by chance)
