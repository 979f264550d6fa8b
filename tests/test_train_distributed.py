"""accelerate launch: config files, the exact command, and the same entry point single-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.train import save_tiny_model, sft_records

from codebench.params import FinetuneSection
from codebench.train.distributed import (
    CONFIG_DIR,
    LaunchError,
    accelerate_command,
    config_file,
    run_streaming,
)
from codebench.train.trainer import FinetuneJob


@pytest.mark.parametrize("strategy", ["ddp", "zero2", "zero3", "fsdp", "cpu"])
def test_accelerate_configs_load(strategy: str) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(config_file(strategy)))
    assert cfg.num_machines == 1
    expected = {
        "ddp": "MULTI_GPU",
        "zero2": "DEEPSPEED",
        "zero3": "DEEPSPEED",
        "fsdp": "FSDP",
        "cpu": "NO",
    }[strategy]
    assert cfg.distributed_type.value == expected


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_json_leaves_optimizer_and_schedule_to_the_trainer(stage: int) -> None:
    ds = json.loads((CONFIG_DIR / f"ds_zero{stage}.json").read_text())
    assert ds["zero_optimization"]["stage"] == stage
    assert (
        "scheduler" not in ds and "optimizer" not in ds
    )  # DeepSeek-Coder's config overrode the cosine schedule
    assert (
        ds["train_micro_batch_size_per_gpu"] == "auto"
        and ds["gradient_accumulation_steps"] == "auto"
    )


def test_accelerate_command_is_exact(tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    cmd = accelerate_command(
        job, "zero3", num_processes=4, num_machines=2, machine_rank=1, main_process_ip="10.0.0.1"
    )
    launcher = cmd[: cmd.index("--config_file")]
    assert launcher[-1] in ("launch", "accelerate.commands.launch")
    assert cmd[cmd.index("--config_file") + 1] == str(CONFIG_DIR / "zero3.yaml")
    assert cmd[cmd.index("--deepspeed_config_file") + 1] == str(CONFIG_DIR / "ds_zero3.json")
    assert (
        cmd[cmd.index("--num_processes") + 1] == "4" and cmd[cmd.index("--machine_rank") + 1] == "1"
    )
    assert cmd[-4:] == ["-m", "codebench.train.trainer", "--config", str(job.resolve())]
    assert "--deepspeed_config_file" not in accelerate_command(job, "fsdp")
    with pytest.raises(ValueError, match="unknown distributed strategy"):
        accelerate_command(job, "zero4")


def test_run_streaming_reports_failure_with_tail(tmp_path: Path, capsys) -> None:
    log = tmp_path / "log.txt"
    code = "import sys; print('working'); print('boom', file=sys.stderr); sys.exit(3)"
    with pytest.raises(LaunchError, match=r"status 3 .*\n.*working\nboom"):
        run_streaming([sys.executable, "-c", code], log_file=log)
    assert "working" in capsys.readouterr().out and "boom" in log.read_text()


def _job_file(tmp_path: Path, **over) -> Path:
    base = save_tiny_model(tmp_path / "base")
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sft_records(24)))
    cfg = FinetuneSection(
        max_steps=2,
        batch_size=4,
        max_length=192,
        eval_steps=2,
        save_steps=2,
        lora_r=4,
        threads=1,
        **over,
    )
    job = FinetuneJob(
        finetune=cfg,
        base_path=str(base),
        data_path=str(data),
        run_dir=str(tmp_path / "run"),
        device="cpu",
    )
    return job.save(tmp_path / "job.json")


@pytest.mark.slow
def test_entry_point_runs_single_process(tmp_path: Path) -> None:
    job = _job_file(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "codebench.train.trainer", "--config", str(job)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "step    2/2" in out.stdout
    assert json.loads((tmp_path / "run/results/finetune.json").read_text())["train"]["steps"] == 2


@pytest.mark.slow
def test_accelerate_launch_on_cpu(tmp_path: Path) -> None:
    from codebench.train.distributed import launch

    job = FinetuneJob.load(_job_file(tmp_path, distributed="cpu"))
    result = launch(job, echo=False)
    assert (
        result["train"]["steps"] == 2
        and (tmp_path / "run/models/lora/adapter_model.safetensors").is_file()
    )
    assert "accelerate" in (tmp_path / "run/finetune_launch.log").read_text().splitlines()[0]


def test_public_names_stay_functions_after_submodule_imports() -> None:
    import codebench.train.distributed  # noqa: F401
    import codebench.train.inspect  # noqa: F401
    from codebench import train

    assert (
        callable(train.launch) and callable(train.accelerate_command) and callable(train.mask_html)
    )
