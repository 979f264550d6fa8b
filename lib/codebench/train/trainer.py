"""The fine-tuning entry point (stage 02, `codebench.stages.finetune.run`, calls these).

In Python::

    job = train.make_job(ctx, cfg)        # resolves the base model and data, clear errors
    data = train.prepare_data(job)        # template, masks, truncation stats, packing
    result = train.finetune(job, data=data)

From a shell, single process or under `accelerate launch` (DeepSpeed / FSDP)::

    python -m codebench.train.trainer --config job.json
    accelerate launch --config_file params/accelerate/zero3.yaml -m codebench.train.trainer --config job.json

Training runs through trl's `SFTTrainer` on the tokens `prepare_data` renders: the tokenizer's
chat template (or the workbench's Jinja fallback) with trl's assistant mask for chat records,
prompt + completion tokenized apart for plain continuations; best-fit-decreasing packing collated padding-free
(restarting position ids), with the workbench's varlen attention keeping packed samples apart.
Before that, `prepare_data` drops and counts the examples whose response truncation would cut
away (trl keeps them silently). Checkpoints every `save_steps`; resumes from the latest
checkpoint of the same configuration. The main process saves the adapter to models/lora,
merges it into the full-precision base at models/finetuned, and writes results/finetune.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from pydantic import BaseModel, ConfigDict
from transformers import PrinterCallback, TrainerState
from trl import SFTConfig, SFTTrainer
from trl.data_utils import pack_dataset

from codebench import results
from codebench.models import context_window, resolve_dtype
from codebench.params import FinetuneSection, resolve_device, seed_everything
from codebench.records import write_json
from codebench.runs import (
    VARIANT_INFO,
    RunLayout,
    file_sha256,
    model_content_key,
    provenance,
    run_relative,
)
from codebench.train import _models
from codebench.train import data as D
from codebench.train.attention import packed_attention, resolve_packed_attention, verify_packing
from codebench.train.callbacks import LogPrinter
from codebench.train.lora import attach_adapters, bnb_config, qlora_method, trainable_parameters
from codebench.train.schedule import ScheduleGuard, expected_curve, warmup_steps

log = logging.getLogger(__name__)
PACKING_TOLERANCE = {torch.float32: 1e-3, torch.bfloat16: 5e-2, torch.float16: 5e-2}


class FinetuneJob(BaseModel):
    """Everything one fine-tuning run needs; serialised as the `--config` JSON."""

    model_config = ConfigDict(extra="forbid")

    finetune: FinetuneSection
    base_path: str
    data_path: str
    run_dir: str
    figures_dir: str | None = None
    seed: int = 0
    device: str = "auto"

    @property
    def run(self) -> RunLayout:
        return RunLayout(
            Path(self.run_dir), Path(self.figures_dir or Path(self.run_dir) / "figures")
        )

    def save(self, path: str | os.PathLike) -> Path:
        write_json(path, self.model_dump(mode="json"))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FinetuneJob:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- inputs
def resolve_base(spec: str, run: RunLayout) -> str:
    """A run variant ('base', 'tiny'), a local path, or a hub id -> a folder or hub id to load."""
    from codebench.models import resolve

    if spec in ("base", "tiny") and not (run.model_dir("base") / VARIANT_INFO).is_file():
        raise FileNotFoundError(
            f"base model not found at {run.model_dir('base')}: stage 00_base_model writes it (run "
            "notebooks/00_base_model.ipynb or `codebench reproduce`), or set finetune.base to a path or hub id"
        )
    return resolve(spec, run)


def resolve_data(spec: str, run: RunLayout) -> Path:
    """The training JSONL: a file in the run's data/ folder, else a path."""
    p = Path(spec).expanduser()
    in_run = run.data / spec
    if not p.is_absolute() and in_run.is_file():
        return in_run
    if p.is_file():
        return p.resolve()
    where = in_run if not p.is_absolute() else p
    raise FileNotFoundError(
        f"training data not found: {where}. Stage 01_build_data (codebench.codeio) writes "
        f"{run.data / 'sft.jsonl'}; run it first, or set finetune.data to an instruction/chat JSONL"
    )


def make_job(ctx: Any, cfg: FinetuneSection) -> FinetuneJob:
    """Build the job of a notebook's stage context and finetune section (paths resolved)."""
    run = ctx.run
    return FinetuneJob(
        finetune=cfg,
        base_path=resolve_base(cfg.base, run),
        data_path=str(resolve_data(cfg.data, run)),
        run_dir=str(ctx.run_dir),
        figures_dir=str(ctx.figures_dir),
        seed=ctx.seed,
        device=ctx.device,
    )


# --------------------------------------------------------------------------- data
@dataclass
class PreparedData:
    """Split, templated data with the cut-away examples dropped: what SFTTrainer trains on.

    `train`/`val` hold each kept example's tokens and labels exactly as trl renders them
    (for the mask inspector, the packing check and the row counts)."""

    tokenizer: Any
    template: str
    train_examples: list[D.Example]
    val_examples: list[D.Example]
    train: list[D.Tokenized]
    val: list[D.Tokenized]
    stats: D.TokenizeStats
    formats: dict[str, int]
    n_records: int
    packing: bool

    def dataset(self, split: str) -> datasets.Dataset | None:
        """The split as trl takes it: each kept example's ``input_ids`` and ``labels`` as
        `tokenize_example` rendered them (trl keeps a ``labels`` column as it is and packs and
        collates it), None when empty. Chat examples are rendered the way trl renders them
        itself (its template utilities, assistant-only loss; `tests/test_train_data.py`
        checks both renderings agree), so one file can mix chat turns with plain
        prompt-completion continuations, which trl's own rendering cannot."""
        toks = self.train if split == "train" else self.val
        if not toks:
            return None
        return datasets.Dataset.from_dict(
            {"input_ids": [t.input_ids for t in toks], "labels": [t.labels for t in toks]}
        )

    def rows(self, split: str) -> int:
        """Rows the split makes: trl's best-fit-decreasing packing of the kept examples."""
        toks = self.train if split == "train" else self.val
        if not self.packing or not toks:
            return len(toks)
        ds = datasets.Dataset.from_dict({"input_ids": [t.input_ids for t in toks]})
        return len(pack_dataset(ds, self.stats.max_length, "bfd"))

    def summary(self) -> dict[str, Any]:
        ml = self.stats.max_length
        train_rows = self.rows("train")
        tokens = sum(len(t.input_ids) for t in self.train)
        return {
            "records": self.n_records,
            "formats": self.formats,
            "template": self.template,
            "train_examples": len(self.train),
            "val_examples": len(self.val),
            "train_rows": train_rows,
            "val_rows": self.rows("val"),
            "train_tokens": tokens,
            "train_loss_tokens": sum(t.n_loss for t in self.train),
            "packing_efficiency": round(tokens / max(1, train_rows * ml), 4),
            **self.stats.as_dict(),
        }


def prepare_data(job: FinetuneJob, tokenizer: Any = None) -> PreparedData:
    """Read, split (seeded) and template the job's data; drop and count the examples whose
    response lies past `max_length`. Packing and collation happen in SFTTrainer."""
    cfg = job.finetune
    tokenizer = tokenizer if tokenizer is not None else _models.load_tokenizer(job.base_path)
    examples = D.load_examples(job.data_path, limit=cfg.max_examples)
    if not examples:
        raise ValueError(f"{job.data_path}: no training records")
    kinds = {e.fmt == "text" for e in examples}
    if len(kinds) > 1:
        first = next(e for e in examples if e.fmt == "text")
        raise D.DataFormatError(
            f"{first.source}: plain-text records cannot be mixed with chat/instruction records in "
            "one training file (the loss is on every token for one, on the replies for the other)"
        )
    train_ex, val_ex = D.split_examples(examples, cfg.val_fraction, job.seed, cfg.max_val)
    template = D.training_template(tokenizer, cfg.template)
    train_ex, train, stats = D.tokenize_examples(train_ex, tokenizer, cfg.max_length)
    val_ex, val, vstats = D.tokenize_examples(val_ex, tokenizer, cfg.max_length, warn=False)
    stats.n_in += vstats.n_in
    stats.n_truncated += vstats.n_truncated
    stats.dropped += vstats.dropped
    stats.lengths += vstats.lengths
    if not train:
        lengths = sorted(stats.lengths)
        raise ValueError(
            f"{job.data_path}: every training example was dropped: its response lies past "
            f"max_length={cfg.max_length} (examples are {lengths[0]}-{lengths[-1]} tokens, median "
            f"{lengths[len(lengths) // 2]}); raise finetune.max_length or shorten the prompts"
        )
    return PreparedData(
        tokenizer,
        template,
        train_ex,
        val_ex,
        train,
        val,
        stats,
        D.format_counts(examples),
        len(examples),
        cfg.packing,
    )


# --------------------------------------------------------------------------- model
def training_dtype(precision: str, device: str) -> torch.dtype:
    """fp32 on CPU; bf16 on GPU (fp16 where bf16 is unsupported); or as configured."""
    names = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
    return resolve_dtype(names.get(precision, precision), device)


def load_model(
    job: FinetuneJob, method: str, device: str, dtype: torch.dtype, tokenizer: Any
) -> Any:
    """The base model, with adapters attached (LoRA/QLoRA) or as is (full)."""
    cfg = job.finetune
    if method == "qlora":
        local = int(os.environ.get("LOCAL_RANK", 0))
        model = _models.load_causal_lm(
            job.base_path,
            dtype=dtype,
            quantization_config=bnb_config(dtype),
            device_map={"": local},
        )
    else:
        # Full fine-tuning keeps fp32 master weights and autocasts; adapters train on a bf16 base.
        model = _models.load_causal_lm(
            job.base_path, dtype=torch.float32 if method == "full" else dtype
        )
    if method != "qlora":
        _models.align(model, tokenizer)
    max_pos = context_window(model)
    if max_pos and cfg.max_length > max_pos:
        log.warning("max_length=%d exceeds the model's %d positions", cfg.max_length, max_pos)
    if cfg.gradient_checkpointing and method != "qlora":
        # transformers 5 names it activation checkpointing (gradient_checkpointing_* are
        # deprecated aliases that warn)
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
    model.config.use_cache = False  # position-id packing needs no cache
    return attach_adapters(
        model, cfg, method=method, gradient_checkpointing=cfg.gradient_checkpointing
    )


@torch.no_grad()
def response_perplexity(model: Any, trainer: Any) -> float | None:
    """exp(mean cross-entropy) over the loss-carrying (response) tokens of the trainer's
    evaluation data, batched by trl's own collator."""
    if trainer.eval_dataset is None:
        return None
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        for batch in trainer.get_eval_dataloader():
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            labels = batch.pop("labels")
            logits = model(**batch, use_cache=False).logits.float()
            shift_logits, shift_labels = logits[:, :-1], labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(
                shift_logits.reshape(-1, shift_logits.shape[-1]),
                shift_labels.reshape(-1),
                ignore_index=D.IGNORE_INDEX,
                reduction="sum",
            )
            total += loss.item()
            count += int((shift_labels != D.IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    return math.exp(total / count) if count else None


# --------------------------------------------------------------------------- trainer
def checkpoint_dir(job: FinetuneJob) -> Path:
    """Checkpoints of this exact run: base, data content, training fields, seed, training code."""
    keep = job.finetune.model_dump(
        exclude={
            "merge",
            "merge_dtype",
            "push_to_hub",
            "distributed",
            "num_processes",
            "resume",
            "logging_steps",
            "threads",
        }
    )
    code = hashlib.sha256(
        b"".join(p.read_bytes() for p in sorted(Path(__file__).parent.glob("*.py")))
    ).hexdigest()
    key = json.dumps(
        {
            "cfg": keep,
            # the base by content (a retrained base in the same folder never resumes the old
            # run's checkpoints), a hub id as is; a moved run keeps its checkpoints
            "base": (
                model_content_key(job.base_path)
                if Path(job.base_path).is_dir()
                else run_relative(job.base_path, job.run_dir)
            ),
            "data": file_sha256(job.data_path),
            "seed": job.seed,
            "code": code,
        },
        sort_keys=True,
    )
    return (
        Path(job.run_dir)
        / "checkpoints"
        / f"finetune-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    )


REPORTERS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}


def report_to(value: str | Sequence[str] | None) -> list[str]:
    """`finetune.report_to` checked for TrainingArguments: 'none', 'tensorboard', 'wandb' or a
    list of them. Each integration's package must be importable (one clear error otherwise).
    TensorBoard writes under the checkpoint folder's runs/ (or $TENSORBOARD_LOGGING_DIR); W&B
    reads WANDB_PROJECT / WANDB_API_KEY as usual."""
    import importlib.util

    names = [value] if isinstance(value, str) or value is None else list(value)
    out = []
    for name in names:
        name = (name or "none").strip().lower()
        if name == "none":
            continue
        if name not in REPORTERS:
            raise ValueError(
                f"finetune.report_to: unknown integration {name!r} (known: none, {', '.join(REPORTERS)})"
            )
        if not any(importlib.util.find_spec(m) for m in REPORTERS[name]):
            raise ValueError(
                f"finetune.report_to: {name} needs the {REPORTERS[name][0]} package (pip install {REPORTERS[name][0]})"
            )
        out.append(name)
    return out


def training_arguments(
    job: FinetuneJob,
    out_dir: Path,
    device: str,
    dtype: torch.dtype,
    has_val: bool,
) -> SFTConfig:
    """trl SFTConfig for the job: assistant-only loss on chat data (completion-only loss on
    prompt-completion pairs, every token of plain text), best-fit-decreasing packing when `finetune.packing`; reporting integrations per
    `finetune.report_to` (default none; codebench's own logging always)."""
    cfg = job.finetune
    return SFTConfig(
        output_dir=str(out_dir),
        max_length=cfg.max_length,
        packing=cfg.packing,
        packing_strategy="bfd",
        assistant_only_loss=False,  # the labels come masked (PreparedData.dataset)
        dataset_text_field="text",
        activation_checkpointing=False,  # enabled on the model itself (load_model)
        max_steps=cfg.max_steps or -1,
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_val else "no",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=job.seed,
        data_seed=job.seed,
        use_cpu=device != "cuda",
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        report_to=report_to(getattr(cfg, "report_to", "none")) or "none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        log_level="warning",
        use_cache=False,
    )


def resolve_resume(resume: str, out_dir: Path) -> str | None:
    """'auto' -> the latest complete checkpoint in `out_dir` (None if there is none); 'never'
    -> None; else the path.

    transformers writes `checkpoint-N/` in place, so a run killed (or a disk that filled) while
    saving leaves an incomplete folder. 'auto' skips and removes such a folder with one warning
    line and resumes from the previous complete checkpoint.
    """
    if resume == "never":
        return None
    if resume == "auto":
        if not out_dir.is_dir():
            return None
        found = []
        for d in out_dir.iterdir():
            m = _CHECKPOINT.fullmatch(d.name)
            if m and d.is_dir():
                found.append((int(m.group(1)), d))
        for _, d in sorted(found, reverse=True):
            problem = checkpoint_problem(d)
            if problem is None:
                return str(d)
            log.warning("skipping incomplete checkpoint %s (%s); removed it", d, problem)
            shutil.rmtree(d, ignore_errors=True)
        return None
    if not Path(resume).is_dir():
        raise FileNotFoundError(f"resume: checkpoint folder not found: {resume}")
    problem = checkpoint_problem(Path(resume))
    if problem is not None:
        raise FileNotFoundError(f"resume: {resume} is an incomplete checkpoint ({problem})")
    return resume


_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


def checkpoint_problem(d: Path) -> str | None:
    """Why a transformers checkpoint folder cannot be resumed from, or None when it is whole:
    trainer_state.json (written last) parses, every safetensors file holds all the bytes its
    header promises, and every torch pickle (optimizer, scheduler, rng) has its zip directory."""
    try:
        json.loads((d / "trainer_state.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no trainer_state.json"
    except (OSError, ValueError) as e:
        return f"unreadable trainer_state.json: {e}"
    weights = [*d.glob("*.safetensors"), *d.glob("*.bin")]
    if not weights:
        return "no model weights"
    for f in d.glob("*.safetensors"):
        if not _safetensors_whole(f):
            return f"truncated {f.name}"
    for f in [*d.glob("*.pt"), *d.glob("*.pth"), *d.glob("*.bin")]:
        if not zipfile.is_zipfile(f):
            return f"truncated {f.name}"
    return None


def _safetensors_whole(f: Path) -> bool:
    """True when the file is as long as its header says (8-byte length, JSON, tensor data)."""
    try:
        with f.open("rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
        end = max(
            (v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0
        )
        return f.stat().st_size == 8 + n + end
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False


def run_training(trainer: Any, resume: str | None) -> tuple[float, float, float]:
    """Train (resuming from `resume`); a checkpoint of a finished run is restored, not retrained.

    Returns (mean training loss, wall seconds, process CPU seconds). transformers trains one
    extra step when resumed from a checkpoint at max_steps, so a finished checkpoint is loaded
    directly instead.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    if resume is not None:
        state = TrainerState.load_from_json(str(Path(resume) / "trainer_state.json"))
        if state.global_step >= state.max_steps > 0:
            trainer._load_from_checkpoint(resume)
            trainer.state = state
            losses = [h["loss"] for h in state.log_history if "loss" in h]
            log.info("checkpoint %s is a finished run: restored without training", resume)
            return (sum(losses) / len(losses) if losses else float("nan")), 0.0, 0.0
    out = trainer.train(resume_from_checkpoint=resume)
    return out.training_loss, time.perf_counter() - t0, time.process_time() - c0


def build_trainer(
    job: FinetuneJob,
    model: Any,
    data: PreparedData,
    dtype: torch.dtype,
    device: str,
    callbacks: Sequence[Any] = (),
    *,
    eval_on_start: bool = False,
) -> tuple[SFTTrainer, ScheduleGuard]:
    """trl's SFTTrainer over the prepared data, with the schedule guard and log printer.

    Checks that trl's packing kept every token `prepare_data` rendered (a trl change that
    dropped or re-tokenized rows would otherwise make the drop-and-count rule silently wrong)."""
    cfg = job.finetune
    guard = ScheduleGuard(lr=cfg.lr, schedule=cfg.lr_scheduler, warmup=cfg.warmup)
    val = data.dataset("val")
    args = training_arguments(job, checkpoint_dir(job), device, dtype, val is not None)
    args.eval_on_start = eval_on_start and val is not None
    datasets.disable_progress_bars()
    trainer = SFTTrainer(
        model=model,
        args=args,
        processing_class=data.tokenizer,
        train_dataset=data.dataset("train"),
        eval_dataset=val,
        callbacks=[guard, LogPrinter(), *callbacks],
    )
    trainer.remove_callback(PrinterCallback)
    want = sum(len(t.input_ids) for t in data.train)
    got = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    if got != want:
        raise RuntimeError(
            f"trl prepared the training data as {got} tokens, prepare_data rendered {want}: the "
            "drop-and-count rule no longer sees what trl trains on (trl change?)"
        )
    return trainer, guard


# --------------------------------------------------------------------------- entry point
def finetune(
    job: FinetuneJob, *, data: PreparedData | None = None, callbacks: Sequence[Any] = ()
) -> dict[str, Any]:
    """Fine-tune per `job`; save adapter, merged model and results (main process). Returns the results.

    `data`: what `prepare_data(job)` returned (prepared here when None); `callbacks`: extra
    transformers TrainerCallbacks. Single process: checks packing numerically and measures
    validation perplexity before and after exactly; under `accelerate launch` (WORLD_SIZE > 1)
    perplexity comes from the Trainer's evaluation loss at step 0 and at the end.
    """
    cfg = job.finetune
    from codebench.train.merge import check_push

    check_push(getattr(cfg, "push_to_hub", None))  # before hours of training, not after
    report_to(getattr(cfg, "report_to", "none"))  # an unusable integration fails here
    seed_everything(job.seed)
    torch.manual_seed(job.seed)
    device = resolve_device(job.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    method = qlora_method(cfg.method, device, allow_cpu_fallback=cfg.allow_qlora_cpu)
    dtype = training_dtype(cfg.precision, device) if method == cfg.method else torch.float32
    data = data or prepare_data(job)
    model = load_model(job, method, device, dtype, data.tokenizer)
    mode = resolve_packed_attention(model, cfg.packed_attention) if cfg.packing else "padded"
    single = int(os.environ.get("WORLD_SIZE", 1)) == 1
    if single and device == "cuda" and method != "qlora":
        model.to("cuda")
    with packed_attention(model, mode):
        trainer, measured = _train(job, model, data, mode, dtype, device, callbacks, single)
    result = {
        "method": method,
        "requested_method": cfg.method,
        "device": device,
        "dtype": str(dtype).replace("torch.", ""),
        "attention": mode,
        **measured,
        "data": {"path": job.data_path, "sha256": file_sha256(job.data_path), **data.summary()},
        "lengths": data.stats.lengths,
        "expected_lr": _expected(cfg, trainer.state.max_steps),
        "log_history": trainer.state.log_history,
        "trainable_parameters": dict(
            zip(("trainable", "total"), trainable_parameters(model), strict=True)
        ),
        "config": cfg.model_dump(mode="json"),
        "base_path": run_relative(job.base_path, job.run_dir),
        "checkpoints": run_relative(checkpoint_dir(job), job.run_dir),
        "provenance": provenance(job.seed),
    }
    if trainer.is_world_process_zero():
        from codebench.train.merge import save_outputs

        result["artifacts"] = save_outputs(trainer, job, method, data)
        result = results.write_stage(job.run, results.FinetuneResults, result)
    return result


def _train(
    job: FinetuneJob,
    model: Any,
    data: PreparedData,
    mode: str,
    dtype: torch.dtype,
    device: str,
    callbacks: Sequence[Any],
    single: bool,
) -> tuple[Any, dict[str, Any]]:
    """Packing check, perplexity before, training (or resume), schedule check, perplexity after."""
    cfg = job.finetune
    check = check_packing(model, data, mode, dtype) if single and cfg.packing else None
    trainer, guard = build_trainer(
        job, model, data, dtype, device, callbacks, eval_on_start=not single
    )
    ppl_before = response_perplexity(model, trainer) if single else None
    resume = resolve_resume(cfg.resume, checkpoint_dir(job))
    train_loss, seconds, cpu_seconds = run_training(trainer, resume)
    if guard.checked is None:  # restored a finished run: check the schedule it would build
        trainer.create_optimizer_and_scheduler(num_training_steps=trainer.state.max_steps)
        guard.on_train_begin(trainer.args, trainer.state, None, lr_scheduler=trainer.lr_scheduler)
    if single:
        ppl_after = response_perplexity(model, trainer)
    else:
        ppl_before, ppl_after = _ppl_from_eval(trainer)
    return trainer, {
        "packing_check_max_abs_diff": check,
        "resumed_from": resume,
        "schedule": guard.checked,
        "train": _train_summary(trainer, train_loss, seconds, cfg)
        | {"cpu_seconds": round(cpu_seconds, 2)},
        "val_ppl_before": ppl_before,
        "val_ppl_after": ppl_after,
    }


def _ppl_from_eval(trainer: Any) -> tuple[float | None, float | None]:
    """Perplexity before/after from the Trainer's eval loss (multi-process runs)."""
    if trainer.eval_dataset is None:
        return None, None
    first = next((h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h), None)
    last = trainer.evaluate()["eval_loss"]
    return (math.exp(first) if first is not None else None), math.exp(last)


def check_packing(model: Any, data: PreparedData, mode: str, dtype: torch.dtype) -> float:
    """Verify on real samples that packed rows give the logits of each sample alone."""
    samples = [
        t.input_ids[:48] for t in (data.train[:3] if len(data.train) >= 2 else data.train * 2)
    ]
    diff = verify_packing(model, samples, mode)
    if diff > PACKING_TOLERANCE.get(dtype, 5e-2):
        raise RuntimeError(
            f"packed samples attend across boundaries with packed_attention={mode!r} "
            f"(max logit difference {diff:.3g}); use packing: false"
        )
    log.info("packing check (%s): max |logit diff| %.2e", mode, diff)
    return diff


def _expected(cfg: FinetuneSection, total: int) -> list[float]:
    return expected_curve(
        lr=cfg.lr, schedule=cfg.lr_scheduler, warmup=warmup_steps(cfg.warmup, total), total=total
    )


def _train_summary(
    trainer: Any, train_loss: float, seconds: float, cfg: FinetuneSection
) -> dict[str, Any]:
    tokens = next(  # trl counts the tokens it trained on (padding-free: real tokens only)
        (int(h["num_tokens"]) for h in reversed(trainer.state.log_history) if "num_tokens" in h),
        None,
    )
    return {
        "steps": trainer.state.global_step,
        "max_steps": trainer.state.max_steps,
        "seconds": round(seconds, 2),
        "train_loss": train_loss,
        "rows_per_step": cfg.batch_size * cfg.grad_accum,
        "real_tokens": tokens,
        "tokens_per_second": round(tokens / seconds, 1) if tokens and seconds else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m codebench.train.trainer --config job.json` (also the accelerate-launch target)."""
    ap = argparse.ArgumentParser(prog="codebench.train.trainer", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--config", required=True, help="job JSON written by FinetuneJob.save / train.launch"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    job = FinetuneJob.load(args.config)
    result = finetune(job)
    if int(os.environ.get("RANK", 0)) == 0:
        print(
            json.dumps(
                {k: result.get(k) for k in ("method", "val_ppl_before", "val_ppl_after", "train")},
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
