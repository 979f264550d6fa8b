"""codeio.pipeline end to end with a scripted backend: files, ids, funnel, resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codebench.codeio import pipeline
from codebench.params import DataSection
from codebench.records import read_jsonl

FIX = Path(__file__).parent / "fixtures" / "codeio"
sys.path.insert(0, str(FIX))
from fake_backend import OracleBackend  # noqa: E402


def _cfg(**kw) -> DataSection:
    base = dict(
        sources=[str(FIX / "unified_planted.jsonl"), str(FIX / "raw_with_malformed.jsonl")],
        limit=50,
        max_pairs=3,
        call_budget=6,
        call_timeout=1.0,
        heldout_fraction=0.3,
        workers=2,
        batch_size=4,
        max_new_tokens=32,
    )
    return DataSection(**{**base, **kw})


def _ids(path: Path) -> list[str]:
    return [r["id"] for r in read_jsonl(path)]


@pytest.fixture(scope="module")
def built(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("codeio_build")
    cfg = _cfg()
    first = pipeline.build(cfg, out, data_dir=data_dir, backend=None)  # stops after the prompts
    backend = OracleBackend(out / "prompts.jsonl")
    summary = pipeline.build(
        cfg,
        out,
        data_dir=data_dir,
        backend=backend,
        gen_cfg=object(),
        result_file=out / "build_data.json",
    )
    return out, first, summary, backend


def test_without_backend_stops_after_prompts(built) -> None:
    out, first, _, _ = built
    assert "statuses" not in first and first["funnel"]["prompts"] > 0
    assert first["funnel"]["raw"] == 20  # 12 + 8 source records


def test_unify_and_io_drop_reasons(built) -> None:
    out, first, _, _ = built
    unify = first["drop_reasons"]["unify"]
    assert unify == {
        "malformed-record": 4,
        "duplicate": 1,
        "syntax-error": 1,
        "no-annotated-function": 1,
        "unsupported-annotation": 1,
    }
    io = first["drop_reasons"]["io"]
    assert io == {
        "non-deterministic": 1,
        "mutates-input": 1,
        "constant-output": 1,
        "irreproducible": 1,
    }
    rejected = list(read_jsonl(out / "rejected.jsonl"))
    assert all(r["reason"] and r["stage"] in ("unify", "decontam") for r in rejected)
    assert any("not JSON" in r["detail"] for r in rejected)
    f = first["funnel"]
    assert f["unified"] == 9 + 3 and f["with_io"] == f["decontaminated"] - 4
    assert first["reproduction"]["functions"] == 9


def test_every_file_keyed_by_unique_stable_ids(built) -> None:
    out, _, summary, _ = built
    for name in (
        "prompts.jsonl",
        "predictions.jsonl",
        "verified.jsonl",
        "revisions.jsonl",
        "revisions_verified.jsonl",
        "sft.jsonl",
        "sft_plain.jsonl",
        "heldout.jsonl",
    ):
        ids = _ids(out / name)
        assert ids and len(ids) == len(set(ids)), name
        assert all(i.count(":") == 2 and i.split(":")[2] in ("output", "input") for i in ids)
    fids = [r["fid"] for r in read_jsonl(out / "ios.jsonl")]
    assert len(fids) == len(set(fids))
    held = set(_ids(out / "heldout.jsonl"))
    assert not held & set(_ids(out / "predictions.jsonl")) and not held & set(
        _ids(out / "sft.jsonl")
    )


def test_statuses_truncation_and_revision(built) -> None:
    out, _, summary, backend = built
    verified = {r["id"]: r for r in read_jsonl(out / "verified.jsonl")}
    kinds = {i: backend.kind(i) for i in verified}
    for i, v in verified.items():
        k = kinds[i]
        if k in ("correct", "literal"):
            assert v["status"] == "success", v
        elif k == "truncated":
            assert v["status"] == "truncated" and v["truncated"] and v["reason"], v
        elif k == "malformed":
            assert v["status"] == "no-answer" and "no JSON object" in v["reason"], v
        else:
            assert v["status"] == "wrong", v
    preds = list(read_jsonl(out / "predictions.jsonl"))
    assert sum(p["truncated"] for p in preds) == summary["truncated_turn1"] > 0
    rev = list(read_jsonl(out / "revisions_verified.jsonl"))
    assert len(rev) == sum(v["status"] != "success" for v in verified.values())
    assert all(r["status"] == "success" and r["turn"] == 2 for r in rev)
    f = summary["funnel"]
    assert f["verified_turn1"] + f["fixed_turn2"] == f["predicted"] == f["sft"]
    assert set(summary["statuses"]["turn1"]) == {"output", "input"}


def test_feedback_and_sft_records(built) -> None:
    out, _, _, _ = built
    revs = list(read_jsonl(out / "revisions.jsonl"))
    assert all(
        r["feedback"].startswith(("[Mismatch]", "[Missing]", "[Truncated]", "[Error]", "[Timeout]"))
        for r in revs
    )
    sft = list(read_jsonl(out / "sft.jsonl"))
    kinds = {r["kind"] for r in sft}
    assert kinds == {"first-turn", "revised"}
    for r in sft:
        roles = [m["role"] for m in r["messages"]]
        assert roles == (
            ["user", "assistant"]
            if r["kind"] == "first-turn"
            else ["user", "assistant", "user", "assistant"]
        )
    plain = list(read_jsonl(out / "sft_plain.jsonl"))
    assert {p["kind"] for p in plain} == {"model", "gold"}
    assert all(
        p["prompt"] == p["messages"][0]["content"] and p["response"] == p["messages"][1]["content"]
        for p in plain
    )


def test_heldout_records_carry_what_the_evaluator_needs(built) -> None:
    out, _, _, _ = built
    from codebench.codeio.verify import verify_heldout
    from codebench.sandbox import Sandbox

    held = list(read_jsonl(out / "heldout.jsonl"))
    assert {
        "id",
        "direction",
        "prompt",
        "expected",
        "input",
        "output",
        "program",
        "funcname",
        "verify",
    } <= set(held[0])
    texts = [f'```json\n{{"{h["direction"]}": {json.dumps(h["expected"])}}}\n```' for h in held]
    with Sandbox(workers=1) as sb:
        got = verify_heldout(held, texts, sb)
        assert all(g["status"] == "success" for g in got)
        bad = verify_heldout(held, ["no idea"] * len(held), sb)
        assert all(g["status"] == "no-answer" for g in bad)


def test_result_file_and_figures(built, tmp_path) -> None:
    out, _, summary, _ = built
    saved = json.loads((out / "build_data.json").read_text())
    assert saved["funnel"] == summary["funnel"]
    from codebench.plots import data as dplots
    from codebench.results import BuildDataResults

    paths = dplots.save_all(BuildDataResults.model_validate(saved), tmp_path)
    assert all(p is not None and p.stat().st_size > 1000 for p in paths.values())


def test_rerun_is_idempotent_and_changed_params_rebuild(built, data_dir) -> None:
    out, _, summary, _ = built
    backend = OracleBackend(out / "prompts.jsonl")
    again = pipeline.build(_cfg(), out, data_dir=data_dir, backend=backend, gen_cfg=object())
    assert backend.calls == 0  # everything was already stored
    assert again["funnel"] == summary["funnel"]


KILL_SCRIPT = """
import sys
sys.path.insert(0, {fix!r})
from fake_backend import OracleBackend
from codebench.codeio import pipeline
from codebench.params import DataSection
cfg = DataSection(**{cfg!r})
out = {out!r}
pipeline.build(cfg, out, data_dir={data!r}, backend=None)
pipeline.build(cfg, out, data_dir={data!r}, backend=OracleBackend(out + "/prompts.jsonl", delay=0.4), gen_cfg=object())
"""


def test_resume_after_kill_9_mid_prediction(tmp_path, data_dir) -> None:
    cfg = _cfg(batch_size=1, revision=False)
    out = tmp_path / "killed"
    script = KILL_SCRIPT.format(
        fix=str(FIX), cfg=cfg.model_dump(), out=str(out), data=str(data_dir)
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    preds = out / "predictions.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if preds.exists() and preds.read_text().count("\n") >= 3:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(_ids(preds))
    assert done_before >= 3
    backend = OracleBackend(out / "prompts.jsonl")
    summary = pipeline.build(cfg, out, data_dir=data_dir, backend=backend, gen_cfg=object())
    ids = _ids(preds)
    assert len(ids) == len(set(ids)) == summary["funnel"]["predicted"]
    assert backend.calls == summary["funnel"]["predicted"] - done_before  # nothing generated twice
    assert len(_ids(out / "verified.jsonl")) == len(ids)


class _NonsenseBackend:
    """Answers every prompt with text that is not a four-section unification."""

    def chat_prompt(self, messages: list[dict]) -> str:
        return messages[-1]["content"]

    def generate(self, prompts, cfg, progress=None):
        from fake_backend import Completion

        return [
            [Completion("## Main Function\nI would rather not.", "length" if i % 2 else "stop")]
            for i, _ in enumerate(prompts)
        ]


def test_model_transform_failures_are_recorded(tmp_path, data_dir) -> None:
    cfg = _cfg(
        sources=[str(FIX / "raw_with_malformed.jsonl")],
        transform="annotations+model",
        max_predictions=1,
    )
    summary = pipeline.build(
        cfg, tmp_path, data_dir=data_dir, backend=_NonsenseBackend(), gen_cfg=object()
    )
    unify = summary["drop_reasons"]["unify"]
    # the three files without usable annotations went to the model; its answers are rejected with reasons
    assert unify.get("model-missing-section", 0) + unify.get("model-truncated", 0) == 3
    assert unify["malformed-record"] == 2 and summary["funnel"]["unified"] == 3
    answers = list(read_jsonl(tmp_path / "transform.jsonl"))
    assert len(answers) == 3 and {a["finish_reason"] for a in answers} <= {"stop", "length"}
