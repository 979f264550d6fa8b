"""Multi-GPU / multi-node fine-tuning through `accelerate launch`.

`accelerate_command` builds the exact command::

    accelerate launch --config_file params/accelerate/zero3.yaml \\
        [--deepspeed_config_file params/accelerate/ds_zero3.json] [--num_processes N] ... \\
        -m codebench.train.trainer --config runs/<profile>/finetune_job.json

and `launch` writes the job JSON, runs the command, streams its output line by line (into the
notebook and a log file), and returns the results the main process wrote.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

from codebench.paths import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "params" / "accelerate"
STRATEGIES = ("ddp", "zero2", "zero3", "fsdp", "cpu")
DEEPSPEED_JSON = {"zero2": "ds_zero2.json", "zero3": "ds_zero3.json"}


class LaunchError(RuntimeError):
    """The launched training exited non-zero; the message holds the last lines of its output."""


def config_file(strategy: str) -> Path:
    """params/accelerate/<strategy>.yaml, or `strategy` itself when it is a path to a YAML file."""
    p = Path(strategy)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p.resolve()
    if strategy not in STRATEGIES:
        raise ValueError(
            f"unknown distributed strategy {strategy!r} (known: {', '.join(STRATEGIES)}, or a YAML path)"
        )
    return CONFIG_DIR / f"{strategy}.yaml"


def _accelerate_bin() -> list[str]:
    exe = Path(sys.executable).parent / "accelerate"
    return (
        [str(exe), "launch"]
        if exe.is_file()
        else [sys.executable, "-m", "accelerate.commands.launch"]
    )


def accelerate_command(
    job_file: str | os.PathLike,
    strategy: str = "zero3",
    *,
    num_processes: int | None = None,
    num_machines: int | None = None,
    machine_rank: int | None = None,
    main_process_ip: str | None = None,
    main_process_port: int | None = None,
) -> list[str]:
    """The `accelerate launch ... -m codebench.train.trainer --config JOB` command as argv."""
    cfg = config_file(strategy)
    cmd = [*_accelerate_bin(), "--config_file", str(cfg)]
    if strategy in DEEPSPEED_JSON:
        cmd += ["--deepspeed_config_file", str(CONFIG_DIR / DEEPSPEED_JSON[strategy])]
    for flag, value in (
        ("--num_processes", num_processes),
        ("--num_machines", num_machines),
        ("--machine_rank", machine_rank),
        ("--main_process_ip", main_process_ip),
        ("--main_process_port", main_process_port),
    ):
        if value is not None:
            cmd += [flag, str(value)]
    return [*cmd, "-m", "codebench.train.trainer", "--config", str(Path(job_file).resolve())]


def run_streaming(
    cmd: list[str],
    *,
    log_file: str | os.PathLike | None = None,
    cwd: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    echo: bool = True,
    tail: int = 40,
) -> int:
    """Run `cmd`, echo each output line as it comes (stdout+stderr), keep a log; raise on failure."""
    last: deque[str] = deque(maxlen=tail)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    log_fh = open(log_file, "a", encoding="utf-8") if log_file else None  # noqa: SIM115
    try:
        if log_fh:
            log_fh.write("$ " + shlex.join(cmd) + "\n")
        with subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            cwd=cwd,
            env=full_env,
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                last.append(line.rstrip("\n"))
                if echo:
                    print(line, end="", flush=True)
                if log_fh:
                    log_fh.write(line)
                    log_fh.flush()
            rc = proc.wait()
    finally:
        if log_fh:
            log_fh.close()
    if rc != 0:
        where = f" (full log: {log_file})" if log_file else ""
        raise LaunchError(
            f"training exited with status {rc}{where}; last lines:\n" + "\n".join(last)
        )
    return rc


def launch(
    job: Any,
    strategy: str | None = None,
    *,
    num_processes: int | None = None,
    echo: bool = True,
    **multi_node: Any,
) -> dict:
    """Write the job JSON, run it under `accelerate launch` with streamed logs, return its results."""
    strategy = strategy or job.finetune.distributed
    run = job.run
    job_file = job.save(run.root / "finetune_job.json")
    cmd = accelerate_command(
        job_file, strategy, num_processes=num_processes or job.finetune.num_processes, **multi_node
    )
    if echo:
        print("$ " + shlex.join(cmd), flush=True)
    run_streaming(cmd, log_file=run.root / "finetune_launch.log", cwd=REPO_ROOT, echo=echo)
    from codebench import results

    written = results.read_stage(run, results.FinetuneResults)
    if written is None:
        raise LaunchError(f"the launched job wrote no {run.result_file('finetune')}")
    return written.model_dump(exclude_unset=True)
