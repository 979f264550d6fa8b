"""codebench.train end to end on tiny random models: LoRA, resume, merge, schedule, QLoRA message."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers.train import save_tiny_model, sft_records

from codebench.params import FinetuneSection
from codebench.runs import RunLayout, read_variant_info
from codebench.train.callbacks import StopAfter
from codebench.train.lora import QLoRAUnavailable, bnb_config, qlora_method
from codebench.train.schedule import ScheduleMismatch, check_scheduler, expected_lr
from codebench.train.trainer import FinetuneJob, finetune, resolve_base, resolve_data

SMALL = dict(
    max_steps=4,
    batch_size=4,
    max_length=192,
    eval_steps=2,
    save_steps=2,
    logging_steps=1,
    lr=1e-2,
    lora_r=4,
    lora_alpha=8,
    lora_dropout=0.0,
    val_fraction=0.2,
    warmup=1,
)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("llama"), "llama")


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("data") / "sft.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in sft_records(40)))
    return p


def _job(tmp: Path, base: Path, data: Path, **over) -> FinetuneJob:
    cfg = FinetuneSection(**{**SMALL, **over})
    return FinetuneJob(
        finetune=cfg,
        base_path=str(base),
        data_path=str(data),
        run_dir=str(tmp / "run"),
        figures_dir=str(tmp / "figs"),
        seed=0,
        device="cpu",
    )


def _losses(result: dict) -> list[float]:
    return [h["loss"] for h in result["log_history"] if "loss" in h]


def test_lora_end_to_end(tmp_path: Path, llama_dir: Path, sft_file: Path) -> None:
    result = finetune(_job(tmp_path, llama_dir, sft_file, max_steps=6, eval_steps=3, save_steps=3))
    run = RunLayout(tmp_path / "run", tmp_path / "figs")
    saved = json.loads(run.result_file("finetune").read_text())
    assert saved["val_ppl_after"] == result["val_ppl_after"] < result["val_ppl_before"]
    assert (
        result["method"] == "lora"
        and result["dtype"] == "float32"
        and result["attention"] == "varlen"
    )
    assert result["packing_check_max_abs_diff"] < 1e-4
    assert result["data"]["train_rows"] < result["data"]["train_examples"]  # packing packed
    assert result["schedule"]["matches"] and result["train"]["steps"] == 6
    losses = _losses(result)
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert any("eval_loss" in h for h in result["log_history"])
    # the logged lr at step s is the rate used for that step: the configured schedule at s - 1
    for h in result["log_history"]:
        if "learning_rate" in h:
            want = expected_lr(h["step"] - 1, lr=1e-2, schedule="cosine", warmup=1, total=6)
            assert h["learning_rate"] == pytest.approx(want, rel=1e-6, abs=1e-12)
    lora, fin = run.model_dir("lora"), run.model_dir("finetuned")
    assert (lora / "adapter_model.safetensors").is_file() and (
        lora / "adapter_config.json"
    ).is_file()
    assert (
        read_variant_info(lora).items()
        >= {"kind": "lora", "loader": "peft", "parent": str(llama_dir)}.items()
    )
    assert (
        read_variant_info(fin).items()
        >= {"kind": "finetuned", "loader": "hf", "template": "fallback"}.items()
    )
    assert (fin / "model.safetensors").is_file() and (fin / "tokenizer.json").is_file()


def test_merged_model_matches_adapter_model(
    tmp_path: Path, llama_dir: Path, sft_file: Path
) -> None:
    from codebench.models import load_model

    finetune(_job(tmp_path, llama_dir, sft_file))
    run = RunLayout(tmp_path / "run", tmp_path / "figs")
    adapter = load_model(
        "lora", "cpu", "float32", run=run
    )  # codebench.models: peft loader on its parent
    merged = load_model("finetuned", "cpu", "float32", run=run)
    base = load_model(str(llama_dir), "cpu", "float32")
    ids = torch.randint(2, 300, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, m, b = (x(input_ids=ids).logits for x in (adapter, merged, base))
    assert (a - m).abs().max().item() < 1e-4
    assert (a - b).abs().max().item() > 1e-3  # the adapter learned something


def test_resume_gives_the_same_loss_curve(tmp_path: Path, llama_dir: Path, sft_file: Path) -> None:
    over = dict(max_steps=6, save_steps=3, eval_steps=100, lora_dropout=0.1)
    full = finetune(_job(tmp_path / "a", llama_dir, sft_file, **over, resume="never"))
    first = finetune(_job(tmp_path / "b", llama_dir, sft_file, **over), callbacks=[StopAfter(3)])
    assert first["train"]["steps"] == 3
    resumed = finetune(_job(tmp_path / "b", llama_dir, sft_file, **over))
    assert resumed["resumed_from"].endswith("checkpoint-3")
    assert _losses(resumed) == pytest.approx(_losses(full), rel=1e-5)
    assert resumed["val_ppl_after"] == pytest.approx(full["val_ppl_after"], rel=1e-5)


def test_finished_checkpoint_is_restored_not_retrained(
    tmp_path: Path, llama_dir: Path, sft_file: Path
) -> None:
    one = finetune(_job(tmp_path, llama_dir, sft_file))
    two = finetune(_job(tmp_path, llama_dir, sft_file))
    assert two["resumed_from"].endswith("checkpoint-4") and two["train"]["steps"] == 4
    assert two["val_ppl_after"] == pytest.approx(one["val_ppl_after"], rel=1e-6)
    assert two["schedule"]["matches"]


def test_codegen_fused_qkv_trains_with_lora(tmp_path: Path, sft_file: Path) -> None:
    base = save_tiny_model(tmp_path / "codegen", "codegen")
    result = finetune(_job(tmp_path, base, sft_file, merge=False))
    assert result["attention"] == "position_ids" and result["packing_check_max_abs_diff"] < 1e-4
    cfg = json.loads((tmp_path / "run" / "models" / "lora" / "adapter_config.json").read_text())
    assert {"qkv_proj", "out_proj", "fc_in", "fc_out"} <= {
        m.rsplit(".", 1)[-1] for m in cfg["target_modules"]
    }
    assert (
        all(math.isfinite(x) for x in _losses(result))
        and result["val_ppl_after"] < result["val_ppl_before"]
    )


@pytest.mark.parametrize(
    "over",
    [
        {"packing": False},
        {"packed_attention": "position_ids"},
        {"gradient_checkpointing": True},
        {"method": "full", "lr": 1e-3},
    ],
)
def test_other_layouts_and_full_finetuning(
    tmp_path: Path, llama_dir: Path, sft_file: Path, over: dict
) -> None:
    result = finetune(_job(tmp_path, llama_dir, sft_file, max_steps=2, **over))
    want = "padded" if "packing" in over else over.get("packed_attention", "varlen")
    assert result["val_ppl_after"] < result["val_ppl_before"]
    assert result["attention"] == want
    assert all(math.isfinite(x) for x in _losses(result))
    if over.get("method") == "full":
        assert (
            "lora" not in result["artifacts"]
            and (tmp_path / "run/models/finetuned/model.safetensors").is_file()
        )


# --------------------------------------------------------------------------- QLoRA, schedule, inputs
def test_qlora_on_cpu_gives_a_clear_message(
    tmp_path: Path, llama_dir: Path, sft_file: Path
) -> None:
    with pytest.raises(
        QLoRAUnavailable, match="QLoRA needs a CUDA GPU.*method: lora.*allow_qlora_cpu"
    ):
        qlora_method("qlora", "cpu")
    with pytest.raises(QLoRAUnavailable, match="CUDA GPU"):
        finetune(_job(tmp_path, llama_dir, sft_file, method="qlora"))
    with pytest.warns(UserWarning, match="plain LoRA"):
        result = finetune(
            _job(tmp_path, llama_dir, sft_file, method="qlora", allow_qlora_cpu=True, max_steps=1)
        )
    assert result["method"] == "lora" and result["requested_method"] == "qlora"


def test_bnb_config_is_nf4_double_quant() -> None:
    cfg = bnb_config()
    assert cfg.load_in_4bit and cfg.bnb_4bit_quant_type == "nf4" and cfg.bnb_4bit_use_double_quant
    assert cfg.bnb_4bit_compute_dtype == torch.bfloat16


def test_schedule_guard_catches_an_overridden_schedule() -> None:
    from transformers import get_scheduler

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    cosine = get_scheduler("cosine", opt, num_warmup_steps=2, num_training_steps=10)
    check_scheduler(cosine, lr=1e-3, schedule="cosine", warmup=2, total=10)
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    warm_const = get_scheduler("constant_with_warmup", opt2, num_warmup_steps=2)
    with pytest.raises(ScheduleMismatch, match="step 3: .*'cosine'"):
        check_scheduler(warm_const, lr=1e-3, schedule="cosine", warmup=2, total=10)
    with pytest.raises(ScheduleMismatch, match="DeepSpeed"):
        check_scheduler(object(), lr=1e-3, schedule="cosine", warmup=2, total=10)


def test_missing_inputs_name_path_and_stage(tmp_path: Path) -> None:
    run = RunLayout(tmp_path / "run", tmp_path / "figs")
    with pytest.raises(FileNotFoundError, match=r"data/sft\.jsonl.*01_build_data"):
        resolve_data("sft.jsonl", run)
    with pytest.raises(FileNotFoundError, match=r"models/base.*00_base_model"):
        resolve_base("base", run)


def test_all_examples_dropped_is_one_clear_error(
    tmp_path: Path, llama_dir: Path, sft_file: Path
) -> None:
    from codebench.train.trainer import prepare_data

    with (
        pytest.warns(UserWarning),
        pytest.raises(ValueError, match=r"every training example was dropped.*median"),
    ):
        prepare_data(_job(tmp_path, llama_dir, sft_file, max_length=8))
