"""GRPO training tasks: MBPP's train split, decontamination against evaluated sets, reference
checks, context checks and settings validation (no training here)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from codebench.rewards import SandboxReward, validate_tasks
from codebench.sandbox import Sandbox
from codebench.train import grpo


@pytest.fixture(scope="module")
def sb():
    with Sandbox(workers=2, timeout=2.0, memory_mb=512) as sandbox:
        yield sandbox


def test_mbpp_train_split_only(data_dir):
    rows = grpo.mbpp_train_tasks(data_dir)
    ids = [int(r["task_id"].split("/")[1]) for r in rows]
    assert len(rows) == 374 and min(ids) == 601 and max(ids) == 974
    assert rows[0]["prompt"].endswith("[BEGIN]\n") and "assert" in rows[0]["tests"]
    validate_tasks(rows)  # every row is a valid reward task


def test_copied_evaluation_problems_are_dropped(data_dir):
    from codebench.sandbox.problems import load_humaneval, load_mbpp

    he = load_humaneval()["HumanEval/12"]
    mbpp_test = load_mbpp(data_dir, "test")[11]
    rows = [
        {
            "task_id": "copy-he",
            "prompt": he["prompt"],
            "test": he["test"],
            "entry_point": "longest",
        },
        {"task_id": "copy-mbpp", "text": mbpp_test["text"], "test_list": mbpp_test["test_list"]},
        {"task_id": "fresh", "prompt": "def add7(x):\n", "tests": "assert add7(1) == 8\n"},
        *grpo.mbpp_train_tasks(data_dir)[:40],
    ]
    kept, dropped = grpo.decontaminate(validate_tasks(rows), grpo.evaluation_texts(data_dir))
    assert {d["task_id"]: d["set"] for d in dropped if not d["task_id"].startswith("mbpp/")} == {
        "copy-he": "humaneval",
        "copy-mbpp": "mbpp",
    }
    assert "fresh" in {t.task_id for t in kept}
    # MBPP's train split is not the evaluated test split: most of it is kept
    assert sum(t.task_id.startswith("mbpp/") for t in kept) >= 36


def test_extra_evaluation_sets_are_checked():
    rows = [
        {
            "task_id": "a",
            "prompt": "def twice(x):\n    'return twice the number x given'\n",
            "tests": "assert twice(2) == 4\nassert twice(3) == 6\n",
        }
    ]
    texts = {
        "builtin-heldout": [
            "def twice(x):\n    'return twice the number x given'\n"
            "assert twice(2) == 4\nassert twice(3) == 6\n"
        ]
    }
    _, dropped = grpo.decontaminate(validate_tasks(rows), texts, n=4)
    assert dropped and dropped[0]["set"] == "builtin-heldout"


def test_tasks_whose_reference_fails_are_dropped(sb):
    rows = [
        {
            "task_id": "ok",
            "prompt": "def inc(x):\n",
            "tests": "assert inc(1) == 2\n",
            "canonical_solution": "    return x + 1\n",
        },
        {
            "task_id": "broken",
            "prompt": "def dec(x):\n",
            "tests": "assert dec(1) == 5\n",
            "canonical_solution": "    return x - 1\n",
        },
        {"task_id": "noref", "prompt": "def neg(x):\n", "tests": "assert neg(1) == -1\n"},
    ]
    settings = grpo.GRPOSettings(decontaminate=False)
    with SandboxReward(sandbox=sb) as r:
        tasks, report = grpo.prepare_tasks(rows, r, settings)
    assert [t.task_id for t in tasks] == ["ok", "noref"]
    assert [d["task_id"] for d in report["reference_failed"]] == ["broken"]
    with SandboxReward(sandbox=sb) as r, pytest.raises(ValueError, match="no training tasks left"):
        grpo.prepare_tasks(rows[1:2], r, settings)
    with SandboxReward(sandbox=sb) as r, pytest.raises(ValueError, match="unique"):
        grpo.prepare_tasks([rows[0], rows[0]], r, settings)


def test_prompts_too_long_for_the_model_are_one_error(tiny_model_dir):
    from codebench.models import load

    model, tok = load(str(tiny_model_dir), device="cpu")
    rows = [
        {"task_id": "long", "prompt": "def f(x):\n" + "    # pad\n" * 80, "tests": "assert f(1)\n"}
    ]
    with pytest.raises(ValueError, match="do not fit the model's 64 positions"):
        grpo.check_context(validate_tasks(rows), tok, model, budget=16)


def test_settings_are_checked():
    with pytest.raises(ValidationError):
        grpo.GRPOSettings(num_generations=1)
    with pytest.raises(ValidationError):
        grpo.GRPOSettings(reward="partial")
    with pytest.raises(ValidationError):
        grpo.GRPOSettings(unknown_field=1)
    cfg = grpo.grpo_config(
        grpo.GRPOSettings(prompts_per_step=3, num_generations=4), "/tmp/x", "cpu", 0
    )
    assert cfg.per_device_train_batch_size == 12 and cfg.generation_batch_size == 12
    assert cfg.num_generations == 4 and cfg.temperature == 1.0 and not cfg.use_vllm


def test_vllm_needs_a_gpu(tmp_path):
    from codebench.runs import RunLayout

    run = RunLayout(tmp_path / "run", tmp_path / "fig")
    with pytest.raises(ValueError, match="use_vllm needs a CUDA GPU"):
        grpo.grpo_finetune(run, grpo.GRPOSettings(use_vllm=True), tasks=[], device="cpu")


def test_instruct_prompts_are_chat_messages():
    code, statement = validate_tasks(
        [
            {
                "task_id": "c",
                "prompt": "def inc(x):\n    'add one'\n",
                "tests": "assert inc(1) == 2\n",
            },
            {"task_id": "s", "prompt": "Write inc(x). [BEGIN]\n", "tests": "assert inc(1) == 2\n"},
        ]
    )
    (m,) = grpo.instruct_messages(code)
    assert m["role"] == "user" and "```python\ndef inc(x):\n    'add one'\n```" in m["content"]
    (m,) = grpo.instruct_messages(statement)
    assert m["content"].startswith("Write inc(x).\nWrite the Python code")
    data = grpo._dataset([code, statement], "instruct")
    assert data[0]["prompt"][0]["role"] == "user" and data[0]["task_prompt"] == code.prompt


def test_command_line_rejects_bad_settings(capsys):
    with pytest.raises(SystemExit) as e:
        grpo.main(["--run-dir", "/nonexistent/run", "--set", "num_generations=1"])
    assert e.value.code == 2
    assert "invalid GRPO settings" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        grpo.main(["--run-dir", "/x", "--set", "steps"])


# --------------------------------------------------------------------------- pyfamilies, profile
@pytest.mark.parametrize("sft", [False, True], ids=["pyfamilies", "pyfamilies-sft"])
def test_pyfamilies_tasks_are_training_pairs_only(sft):
    from codebench.bench import pyfamilies

    spec = "pyfamilies-sft-train" if sft else "pyfamilies-train"
    rows = grpo.load_task_rows(spec, count=300, seed=1)
    assert 250 <= len(rows) <= 300  # a function drawn twice is one task
    families = pyfamilies.SFT_FAMILIES if sft else pyfamilies.FAMILIES
    assert {r["family"] for r in rows} == {f.key for f in families}
    assert not any(pyfamilies.is_eval_pair(r["entry_point"], r["family"]) for r in rows)
    eval_prompts = {i.prompt for i in pyfamilies.eval_instances(sft=sft)}
    assert not eval_prompts & {r["prompt"] for r in rows}
    assert len({r["task_id"] for r in rows}) == len(rows)
    validate_tasks(rows)


def test_pyfamilies_tasks_pass_their_checks_and_the_heldout_set_is_indexed(sb):
    rows = grpo.load_task_rows("pyfamilies-train", count=40)
    texts = grpo.evaluation_texts(None)
    assert len(texts["pyfamilies"]) == 150 and len(texts["humaneval"]) == 164
    assert len(texts["pyfamilies-600"]) == 600
    stats: dict = {}
    kept, dropped = grpo.decontaminate(validate_tasks(rows), texts, stats=stats)
    assert not dropped and len(kept) == len(rows)
    assert stats["sets"]["pyfamilies"] == 150 and 0 <= stats["max_overlap_kept"] < 0.2
    reward = SandboxReward(sandbox=sb)
    kept, failed = grpo.check_references(reward, kept, [r["canonical_solution"] for r in rows])
    assert not failed and len(kept) == len(rows)


def test_an_evaluated_pyfamilies_prompt_is_dropped():
    from codebench.bench import pyfamilies

    inst = pyfamilies.eval_instances()[7]
    rows = [
        {"task_id": "leak", "prompt": inst.prompt, "test": inst.tests, "entry_point": inst.name},
        *grpo.load_task_rows("pyfamilies-train", count=5),
    ]
    kept, dropped = grpo.decontaminate(validate_tasks(rows), grpo.evaluation_texts(None))
    assert [(d["task_id"], d["set"]) for d in dropped] == [("leak", "pyfamilies")]
    assert "leak" not in {t.task_id for t in kept}


def test_profile_section_is_validated_and_mirrored(tmp_path):
    from codebench.params import FinetuneSection, GRPOSection, ProfileError, load_profile
    from codebench.stages.finetune import sft_section

    assert set(grpo.GRPOSettings.model_fields) == set(GRPOSection.model_fields)
    f = FinetuneSection(method="grpo", grpo={"steps": 3, "tasks": "pyfamilies-train"})
    assert f.grpo.steps == 3 and sft_section(f).method == "lora"
    p = tmp_path / "p.yaml"
    p.write_text("name: p\nfinetune:\n  method: grpo\n  grpo:\n    stepz: 3\n")
    with pytest.raises(ProfileError, match=r"finetune\.grpo\.stepz: unknown key"):
        load_profile(p)
    p.write_text("name: p\nfinetune:\n  method: grpo\n  grpo:\n    variant: finetuned\n")
    with pytest.raises(ProfileError, match="finetune.grpo.*overwrite"):
        load_profile(p)
    p.write_text("name: p\nfinetune:\n  grpo:\n    malformed_reward: 0.5\n")
    with pytest.raises(ProfileError, match="malformed_reward"):
        load_profile(p)


def test_grpo_profiles_validate():
    from pathlib import Path

    from codebench.params import load_profile

    root = Path(__file__).resolve().parent.parent / "params"
    smoke = load_profile(root / "grpo-smoke.yaml")
    assert smoke.finetune.method == "grpo" and smoke.finetune.grpo.tasks == "pyfamilies-train"
    assert "grpo" in smoke.evaluate.variants and "pyfamilies-600" in smoke.evaluate.benchmarks
    gpu = load_profile(root / "grpo-deepseek-coder-1.3b.yaml")
    assert gpu.finetune.method == "grpo" and gpu.finetune.grpo.use_vllm
    # every benchmark a GRPO profile evaluates is a set its training tasks are checked against
    # (mbpp and mtpb come from the data folder)
    from codebench.bench import parse_spec

    checked = set(grpo.evaluation_texts(None)) | {"mbpp", "mtpb"}
    for profile in (smoke, gpu):
        assert {parse_spec(b)[0] for b in profile.evaluate.benchmarks} <= checked


def test_run_grpo_needs_method_grpo():
    from codebench.params import FinetuneSection
    from codebench.stages.finetune import run_grpo

    with pytest.raises(ValueError, match="not 'grpo'"):
        run_grpo(None, FinetuneSection(method="lora"))
