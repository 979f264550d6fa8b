"""GRPO on trl's GRPOTrainer with the sandbox reward: a few steps on the tiny test model."""

from __future__ import annotations

import json

import pytest

from codebench.runs import read_variant_info


def small_tasks(n: int = 6) -> list[dict]:
    """Tiny Python function tasks that fit the test model's 64-token window."""
    rows = []
    for k in range(1, n + 1):
        name = f"add{k}"
        rows.append(
            {
                "task_id": f"gen/{name}",
                "prompt": f"def {name}(x):\n",
                "tests": f"assert {name}(1) == {1 + k}\nassert {name}(5) == {5 + k}\n",
                "entry_point": name,
                "canonical_solution": f"    return x + {k}\n",
            }
        )
    return rows


@pytest.fixture(scope="module")
def grpo_run(tiny_run, tmp_path_factory):
    from codebench.runs import RunLayout
    from codebench.train import grpo

    root = tmp_path_factory.mktemp("grpo")
    run = RunLayout(root / "run", root / "figures")
    # reuse the session's tiny base model as this run's base
    (run.models).mkdir(parents=True)
    (run.models / "base").symlink_to(tiny_run.model_dir("base"))
    settings = grpo.GRPOSettings(
        steps=3,
        num_generations=2,
        prompts_per_step=2,
        max_completion_length=16,
        lr=1e-3,
        lora_r=4,
        lora_alpha=8,
        reward_workers=2,
        reward_timeout=1.0,
    )
    result = grpo.grpo_finetune(run, settings, tasks=small_tasks(), seed=0, device="cpu")
    return run, result


def test_grpo_steps_complete_and_write_variants(grpo_run):
    run, result = grpo_run
    assert result["train"]["steps"] == 3
    adapter, merged = run.model_dir("grpo-lora"), run.model_dir("grpo")
    assert (adapter / "adapter_config.json").is_file()
    assert read_variant_info(adapter)["loader"] == "peft"
    info = read_variant_info(merged)
    assert info["loader"] == "hf" and info["method"] == "grpo" and info["parent"] == "base"
    assert "grpo" in run.variants() and "grpo-lora" in run.variants()
    saved = json.loads(run.result_file("grpo").read_text())
    assert saved["train"]["completions"] == 3 * 2 * 2
    assert [c["step"] for c in saved["curve"]] == [0, 1, 2]
    for c in saved["curve"]:
        assert c["completions"] == 4 and -0.5 <= c["mean_reward"] <= 1.0


def test_merged_grpo_model_loads_and_generates(grpo_run):
    from codebench.models import load

    run, _ = grpo_run
    model, tok = load(str(run.model_dir("grpo")), device="cpu")
    ids = tok("def add1(x):\n", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_rewards_log_has_every_completion(grpo_run):
    from codebench.rewards import read_reward_log, step_curve

    run, result = grpo_run
    records = read_reward_log(result["rewards_log"])
    assert len(records) == 12
    assert {r["task_id"] for r in records} <= {f"gen/add{k}" for k in range(1, 7)}
    assert all(len(r["sha256"]) == 64 and "reward" in r for r in records)
    strip = [{k: v for k, v in c.items() if k != "reward_seconds"} for c in result["curve"]]
    assert [
        {k: v for k, v in c.items() if k != "reward_seconds"} for c in step_curve(records)
    ] == strip
    assert all(c["reward_seconds"] > 0 for c in result["curve"])


def test_plot_curve(grpo_run, tmp_path):
    from codebench.train.grpo import plot_curve

    _, result = grpo_run
    plot_curve(result["curve"], tmp_path / "grpo.png")
    assert (tmp_path / "grpo.png").stat().st_size > 1000


def test_instruct_protocol_runs_with_chat_prompts(tiny_run, tmp_path):
    """Conversational prompts: trl applies the chat template; the reward reads the answer."""
    import shutil

    from codebench.models import load_tokenizer
    from codebench.runs import RunLayout
    from codebench.train import grpo

    run = RunLayout(tmp_path / "run", tmp_path / "figures")
    base = run.model_dir("base")
    shutil.copytree(tiny_run.model_dir("base"), base)
    tok = load_tokenizer(str(base))
    tok.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    tok.save_pretrained(str(base))
    rows = [
        {"task_id": "i1", "prompt": "Write f.", "tests": "assert f(1) == 2\n", "entry_point": "f"},
        {"task_id": "i2", "prompt": "Write g.", "tests": "assert g(1) == 3\n", "entry_point": "g"},
    ]
    settings = grpo.GRPOSettings(
        steps=1,
        num_generations=2,
        prompts_per_step=2,
        max_completion_length=8,
        protocol="instruct",
        reward_workers=2,
        decontaminate=False,
    )
    result = grpo.grpo_finetune(run, settings, tasks=rows, seed=0, device="cpu")
    assert result["train"]["completions"] == 4
    assert sum(result["curve"][0]["outcomes"].values()) == 4


def test_command_line_run_with_a_tasks_file(tiny_run, tmp_path, capsys):
    from codebench.records import write_jsonl
    from codebench.train import grpo

    run_dir = tmp_path / "runs" / "cli"
    (run_dir / "models").mkdir(parents=True)
    (run_dir / "models" / "base").symlink_to(tiny_run.model_dir("base"))
    tasks = write_jsonl(tmp_path / "tasks.jsonl", small_tasks(2))
    assert tasks == 2
    argv = [
        "--run-dir",
        str(run_dir),
        "--device",
        "cpu",
        "--set",
        f"tasks={tmp_path / 'tasks.jsonl'}",
    ]
    for kv in (
        "steps=1",
        "num_generations=2",
        "prompts_per_step=1",
        "max_completion_length=8",
        "reward_workers=2",
        "merge=false",
        "variant=grpo-cli",
    ):
        argv += ["--set", kv]
    assert grpo.main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["train"]["steps"] == 1 and out["tasks_used"] == 2
    assert (run_dir / "models" / "grpo-cli-lora" / "adapter_config.json").is_file()
    assert not (run_dir / "models" / "grpo-cli").exists()


def test_report_shows_the_grpo_variant(grpo_run):
    from codebench.report import ordered_variants
    from codebench.stages.report import write_report

    run, result = grpo_run
    out = write_report(run, profile="grpo-test")
    assert set(out.data.grpo) == {"grpo"}
    assert ordered_variants(out.data)[:2] == ["base", "grpo"]
    text = out.path.read_text(encoding="utf-8")
    assert "- GRPO 'grpo': 3 steps from 'base' on 6 " in text
    assert "completions scored in the sandbox at" in text
    for name in ("GRPO grpo: reward per step", "GRPO grpo: reward-call throughput"):
        assert out.figures[name].stat().st_size > 1000
        assert f"![{name}]" in text


def test_figures_from_the_rewards_log(grpo_run, tmp_path):
    from codebench.plots import grpo as gplots
    from codebench.rewards import read_reward_log, step_curve

    run, result = grpo_run
    curve = step_curve(read_reward_log(result["rewards_log"]))
    assert [c["completions"] for c in curve] == [c["completions"] for c in result["curve"]]
    fig = gplots.reward_curve(curve)
    assert len(fig.axes[0].lines) >= 3
    # the log holds no timings: the throughput figure says so instead of drawing empty axes
    assert "no reward timings" in gplots.reward_throughput(curve).axes[0].texts[0].get_text()
    assert len(gplots.reward_throughput(result["curve"]).axes[0].lines) == 2


def test_stage_02_entry_point_runs_grpo_from_the_profile_section(tiny_run, tmp_path):
    """finetune.method: grpo -> stages.finetune.run_grpo: the section's settings, the stage's seed and
    device; variant, results, rewards log and the two figures."""
    from codebench.params import FinetuneSection, StageContext
    from codebench.records import write_jsonl
    from codebench.stages.finetune import grpo_lines, run_grpo

    run_dir = tmp_path / "run"
    (run_dir / "models").mkdir(parents=True)
    (run_dir / "models" / "base").symlink_to(tiny_run.model_dir("base"))
    write_jsonl(tmp_path / "tasks.jsonl", small_tasks(2))
    cfg = FinetuneSection(
        method="grpo",
        grpo={
            "tasks": str(tmp_path / "tasks.jsonl"),
            "steps": 2,
            "num_generations": 2,
            "prompts_per_step": 1,
            "max_completion_length": 8,
            "reward_workers": 2,
            "variant": "grpo-stage",
            "malformed_reward": -1.0,
        },
    )
    ctx = StageContext("t", 0, "cpu", None, run_dir, tmp_path / "figures")
    result, figures = run_grpo(ctx, cfg)  # results/grpo-stage.json, through its schema
    assert result.train["steps"] == 2 and result.settings["malformed_reward"] == -1.0
    assert result.variant == "grpo-stage" and result.version == 1
    assert (run_dir / "models" / "grpo-stage" / "codebench_variant.json").is_file()
    assert (run_dir / "results" / "grpo-stage.json").is_file()
    assert (run_dir / "results" / "grpo-stage_rewards.jsonl").is_file()
    assert {k: p.name for k, p in figures.items()} == {
        "grpo_reward": "grpo_reward.png",
        "grpo_throughput": "grpo_throughput.png",
    }
    lines = grpo_lines(result)
    assert lines[1].startswith("2 GRPO steps, ") and result.rewards_log in lines[2]
    # malformed completions got the profile's penalty
    from codebench.rewards import read_reward_log

    bad = [r for r in read_reward_log(result.rewards_log) if r["outcome"] == "malformed"]
    assert all(r["reward"] == -1.0 for r in bad)


def test_report_compares_grpo_with_base_on_the_same_problems(grpo_run, tmp_path):
    """The report names the sampling settings of the comparison and adds the paired
    difference against base (problems resampled together) when both used the same settings."""
    import shutil

    from codebench.runs import RunLayout
    from codebench.stages.report import write_report

    src, _ = grpo_run
    run = RunLayout(tmp_path / "run", tmp_path / "figures")
    shutil.copytree(src.root, run.root, symlinks=True)
    config = {"n": 4, "temperature": 0.6, "top_p": 0.95}

    def evaluation(variant: str, passed: int) -> None:
        per = {f"t/{i}": {"n": 4, "c": 4 if i < passed else 0} for i in range(40)}
        out = run.root / "eval" / variant / "toy"
        out.mkdir(parents=True)
        p = passed / 40
        body = {
            "version": 1,
            "benchmark": "toy",
            "status": "ok",
            "config": config,
            "metrics": {"pass@1": {"value": p, "ci_low": p - 0.1, "ci_high": p + 0.1, "k": 1}},
            "problems": 40,
            "per_problem": per,
        }
        (out / "results.json").write_text(json.dumps(body), encoding="utf-8")

    evaluation("base", 10)
    evaluation("grpo", 16)
    text = write_report(run, profile="grpo-test").path.read_text(encoding="utf-8")
    assert "- toy pass@1 (sampled at T=0.6, top-p 0.95, n=4): grpo 0.400" in text
    assert "(intervals overlap)" in text
    line = next(x for x in text.splitlines() if "grpo minus base on the same 40 problems" in x)
    assert "+0.150, paired 95% interval [+0." in line and line.endswith("(above 0).")
    # different settings: no paired line (the two numbers would not measure the same thing)
    config["temperature"] = 0.0
    shutil.rmtree(run.root / "eval" / "base")
    evaluation("base", 10)
    text = write_report(run, profile="grpo-test").path.read_text(encoding="utf-8")
    assert "toy pass@1 (sampled at T=0.6" in text and "minus base" not in text
