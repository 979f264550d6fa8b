"""Stage orchestration of the CodeI/O build, resumable per stage (runners in `stages`).

`build(cfg, out_dir, ...)` runs, in order (files under `out_dir`, normally `run.data`):

  unify      sources -> unified.jsonl (+ rejected.jsonl: every record that did not make it,
             with stage, key, reason, detail); the model route caches answers in transform.jsonl
  decontam   n-gram overlap with evaluation sets -> rejected.jsonl (reason contaminated)
  iogen      sandboxed I/O generation -> ios.jsonl (kept and dropped functions, with reasons)
  prompts    prompts.jsonl (train and held-out), heldout.jsonl (the I/O-prediction benchmark)
  predict    turn 1 -> predictions.jsonl           verify -> verified.jsonl
  revise     turn 2 -> revisions.jsonl             verify -> revisions_verified.jsonl
  assemble   sft.jsonl (CodeI/O++), sft_plain.jsonl (CodeI/O)

Expensive stages (iogen, predict, verify, revise, model transform) append to JsonlStores keyed
by stable ids and skip what is done: after kill -9 a rerun continues with no loss and no
duplicates. Cheap, deterministic stages rewrite their files atomically. `build_config.json`
records the parameters; when they change, stage files from the old parameters are removed
first (they would otherwise be reused under the same ids). Returns the summary written to
`result_file` (funnel counts, drop reasons, statuses by direction and turn).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from codebench import results
from codebench.codeio import assemble, decontam, families, iogen, revise, stages, verify
from codebench.codeio import summary as summaries
from codebench.codeio.records import stable_fraction
from codebench.records import read_jsonl, write_json, write_jsonl

STAGE_FILES = (
    "transform.jsonl",
    "unified.jsonl",
    "rejected.jsonl",
    "ios.jsonl",
    "prompts.jsonl",
    "heldout.jsonl",
    "predictions.jsonl",
    "verified.jsonl",
    "revisions.jsonl",
    "revisions_verified.jsonl",
    "sft.jsonl",
    "sft_plain.jsonl",
)
CONFIG_FILE = "build_config.json"


def _log_default(msg: str) -> None:
    print(msg, flush=True)


def io_config(cfg: Any, seed: int) -> iogen.IOConfig:
    return iogen.IOConfig(
        max_pairs=cfg.max_pairs,
        min_pairs=cfg.min_pairs,
        call_budget=cfg.call_budget,
        max_input_chars=cfg.max_input_chars,
        max_output_chars=cfg.max_output_chars,
        call_timeout=cfg.call_timeout,
        check_determinism=cfg.check_determinism,
        drop_mutating=cfg.drop_mutating,
        seed=seed,
    )


def verify_config(cfg: Any) -> verify.VerifyConfig:
    return verify.VerifyConfig(call_timeout=cfg.call_timeout, max_input_chars=cfg.max_input_chars)


def _reset_if_changed(out: Path, fingerprint: dict, log: Callable[[str], None]) -> None:
    f = out / CONFIG_FILE
    if f.is_file():
        try:
            old = json.loads(f.read_text())
        except ValueError:
            old = None
        if old == fingerprint:
            return
        stale = [n for n in STAGE_FILES if (out / n).exists()]
        if stale:
            log(f"[data] parameters changed since the last build: removing {', '.join(stale)}")
        for n in stale:
            (out / n).unlink()
    write_json(f, fingerprint)


# --------------------------------------------------------------------------- unify


# --------------------------------------------------------------------------- iogen


# --------------------------------------------------------------------------- prompts


# --------------------------------------------------------------------------- predict / verify


# --------------------------------------------------------------------------- build
def build(
    cfg: Any,
    out_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    backend: Any = None,
    gen_cfg: Any = None,
    executor: Any = None,
    check_executor: Any = None,
    result_file: str | os.PathLike | None = None,
    model_id: str | None = None,
    log: Callable[[str], None] = _log_default,
) -> dict:
    """Run every stage (module doc) and return the summary.

    cfg            a `codebench.params.DataSection`.
    out_dir        where the JSONL files go (the run's data folder).
    backend        a `codebench.generate` Backend for prediction (and the model transform);
                   None (or cfg.backend == 'none') stops after the prompts.
    gen_cfg        its GenerationConfig (default: greedy, cfg.max_new_tokens).
    executor       sandbox for runs (default: a `codebench.sandbox.Sandbox` built from cfg);
    check_executor second sandbox for the determinism run (default: another Sandbox).
    result_file    where the summary JSON is written (e.g. run.result_file('build_data')).
    model_id       names the prediction model in the parameter fingerprint.
    """
    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ddir = Path(data_dir) if data_dir else None
    if cfg.backend == "none":
        backend = None
    fingerprint = {
        "data": cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else dict(vars(cfg)),
        "seed": seed,
        "model": model_id,
    }
    _reset_if_changed(out, fingerprint, log)
    if backend is not None and gen_cfg is None:
        gen_cfg = default_gen_config(cfg, seed)
    with ExitStack() as stack:
        if executor is None:
            executor = stack.enter_context(make_sandbox(cfg))
        if check_executor is None and cfg.check_determinism:
            check_executor = stack.enter_context(make_sandbox(cfg, half=True))
        summary = _stages(cfg, out, ddir, seed, backend, gen_cfg, executor, check_executor, log)
    summary["seconds"] = round(time.time() - t0, 1)
    if result_file is not None:
        summary = results.write(result_file, results.BuildDataResults, summary)
    return summary


def default_gen_config(cfg: Any, seed: int) -> Any:
    from codebench.generate import GenerationConfig

    return GenerationConfig(
        max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=seed
    )


def make_sandbox(cfg: Any, half: bool = False) -> Any:
    """The sandbox executor sized from cfg (`half`: the determinism run's, half the workers)."""
    from codebench.codeio.execute import SandboxExecutor

    workers = cfg.workers or (os.cpu_count() or 1)
    if half:
        workers = max(1, workers // 2)
    return SandboxExecutor(workers=workers, timeout=cfg.call_timeout, memory_mb=cfg.memory_mb)


def _stages(cfg, out: Path, ddir, seed, backend, gen_cfg, executor, check_executor, log) -> dict:
    """unify -> decontaminate -> I/O generation -> prompts (+ the model stages when a backend is given)."""
    unified, rejected, raw_counts = stages.unify(cfg, ddir, out, backend, gen_cfg, log)
    dc = decontam.Decontaminator.build(
        cfg.decontam_sets, _maybe_data(ddir), cfg.decontam_n, cfg.decontam_threshold
    )
    kept = []
    for u in unified:
        bad, share, where = dc.is_contaminated(decontam.function_text(u))
        if bad:
            rejected.append(
                {
                    "stage": "decontam",
                    "key": u["fid"],
                    "source": u["origin"].get("source"),
                    "reason": "contaminated",
                    "detail": f"{share:.3f} of {cfg.decontam_n}-grams in {where}",
                }
            )
        else:
            kept.append(u)
    write_jsonl(out / "unified.jsonl", unified)
    write_jsonl(out / "rejected.jsonl", rejected)
    log(
        f"[data] {raw_counts.get('raw', 0)} source records -> {len(unified)} unified functions -> {len(kept)} after decontamination"
    )

    ios = stages.run_iogen(kept, io_config(cfg, seed), out, executor, check_executor)
    with_io = [r for r in ios if r["kept"]]
    log(
        f"[data] {len(with_io)} functions with checked I/O ({sum(len(r['pairs']) for r in with_io)} pairs)"
    )

    vcfg = verify_config(cfg)
    prompt_recs = stages.build_prompts(kept, ios, cfg, seed)
    write_jsonl(out / "prompts.jsonl", prompt_recs)
    held = stages.heldout_records(prompt_recs, kept, vcfg)
    write_jsonl(out / "heldout.jsonl", held)
    train = [p for p in prompt_recs if p["split"] == "train"]
    if cfg.max_predictions is not None and len(train) > cfg.max_predictions:
        # a seeded sample spread over all functions, not the first functions' prompts
        ranked = sorted(train, key=lambda p: stable_fraction(p["id"], f"predict-{seed}"))
        chosen = {p["id"] for p in ranked[: cfg.max_predictions]}
        train = [p for p in train if p["id"] in chosen]
    summary = summaries.base(cfg, raw_counts, unified, kept, rejected, ios, prompt_recs, held, dc)
    if backend is None:
        log("[data] no prediction backend: stopping after the prompts")
        return summary
    summary_more = _model_stages(cfg, out, train, kept, backend, gen_cfg, executor, vcfg, seed)
    summary["funnel"].update(summary_more.pop("funnel_predictions"))
    summary["counts"].update(summary_more.pop("counts_predictions"))
    summary.update(summary_more)
    return summary


def _model_stages(
    cfg, out: Path, train: list[dict], kept: list[dict], backend, gen_cfg, executor, vcfg, seed
) -> dict:
    """predict -> verify -> revise -> verify -> assemble; returns the prediction summary."""
    by_fid = {u["fid"]: u for u in kept}
    first = stages.run_predict(
        train, out / "predictions.jsonl", backend, gen_cfg, cfg.batch_size, 1, "predict (turn 1)"
    )
    v1 = stages.run_verify(
        [(p, first[p["id"]]) for p in train],
        out / "verified.jsonl",
        by_fid,
        executor,
        vcfg,
        "verify (turn 1)",
    )
    second: dict[str, dict] = {}
    v2: dict[str, dict] = {}
    if cfg.revision:
        prompt_by_id = {p["id"]: p for p in train}
        items = revise.revision_items(
            prompt_by_id, first, [v1[p["id"]] for p in train], cfg.call_timeout
        )
        fb = {i["id"]: i["feedback"] for i in items}
        second = stages.run_predict(
            items,
            out / "revisions.jsonl",
            backend,
            gen_cfg,
            cfg.batch_size,
            2,
            "revise (turn 2)",
            extra=lambda r: {"feedback": fb[r["id"]]},
        )
        v2 = stages.run_verify(
            [(prompt_by_id[i["id"]], second[i["id"]]) for i in items],
            out / "revisions_verified.jsonl",
            by_fid,
            executor,
            vcfg,
            "verify (turn 2)",
        )
    sft, plain, acounts = assemble.assemble(
        train,
        first,
        v1,
        second,
        v2,
        gold_fallback=cfg.gold_fallback,
        revision_format=cfg.revision_format,
    )
    summary = summaries.predictions(train, first, v1, v2, sft, plain, acounts)
    n_family = getattr(cfg, "family_sft", 0)
    fam, fam_record = families.family_records(
        n_family, seed, cfg.decontam_n, cfg.decontam_threshold
    )
    if n_family:
        summary["family_sft"] = fam_record
        summary["counts_predictions"]["sft_records"] = len(sft) + len(fam)
    write_jsonl(out / "sft.jsonl", _mix(sft, fam, seed))
    write_jsonl(out / "sft_plain.jsonl", _mix(plain, fam, seed))
    return summary


def _mix(records: list[dict], extra: list[dict], seed: int) -> list[dict]:
    """CodeI/O records and family records in one seeded order (by stable id hash)."""
    if not extra:
        return records
    return sorted([*records, *extra], key=lambda r: stable_fraction(r["id"], f"sft-mix-{seed}"))


def _maybe_data(ddir):
    from codebench.paths import DataDirError, data_dir

    try:
        return data_dir(ddir)
    except DataDirError:
        return None


def load_jsonl(path: str | os.PathLike) -> list[dict]:
    """All records of a stage file ([] when it does not exist)."""
    p = Path(path)
    return list(read_jsonl(p)) if p.exists() else []
