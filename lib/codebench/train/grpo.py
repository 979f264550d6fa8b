"""GRPO fine-tuning with execution rewards: trl's `GRPOTrainer`, LoRA, codebench's sandbox.

    from codebench.train import grpo
    settings = grpo.GRPOSettings(steps=20, num_generations=4)
    tasks = grpo.mbpp_train_tasks(data_dir)            # or any list of HumanEval-format rows
    result = grpo.grpo_finetune(run, settings, tasks=tasks, seed=0, device="cpu")

What it does (docs/grpo.md):

* the policy is the base model (a run variant such as 'base' or the SFT result 'finetuned', a
  local path or a hub id) with fresh LoRA adapters (peft), fp32 on CPU, bf16 on a GPU;
* each step samples `num_generations` completions for each of `prompts_per_step` prompts with
  the configured sampling settings (temperature, top_p), through the model's own `generate` or,
  with `use_vllm`, through vLLM (trl's colocate or server mode; GPU only);
* the reward is `codebench.rewards.SandboxReward`: every completion of the step is scored in one
  parallel batch in the sandbox with the trusted comparison (fraction of asserts passed or
  binary pass), and recorded in results/grpo_rewards.jsonl;
* before training the tasks are validated (a malformed row is one error naming it), checked
  against the evaluation sets by word n-gram overlap (`decontaminate`; overlapping tasks are
  dropped and listed), their reference solutions (when the rows carry one) must earn the top
  reward (tasks whose reference does not are dropped and listed), and prompt + completion must
  fit the model's context;
* afterwards the adapter goes to models/<variant>-lora (loader peft) and the merged model to
  models/<variant> (loader hf), each with codebench_variant.json, like the SFT stage's
  models/lora and models/finetuned, so compression, evaluation and the report pick it up as
  its own variant; results/<variant>.json holds the settings, the per-step curve (mean reward,
  pass rate, outcomes), trl's log history, timings and the task checks.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from codebench import results
from codebench.models import resolve_dtype
from codebench.params import GRPOSection
from codebench.rewards import RewardTask, SandboxReward, reference_code, validate_tasks
from codebench.runs import RunLayout, provenance, write_variant_info

log = logging.getLogger(__name__)


class GRPOSettings(GRPOSection):
    """Settings of one GRPO run: the profile's `finetune.grpo` section (`params.GRPOSection`,
    one home for the fields and their checks; see docs/grpo.md)."""


# --------------------------------------------------------------------------- tasks
MBPP_TRAIN_IDS = range(601, 975)


def mbpp_train_tasks(data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """MBPP's train split (task ids 601-974) as HumanEval-format rows, zero-shot MBPP prompts.

    The prompt is the MBPP task statement with its tests and "[BEGIN]" (the evaluation's
    base prompt without the 3 shots); the completion is cut at "[DONE]".
    """
    from codebench.bench.mbpp import TASK_TEMPLATE, mbpp_file
    from codebench.records import read_jsonl

    path = mbpp_file(data_dir)
    if not path.is_file():
        raise FileNotFoundError(f"MBPP data not found: {path}")
    rows = []
    for r in read_jsonl(path):
        if int(r["task_id"]) not in MBPP_TRAIN_IDS:
            continue
        rows.append(
            {
                "task_id": f"mbpp/{r['task_id']}",
                "prompt": TASK_TEMPLATE.format(text=r["text"], tests="\n".join(r["test_list"]))
                + "[BEGIN]\n",
                "tests": "\n".join(t.strip() for t in r["test_list"]) + "\n",
                "setup": r.get("test_setup_code") or "",
                "reference": r["code"].replace("\r\n", "\n"),
            }
        )
    return rows


PYFAMILIES_TASKS = 256


def pyfamilies_train_tasks(
    count: int = PYFAMILIES_TASKS, seed: int = 1, *, sft: bool = False
) -> list[dict[str, Any]]:
    """The built-in benchmark's training functions as HumanEval-format rows.

    Only training (function name, family) pairs (`pyfamilies.training_instances`); an
    evaluation pair here is a bug and raises. Functions whose tests another constant of the
    family would pass (`Instance.strict` false, about 0.7 %) are left out: the reward must not
    pay a wrong answer. Prompt = signature + docstring (the evaluation's
    base prompt shape), tests = `check(candidate)` with five asserts, reference = the body.
    Stage 00 mixes `training_instances(..., seed=0)` into the tiny model's corpus; the default
    seed 1 draws other instances of the same training pairs. `sft`: the families only the
    SFT mix teaches (`pyfamilies.SFT_FAMILIES`, held out by the `pyfamilies-sft` benchmark).
    """
    from codebench.bench import pyfamilies

    rows, seen = [], set()
    for inst in pyfamilies.training_instances(count, seed, sft=sft):
        if pyfamilies.is_eval_pair(inst.name, inst.family):
            raise AssertionError(f"{inst.task_id}: evaluation pair {inst.name}/{inst.family}")
        if inst.prompt in seen or not inst.strict:  # drawn twice, or a wrong constant passes
            continue
        seen.add(inst.prompt)
        rows.append(
            {
                "task_id": inst.task_id,
                "prompt": inst.prompt,
                "test": inst.tests,
                "entry_point": inst.name,
                "canonical_solution": inst.solution,
                "family": inst.family,
            }
        )
    return rows


def load_task_rows(
    spec: str,
    data_dir: str | Path | None = None,
    *,
    count: int | None = None,
    seed: int = 1,
) -> list[dict[str, Any]]:
    """Rows for `GRPOSettings.tasks`: 'pyfamilies-train', 'pyfamilies-sft-train', 'mbpp-train'
    or a JSONL path of HumanEval-format rows (`count`: how many pyfamilies functions to
    generate)."""
    if spec in ("pyfamilies-train", "pyfamilies-sft-train"):
        return pyfamilies_train_tasks(
            count or PYFAMILIES_TASKS, seed, sft=spec == "pyfamilies-sft-train"
        )
    if spec == "mbpp-train":
        return mbpp_train_tasks(data_dir)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"grpo.tasks: {spec!r} is neither 'pyfamilies-train', 'pyfamilies-sft-train', "
            "'mbpp-train' nor a JSONL file "
            "of HumanEval-format rows"
        )
    from codebench.records import read_jsonl

    return list(read_jsonl(path))


def evaluation_texts(
    data_dir: str | Path | None = None, extra: Mapping[str, Iterable[str]] | None = None
) -> dict[str, list[str]]:
    """Texts of every evaluated set: HumanEval (prompt + solution), the built-in pyfamilies
    benchmark's held-out problems (prompt + solution), MBPP's test split and the 3-shot
    prompt's problems (text + code + tests), MTPB prompts, plus `extra` sets."""
    from codebench.codeio.decontam import GENERATED_SETS, eval_texts

    out: dict[str, list[str]] = {
        name: list(eval_texts(name, None)) for name in ("humaneval", *GENERATED_SETS)
    }
    if data_dir is not None:
        from codebench.bench.mbpp import SHOT_IDS, TEST_IDS, mbpp_file
        from codebench.records import read_jsonl

        mbpp = mbpp_file(data_dir)
        if mbpp.is_file():
            keep = set(TEST_IDS) | set(SHOT_IDS)
            out["mbpp"] = [
                r.get("text", "") + "\n" + r.get("code", "") + "\n" + "\n".join(r["test_list"])
                for r in read_jsonl(mbpp)
                if int(r["task_id"]) in keep
            ]
        with contextlib.suppress(FileNotFoundError):
            out["mtpb"] = list(eval_texts("mtpb", Path(data_dir)))
    for name, texts in (extra or {}).items():
        out[name] = list(texts)
    return out


def decontaminate(
    tasks: Sequence[RewardTask],
    texts: Mapping[str, Iterable[str]],
    *,
    n: int = 10,
    threshold: float = 0.2,
    stats: dict[str, Any] | None = None,
) -> tuple[list[RewardTask], list[dict[str, Any]]]:
    """(kept, dropped): tasks whose prompt + tests share >= `threshold` of their word n-grams
    with one evaluation set, or whose prompt appears word for word in an evaluated text, are
    dropped (codebench.codeio.decontam's measure). `stats` (a dict) receives the sets checked
    (texts per set), n, threshold and the largest overlap among the kept tasks."""
    from codebench.codeio.decontam import Decontaminator, ngrams

    texts = {name: list(items) for name, items in texts.items()}
    d = Decontaminator(n=n, threshold=threshold)
    for name, items in texts.items():
        grams: set[int] = set()
        for t in items:
            grams |= ngrams(t, n)
        d.index[name] = grams
    exact = {name: {x.strip() for x in items} for name, items in texts.items()}
    kept, dropped, top = [], [], 0.0
    for t in tasks:
        bad, share, where = d.is_contaminated(t.prompt + "\n" + t.tests)
        same = [name for name, xs in exact.items() if any(t.prompt.strip() in x for x in xs)]
        if same and len(t.prompt.strip()) >= 40:  # an evaluated prompt, word for word
            bad, share, where = True, 1.0, same[0]
        if bad:
            dropped.append({"task_id": t.task_id, "overlap": round(share, 3), "set": where})
        else:
            kept.append(t)
            top = max(top, share)
    if stats is not None:
        stats.update(
            sets={name: len(exact[name]) for name in texts},
            n=n,
            threshold=threshold,
            max_overlap_kept=round(top, 4),
        )
    return kept, dropped


def check_references(
    reward: SandboxReward, tasks: Sequence[RewardTask], references: Sequence[str | None]
) -> tuple[list[RewardTask], list[dict[str, Any]]]:
    """(kept, dropped): a task whose reference does not earn the top reward is dropped (its
    reward would be constant, or its tests broken); tasks without a reference are kept."""
    pairs = [(t, r) for t, r in zip(tasks, references, strict=True) if r is not None]
    scored = reward.score([t for t, _ in pairs], [r for _, r in pairs]) if pairs else []
    bad = {
        t.task_id: s
        for (t, _), s in zip(pairs, scored, strict=True)
        if s.reward < reward.table["pass"]
    }
    kept = [t for t in tasks if t.task_id not in bad]
    dropped = [
        {"task_id": k, "outcome": s.outcome, "detail": s.detail[:300]} for k, s in bad.items()
    ]
    return kept, dropped


def prepare_tasks(
    rows: Sequence[Mapping[str, Any]],
    reward: SandboxReward,
    settings: GRPOSettings,
    data_dir: str | Path | None = None,
    eval_extra: Mapping[str, Iterable[str]] | None = None,
) -> tuple[list[RewardTask], dict[str, Any]]:
    """Validate, decontaminate and reference-check the training tasks; report what was dropped."""
    tasks = validate_tasks(rows)
    refs = {str(r.get("task_id", f"task {i}")): reference_code(r) for i, r in enumerate(rows)}
    if len({t.task_id for t in tasks}) != len(tasks):
        raise ValueError("training tasks: task_id values must be unique")
    report: dict[str, Any] = {"rows": len(tasks)}
    if settings.decontaminate:
        check: dict[str, Any] = {}
        tasks, dropped = decontaminate(tasks, evaluation_texts(data_dir, eval_extra), stats=check)
        report["contaminated"] = dropped
        report["decontamination"] = check
    if settings.check_references:
        tasks, dropped = check_references(reward, tasks, [refs.get(t.task_id) for t in tasks])
        report["reference_failed"] = dropped
    if settings.max_tasks:
        tasks = tasks[: settings.max_tasks]
    if not tasks:
        raise ValueError(f"no training tasks left after the checks: {report}")
    report["used"] = len(tasks)
    return tasks, report


# --------------------------------------------------------------------------- training
INSTRUCT_CODE = (
    "Complete the following Python function. Reply with the whole function in one "
    "```python code block.\n\n```python\n{prompt}\n```"
)
INSTRUCT_STATEMENT = "{prompt}\nWrite the Python code in one ```python code block."


def instruct_messages(task: RewardTask) -> list[dict[str, str]]:
    """The chat message of the instruct protocol (the wording of bench's HumanEval/MBPP)."""
    template = INSTRUCT_CODE if task.code_prompt else INSTRUCT_STATEMENT
    text = task.prompt.strip()
    if not task.code_prompt and text.endswith("[BEGIN]"):
        text = text[: -len("[BEGIN]")].rstrip()
    return [{"role": "user", "content": template.format(prompt=text)}]


def _dataset(tasks: Sequence[RewardTask], protocol: str = "base") -> Any:
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": t.prompt if protocol == "base" else instruct_messages(t),
                "task_prompt": t.prompt,
                "task_id": t.task_id,
                "tests": t.tests,
                "entry_point": t.entry_point,
                "setup": t.setup,
            }
            for t in tasks
        ]
    )


def check_context(
    tasks: Sequence[RewardTask], tokenizer: Any, model: Any, budget: int, protocol: str = "base"
) -> None:
    """Every prompt (as the model sees it) + `budget` completion tokens must fit the model's
    positions (one error naming the longest)."""
    from codebench.models import apply_chat, model_context

    ctx = model_context(model, tokenizer, cap=1 << 30)

    def shown(t: RewardTask) -> str:
        return t.prompt if protocol == "base" else apply_chat(tokenizer, instruct_messages(t))

    long = [
        (t.task_id, n) for t in tasks if (n := len(tokenizer(shown(t))["input_ids"])) + budget > ctx
    ]
    if long:
        raise ValueError(
            f"{len(long)} training prompts do not fit the model's {ctx} positions with "
            f"max_completion_length={budget} (e.g. {long[:3]} as (task, prompt tokens)); "
            "shorten the prompts, lower grpo.max_completion_length or set grpo.max_tasks"
        )


def _dtype(settings: GRPOSettings, device: str) -> torch.dtype:
    """The training dtype (`models.resolve_dtype`: bf16 only on a GPU that supports it; fp32
    on CPU, which has no fast bf16 here)."""
    if not str(device).startswith("cuda"):
        return torch.float32
    named = {"auto": "auto", "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
    return resolve_dtype(named[settings.precision], device)


def grpo_config(settings: GRPOSettings, out_dir: Path, device: str, seed: int) -> Any:
    """trl GRPOConfig for the settings (constant lr, no reporting, no checkpoints)."""
    from trl import GRPOConfig

    bf16 = _dtype(settings, device) == torch.bfloat16
    kwargs: dict[str, Any] = {}
    if settings.use_vllm:
        kwargs.update(use_vllm=True, vllm_mode=settings.vllm_mode)
        if settings.vllm_mode == "colocate":
            kwargs["vllm_gpu_memory_utilization"] = settings.vllm_gpu_memory_utilization
    return GRPOConfig(
        output_dir=str(out_dir),
        max_steps=settings.steps,
        per_device_train_batch_size=settings.prompts_per_step * settings.num_generations,
        gradient_accumulation_steps=1,
        num_generations=settings.num_generations,
        max_completion_length=settings.max_completion_length,
        temperature=settings.temperature,
        top_p=settings.top_p,
        learning_rate=settings.lr,
        lr_scheduler_type="constant",
        beta=settings.beta,
        num_iterations=settings.num_iterations,
        logging_steps=settings.logging_steps,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=seed,
        data_seed=seed,
        use_cpu=device != "cuda",
        bf16=bf16,
        log_completions=False,
        remove_unused_columns=False,
        activation_checkpointing=settings.gradient_checkpointing,  # transformers 5 name
        **kwargs,
    )


def grpo_finetune(
    run: RunLayout,
    settings: GRPOSettings,
    *,
    tasks: Sequence[Mapping[str, Any]] | None = None,
    seed: int = 0,
    device: str = "auto",
    data_dir: str | Path | None = None,
    eval_extra: Mapping[str, Iterable[str]] | None = None,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Train a GRPO variant of `settings.base` on `tasks` (rows; default `settings.tasks`).

    Writes models/<variant>-lora, models/<variant> (when merge), results/<variant>.json and
    results/<variant>_rewards.jsonl; returns the results dict.
    """
    from trl import GRPOTrainer

    from codebench.params import resolve_device, seed_everything
    from codebench.quiet import quiet_peft
    from codebench.train import _models
    from codebench.train.lora import lora_config
    from codebench.train.trainer import resolve_base

    seed_everything(seed)
    device = resolve_device(device)
    if settings.use_vllm and device != "cuda":
        raise ValueError("grpo.use_vllm needs a CUDA GPU (vLLM); set use_vllm: false on CPU")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    base_path = resolve_base(settings.base, run)
    rows = (
        list(tasks)
        if tasks is not None
        else load_task_rows(
            settings.tasks, data_dir, count=settings.max_tasks, seed=settings.task_seed
        )
    )
    run.results.mkdir(parents=True, exist_ok=True)
    log_path = run.results / f"{settings.variant}_rewards.jsonl"
    if log_path.exists():
        log_path.unlink()  # a new run: the log describes this run only
    penalty = settings.malformed_reward
    reward = SandboxReward(
        mode=settings.reward,
        log_path=log_path,
        workers=settings.reward_workers,
        timeout=settings.reward_timeout,
        rewards={"malformed": penalty, "timeout": penalty, "crash": penalty},
    )
    try:
        t0 = time.perf_counter()
        train_tasks, task_report = prepare_tasks(rows, reward, settings, data_dir, eval_extra)
        check_seconds = time.perf_counter() - t0
        tokenizer = _models.load_tokenizer(base_path)
        dtype = _dtype(settings, device)
        model = _models.load_causal_lm(base_path, dtype=dtype)
        _models.align(model, tokenizer)
        if settings.protocol == "instruct":
            from codebench.models import has_chat_template

            if not has_chat_template(tokenizer):
                raise ValueError(
                    f"grpo.protocol: instruct needs a chat template, and {base_path} has none; "
                    "use protocol: base"
                )
        check_context(
            train_tasks, tokenizer, model, settings.max_completion_length, settings.protocol
        )
        if device == "cuda":
            model.to("cuda")
        out_dir = Path(run.root) / "checkpoints" / f"grpo-{settings.variant}"
        args = grpo_config(settings, out_dir, device, seed)
        with quiet_peft():  # trl wraps the model with peft here
            trainer = GRPOTrainer(
                model=model,
                reward_funcs=[reward],
                args=args,
                train_dataset=_dataset(train_tasks, settings.protocol),
                processing_class=tokenizer,
                peft_config=lora_config(
                    settings.lora_r,
                    settings.lora_alpha,
                    settings.lora_dropout,
                    settings.target_modules,
                ),
                callbacks=list(callbacks),
            )
        t1, c1 = time.perf_counter(), time.process_time()
        with quiet_peft():  # trl unwraps the peft model for every generation
            out = trainer.train()
        seconds, cpu_seconds = time.perf_counter() - t1, time.process_time() - c1
        curve = reward.history()
        artifacts = save_grpo_outputs(trainer, run, settings, base_path, tokenizer)
        result = {
            "variant": settings.variant,
            "method": "grpo",
            "device": device,
            "dtype": str(dtype).replace("torch.", ""),
            "base_path": base_path,
            "settings": settings.model_dump(mode="json"),
            "tasks": task_report,
            "task_ids": [t.task_id for t in train_tasks],
            "curve": curve,
            "train": {
                "steps": trainer.state.global_step,
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu_seconds, 2),
                "task_check_seconds": round(check_seconds, 2),
                "train_loss": out.training_loss,
                "completions": sum(c["completions"] for c in curve),
            },
            "sandbox": {"isolation": reward.sandbox.isolation, "workers": reward.sandbox.size},
            "log_history": trainer.state.log_history,
            "rewards_log": str(log_path),
            "artifacts": artifacts,
            "provenance": provenance(seed),
        }
        result = results.write(run.result_file(settings.variant), results.GRPOResults, result)
        return result
    finally:
        reward.close()


def save_grpo_outputs(
    trainer: Any, run: RunLayout, settings: GRPOSettings, base_path: str, tokenizer: Any
) -> dict[str, str]:
    """models/<variant>-lora (adapter) and models/<variant> (merged), with variant records."""
    from codebench.train.merge import _fresh_dir, _parent_name, merge_adapter

    parent = _parent_name(settings.base, run) or base_path
    common = {
        "base_model": base_path,
        "method": "grpo",
        "template": "none",
        "reward": settings.reward,
    }
    adapter = run.model_dir(f"{settings.variant}-lora")
    _fresh_dir(adapter, "grpo adapter")
    trainer.save_model(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    write_variant_info(adapter, kind="lora", parent=parent, loader="peft", **common)
    out = {"adapter": str(adapter)}
    if settings.merge:
        merged = run.model_dir(settings.variant)
        _fresh_dir(merged, "grpo")
        merge_adapter(base_path, adapter, merged, tokenizer=tokenizer)
        write_variant_info(
            merged, kind="finetuned", parent=parent, loader="hf", adapter=adapter.name, **common
        )
        out["merged"] = str(merged)
    return out


# --------------------------------------------------------------------------- figures
def plot_curve(curve: Sequence[Mapping[str, Any]], path: str | Path | None = None) -> Any:
    """Mean reward and pass rate per step (`codebench.plots.grpo.reward_curve`); saved when
    `path` is given."""
    from codebench.plots import grpo as gplots

    fig = gplots.reward_curve(curve)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


# --------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    """`python -m codebench.train.grpo --run-dir runs/NAME [--config grpo.json] [--set k=v ...]`."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="codebench.train.grpo", description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", required=True, help="the run folder (models/<base> must exist)")
    ap.add_argument("--config", help="JSON file of GRPOSettings fields")
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="one setting (JSON value)"
    )
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    fields: dict[str, Any] = {}
    if args.config:
        fields.update(json.loads(Path(args.config).read_text(encoding="utf-8")))
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set {item!r}: expected KEY=VALUE")
        try:
            fields[key] = json.loads(value)
        except json.JSONDecodeError:
            fields[key] = value
    try:
        settings = GRPOSettings(**fields)
    except ValueError as e:
        ap.error(f"invalid GRPO settings: {e}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run_dir = Path(args.run_dir)
    run = RunLayout(run_dir, run_dir.parent.parent / "figures" / run_dir.name)
    data_dir = args.data_dir
    if data_dir is None:
        from codebench.paths import DataDirError
        from codebench.paths import data_dir as find

        try:
            data_dir = str(find())
        except DataDirError:
            data_dir = None
    result = grpo_finetune(run, settings, seed=args.seed, device=args.device, data_dir=data_dir)
    print(json.dumps({"train": result["train"], "tasks_used": result["tasks"]["used"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
