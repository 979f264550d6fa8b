"""Saving what training produced: the adapter (models/lora), the merged model (models/finetuned).

The merge reloads the base in full precision (fp32 by default) and folds the adapter into
its weights (`merge_and_unload`), also for QLoRA, whose adapter was trained on the 4-bit base.
Each saved folder gets `codebench_variant.json` (kind, parent, loader, and the template used,
so evaluation prompts the model the way it was trained).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from codebench.quiet import quiet_peft
from codebench.runs import read_variant_info, write_variant_info
from codebench.train import _models

log = logging.getLogger(__name__)


def _fresh_dir(path: Path, kind: str) -> None:
    """Empty an output folder we wrote before (never a folder holding something else)."""
    if path.exists():
        info = read_variant_info(path)
        if info is None and any(path.iterdir()):
            raise FileExistsError(
                f"{path} exists and is not a codebench {kind} variant; not overwriting it"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True)


def merge_adapter(
    base_path: str,
    adapter_dir: str | Path,
    out_dir: str | Path,
    *,
    tokenizer: Any = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Fold a LoRA adapter into its base loaded in `dtype` and save a plain HF model (+ tokenizer)."""
    from peft import PeftModel

    out = Path(out_dir)
    base = _models.load_causal_lm(base_path, dtype=torch.float32)
    with quiet_peft():
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged = merged.to(dtype)
    merged.save_pretrained(out)
    tok = tokenizer if tokenizer is not None else _models.load_tokenizer(adapter_dir)
    tok.save_pretrained(out)
    return out


def hub_token() -> str | None:
    """The Hugging Face token the standard lookup finds: HF_TOKEN, else the one `hf auth login`
    (`huggingface-cli login`) stored."""
    from huggingface_hub import get_token

    return get_token()


class HubPushError(RuntimeError):
    """push_to_hub was asked for but cannot happen (no token)."""


def check_push(repo_id: str | None) -> None:
    """Fail before training when `push_to_hub` names a repo but no token is available."""
    if repo_id and not hub_token():
        raise HubPushError(
            f"push_to_hub={repo_id!r}: no Hugging Face token (set HF_TOKEN or run `hf auth login`), "
            "or remove push_to_hub from the profile"
        )


def push_to_hub(path: str | Path, repo_id: str, *, private: bool = True) -> str:
    """Upload a saved model folder with the standard token lookup; returns the repo URL."""
    check_push(repo_id)
    from huggingface_hub import HfApi

    api = HfApi(token=hub_token())
    api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(path), repo_id=repo_id, commit_message="codebench fine-tune")
    return f"https://huggingface.co/{repo_id}"


def save_outputs(trainer: Any, job: Any, method: str, data: Any) -> dict[str, Any]:
    """Save adapter / merged / fully fine-tuned model with their variant records."""
    cfg, run = job.finetune, job.run
    parent = _parent_name(cfg.base, run) or job.base_path
    common = {
        "base_model": job.base_path,
        "method": method,
        "template": data.template,
        "max_length": cfg.max_length,
    }
    out: dict[str, Any] = {}
    if method in ("lora", "qlora"):
        lora = run.model_dir("lora")
        _fresh_dir(lora, "lora")
        trainer.save_model(str(lora))
        write_variant_info(lora, kind="lora", parent=parent, loader="peft", **common)
        out["lora"] = str(lora)
        if cfg.merge:
            fin = run.model_dir("finetuned")
            _fresh_dir(fin, "finetuned")
            merge_adapter(
                job.base_path,
                lora,
                fin,
                tokenizer=data.tokenizer,
                dtype=getattr(torch, cfg.merge_dtype),
            )
            write_variant_info(
                fin, kind="finetuned", parent=parent, loader="hf", adapter="lora", **common
            )
            out["finetuned"] = str(fin)
    else:
        fin = run.model_dir("finetuned")
        _fresh_dir(fin, "finetuned")
        trainer.model.config.use_cache = (
            True  # training turned the KV cache off; generation wants it
        )
        trainer.save_model(str(fin))
        write_variant_info(fin, kind="finetuned", parent=parent, loader="hf", **common)
        out["finetuned"] = str(fin)
    if cfg.push_to_hub and "finetuned" in out:
        out["hub"] = push_to_hub(out["finetuned"], cfg.push_to_hub)
    return out


def _parent_name(spec: str, run: Any) -> str | None:
    """The run variant the model was fine-tuned from ('tiny' is the run's 'base'), if any."""
    name = "base" if spec == "tiny" else spec
    return name if name in run.variants() else None
