"""`codebench eval` runs stage 04's evaluation: same files, same numbers, same resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from codebench.bench import suite
from codebench.bench.runner import EvalConfig
from codebench.cli import main
from codebench.records import read_jsonl
from codebench.runs import RunLayout

SETTINGS = {"limit": 2, "max_new_tokens": 24, "n": 2, "temperature": 0.8, "top_p": 0.95}


def _copy_run(tiny_run, root: Path) -> RunLayout:
    run = RunLayout(root / "run", root / "figures")
    shutil.copytree(tiny_run.model_dir("base"), run.model_dir("base"))
    return run


def _results(run: RunLayout, bench_name: str) -> tuple[dict, list[dict]]:
    folder = run.eval_dir("base", bench_name)
    res = json.loads((folder / "results.json").read_text())
    recs = sorted(read_jsonl(folder / "samples.jsonl"), key=lambda r: (r["task_id"], r["sample"]))
    return res, recs


def test_eval_equals_stage_04_and_resumes(tiny_run, tmp_path, data_dir, capsys):
    stage = _copy_run(tiny_run, tmp_path / "a")
    cli = _copy_run(tiny_run, tmp_path / "b")
    # what 04_evaluate.ipynb runs, with the notebook's EvalConfig fields
    suite.evaluate_variants(
        stage,
        ["base"],
        ["humaneval", "mbpp"],
        EvalConfig(**SETTINGS, options={"mask_seed": 0}),
        device="cpu",
        data_dir=data_dir,
        progress=False,
        log=lambda *_: None,
    )
    argv = ["eval", "--model", str(cli.model_dir("base")), "--benchmarks", "humaneval,mbpp"]
    argv += ["--limit", "2", "--max-new-tokens", "24", "--n", "2", "--temperature", "0.8"]
    argv += ["--device", "cpu", "--data-dir", str(data_dir), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "pass@1" in printed and "humaneval" in printed and "mbpp" in printed
    for name in ("humaneval", "mbpp"):
        a, ra = _results(stage, name)
        b, rb = _results(cli, name)
        assert a["metrics"] == b["metrics"] and a["outcomes"] == b["outcomes"]
        assert a["config"] == b["config"] and a["status"] == b["status"] == "ok"
        assert [(r["task_id"], r["sample"], r["raw"], r["outcome"]) for r in ra] == [
            (r["task_id"], r["sample"], r["raw"], r["outcome"]) for r in rb
        ]
    # the same command again: every sample is already there, nothing is generated
    assert main(argv) == 0
    again = json.loads((cli.eval_dir("base", "humaneval") / "results.json").read_text())
    assert again["timing"]["generated"] == 0 and again["metrics"] == b["metrics"]


def test_eval_after_stage_04_takes_its_settings_and_regenerates_nothing(
    tiny_run, tmp_path, data_dir, capsys
):
    """`codebench eval --model runs/<x>/models/base --benchmarks humaneval,mbpp` after
    `reproduce`: no flags, stage 04's settings, stage 04's samples and numbers."""
    run = _copy_run(tiny_run, tmp_path)
    config = EvalConfig(**SETTINGS, seed=3, options={"mask_seed": 0})
    suite.evaluate_variants(
        run, ["base"], ["humaneval", "mbpp"], config, device="cpu", data_dir=data_dir,
        progress=False, log=lambda *_: None,
    )  # fmt: skip
    before = {b: _results(run, b) for b in ("humaneval", "mbpp")}
    argv = ["eval", "--model", str(run.model_dir("base")), "--benchmarks", "humaneval,mbpp"]
    assert main([*argv, "--device", "cpu", "--data-dir", str(data_dir), "--quiet"]) == 0
    assert "settings: as " in capsys.readouterr().out
    for name, (res, recs) in before.items():
        now, now_recs = _results(run, name)
        assert now["timing"]["generated"] == 0
        assert now["metrics"] == res["metrics"] and now["config"] == res["config"]
        assert now_recs == recs


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--benchmarks", "humaneval,nosuch"], "unknown benchmark 'nosuch'"),
        (["--benchmarks", "humaneval:chatty"], "unknown protocol 'chatty'"),
        (["--n", "3"], "greedy decoding"),
    ],
)
def test_eval_bad_input_fails_before_loading(argv, message, tmp_path, capsys):
    rc = main(["eval", "--model", str(tmp_path / "no-model-here"), *argv])
    assert rc == 1
    assert message in capsys.readouterr().err


def test_eval_variant_of_a_run_and_missing_variant(tiny_run, capsys):
    rc = main(["eval", "--run", str(tiny_run.root), "--model", "nosuchvariant"])
    assert rc == 1 and "no such variant" in capsys.readouterr().err


def test_eval_other_settings_sit_beside_stage_04_and_the_table_compares_them(
    tiny_run, tmp_path, data_dir, capsys
):
    """After stage 04 (sampled), `codebench eval` greedy and a named evaluation: nothing is
    refused or overwritten, each configuration has its folder, the table lists all three."""
    run = _copy_run(tiny_run, tmp_path)
    config = EvalConfig(**SETTINGS, options={"mask_seed": 0})
    suite.evaluate_variants(
        run, ["base"], ["humaneval"], config, device="cpu", data_dir=data_dir,
        progress=False, log=lambda *_: None,
    )  # fmt: skip
    before = _results(run, "humaneval")
    argv = ["eval", "--model", str(run.model_dir("base")), "--benchmarks", "humaneval"]
    argv += ["--device", "cpu", "--data-dir", str(data_dir), "--quiet"]
    assert main([*argv, "--temperature", "0"]) == 0
    assert main([*argv, "--temperature", "0", "--name", "greedy"]) == 0
    printed = capsys.readouterr().out
    folders = sorted(p.name for p in (run.root / "eval").iterdir())
    assert folders[0] == "base" and folders[1] == "base@greedy"
    assert len(folders) == 3 and folders[2].startswith("base@t0-n1-")
    assert _results(run, "humaneval") == before  # stage 04's files untouched
    table = printed.split("evaluation")[-1]
    for folder in folders:
        assert folder in table
    assert "greedy, n=1" in table and "t=0.8 p=0.95, n=2" in table
    # the same greedy command again resumes its own folder
    assert main([*argv, "--temperature", "0"]) == 0
    again = json.loads((run.root / "eval" / folders[2] / "humaneval" / "results.json").read_text())
    assert again["timing"]["generated"] == 0
