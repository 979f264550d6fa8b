"""Stage orchestration of the CodeI/O build, resumable per stage.

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
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from codebench.codeio import (
    assemble,
    decontam,
    execute,
    iogen,
    predict,
    prompts,
    revise,
    transform,
    verify,
)
from codebench.codeio.records import stable_fraction
from codebench.codeio.sources import iter_source
from codebench.records import JsonlStore, read_jsonl, write_json, write_jsonl

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


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        mininterval=5.0,
        file=sys.stdout,
        disable=total == 0,
        dynamic_ncols=False,
        ncols=90,
    )


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
def unify(
    cfg: Any,
    data_dir: Path | None,
    out: Path,
    backend: Any = None,
    gen_cfg: Any = None,
    log=_log_default,
) -> tuple[list[dict], list[dict], dict]:
    """unified records, rejected records, counts (raw items read per source, by kind)."""
    unified: dict[str, dict] = {}
    rejected: list[dict] = []
    counts: Counter = Counter()
    model_queue: list[tuple[Any, dict]] = []
    routes = set(cfg.transform.split("+"))
    for spec in cfg.sources:
        for n, item in enumerate(iter_source(spec, data_dir)):
            if n >= cfg.limit:
                break
            counts["raw"] += 1
            origin = {
                "source": item.source,
                "key": item.key,
                **(item.payload.get("meta", {}) if item.kind == "raw" else {}),
            }
            try:
                if item.kind == "malformed":
                    raise transform.Reject("malformed-record", item.error or "")
                if item.kind == "unified":
                    recs = [transform.unify_unified(item.payload, origin)]
                elif "annotations" in routes:
                    try:
                        recs = transform.unify_annotated(
                            item.payload["content"], origin, cfg.max_functions_per_file
                        )
                    except transform.Reject:
                        if "model" not in routes:
                            raise
                        model_queue.append((item, origin))
                        continue
                else:
                    model_queue.append((item, origin))
                    continue
            except transform.Reject as e:
                rejected.append(
                    {
                        "stage": "unify",
                        "key": item.key,
                        "source": item.source,
                        "reason": e.reason,
                        "detail": e.detail,
                    }
                )
                continue
            _add(unified, recs, rejected)
    if model_queue:
        _add(unified, _model_transform(model_queue, out, backend, gen_cfg, rejected, log), rejected)
    return list(unified.values()), rejected, dict(counts)


def _add(unified: dict[str, dict], recs: list[dict], rejected: list[dict]) -> None:
    for r in recs:
        if r["fid"] in unified:
            rejected.append(
                {
                    "stage": "unify",
                    "key": r["origin"].get("key"),
                    "source": r["origin"].get("source"),
                    "reason": "duplicate",
                    "detail": f"same code as {r['fid']}",
                }
            )
        else:
            unified[r["fid"]] = r


def _model_transform(
    queue: list, out: Path, backend: Any, gen_cfg: Any, rejected: list[dict], log
) -> list[dict]:
    if backend is None:
        for item, _ in queue:
            rejected.append(
                {
                    "stage": "unify",
                    "key": item.key,
                    "source": item.source,
                    "reason": "no-backend",
                    "detail": "transform needs a generation backend",
                }
            )
        return []
    items = [
        {
            "id": item.key,
            "fid": "",
            "idx": 0,
            "direction": "transform",
            "messages": [
                {"role": "user", "content": transform.transform_prompt(item.payload["content"])}
            ],
        }
        for item, _ in queue
    ]
    with JsonlStore(out / "transform.jsonl", "id") as store:
        bar = _progress(sum(not store.has((i["id"],)) for i in items), "transform")
        predict.predict(items, backend, gen_cfg, store, turn=0, progress=bar.update)
        bar.close()
        answers = {r["id"]: r for r in store}
    recs = []
    for item, origin in queue:
        a = answers[item.key]
        try:
            recs.append(transform.parse_transform(a["text"], origin, a["finish_reason"]))
        except transform.Reject as e:
            rejected.append(
                {
                    "stage": "unify",
                    "key": item.key,
                    "source": item.source,
                    "reason": f"model-{e.reason}",
                    "detail": e.detail,
                }
            )
    return recs


# --------------------------------------------------------------------------- iogen
def run_iogen(
    unified: list[dict], cfg: iogen.IOConfig, out: Path, executor: Any, check_executor: Any = None
) -> list[dict]:
    """ios.jsonl records for `unified` (resumable: functions already in the file are skipped)."""
    with JsonlStore(out / "ios.jsonl", "fid") as store:
        todo = [u for u in unified if not store.has((u["fid"],))]
        bar = _progress(len(todo), "I/O generation")

        def save(part: list[dict]) -> None:
            store.extend(part)
            bar.update(len(part))

        iogen.generate_all(todo, cfg, executor, check_executor, on_chunk=save)
        bar.close()
        by_fid = {r["fid"]: r for r in store}
    return [by_fid[u["fid"]] for u in unified if u["fid"] in by_fid]


# --------------------------------------------------------------------------- prompts
def split_of(fid: str, heldout_fraction: float, seed: int) -> str:
    return "heldout" if stable_fraction(fid, f"heldout-{seed}") < heldout_fraction else "train"


def build_prompts(unified: list[dict], ios: list[dict], cfg: Any, seed: int) -> list[dict]:
    by_fid = {u["fid"]: u for u in unified}
    out = []
    for rec in ios:
        if rec["kept"]:
            u = by_fid[rec["fid"]]
            out += prompts.prompt_records(
                u,
                rec["pairs"],
                list(cfg.directions),
                split_of(u["fid"], cfg.heldout_fraction, seed),
                include_code=cfg.include_code,
                max_code_chars=cfg.max_code_chars,
            )
    return out


def heldout_records(
    prompt_recs: list[dict], unified: list[dict], vcfg: verify.VerifyConfig
) -> list[dict]:
    """The I/O-prediction benchmark records (format in docs/codeio.md)."""
    by_fid = {u["fid"]: u for u in unified}
    out = []
    for p in prompt_recs:
        if p["split"] != "heldout":
            continue
        u = by_fid[p["fid"]]
        out.append(
            {
                "id": p["id"],
                "fid": p["fid"],
                "idx": p["idx"],
                "direction": p["direction"],
                "prompt": p["messages"][-1]["content"],
                "messages": p["messages"],
                "answer_key": p["direction"],
                "expected": p[p["direction"]],
                "input": p["input"],
                "output": p["output"],
                "refcode": u["refcode"],
                "funcname": u["funcname"],
                "program": execute.program(u),
                "verify": {
                    "rel_tol": vcfg.rel_tol,
                    "abs_tol": vcfg.abs_tol,
                    "call_timeout": vcfg.call_timeout,
                    "max_input_chars": vcfg.max_input_chars,
                },
            }
        )
    return out


# --------------------------------------------------------------------------- predict / verify
def run_predict(
    items: list[dict],
    path: Path,
    backend: Any,
    gen_cfg: Any,
    batch_size: int,
    turn: int,
    desc: str,
    extra: Callable[[dict], dict] | None = None,
) -> dict[str, dict]:
    with JsonlStore(path, "id") as store:
        todo = sum(not store.has((i["id"],)) for i in items)
        bar = _progress(todo, desc)
        if extra is None:
            predict.predict(
                items,
                backend,
                gen_cfg,
                store,
                turn=turn,
                batch_size=batch_size,
                progress=bar.update,
            )
        else:  # revisions: keep the feedback next to the answer
            wrapped = _ExtraStore(store, extra)
            predict.predict(
                items,
                backend,
                gen_cfg,
                wrapped,
                turn=turn,
                batch_size=batch_size,
                progress=bar.update,
            )
        bar.close()
        return {r["id"]: r for r in store}


class _ExtraStore:
    """A JsonlStore view that adds fields to every appended record."""

    def __init__(self, store: JsonlStore, extra: Callable[[dict], dict]) -> None:
        self.store, self.extra = store, extra

    def has(self, key: Any) -> bool:
        return self.store.has(key)

    def key_of(self, record: dict) -> Any:
        return self.store.key_of(record)

    def extend(self, records) -> None:
        self.store.extend({**r, **self.extra(r)} for r in records)


def run_verify(
    pairs: list[tuple[dict, dict]],
    path: Path,
    unified_by_fid: dict,
    executor: Any,
    vcfg: verify.VerifyConfig,
    desc: str,
    chunk: int = 64,
) -> dict[str, dict]:
    with JsonlStore(path, "id") as store:
        todo = [(p, q) for p, q in pairs if not store.has((p["id"],))]
        bar = _progress(len(todo), desc)
        for s in range(0, len(todo), chunk):
            part = todo[s : s + chunk]
            store.extend(verify.verify_batch(part, unified_by_fid, executor, vcfg))
            bar.update(len(part))
        bar.close()
        return {r["id"]: r for r in store}


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
        write_json(result_file, summary)
    return summary


def default_gen_config(cfg: Any, seed: int) -> Any:
    from codebench.generate import GenerationConfig

    return GenerationConfig(
        max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=seed
    )


def make_sandbox(cfg: Any, half: bool = False) -> Any:
    """A Sandbox sized from cfg (`half`: the determinism run's pool, half the workers)."""
    from codebench.sandbox import Sandbox

    workers = cfg.workers or (os.cpu_count() or 1)
    if half:
        workers = max(1, workers // 2)
    return Sandbox(workers=workers, timeout=cfg.call_timeout, memory_mb=cfg.memory_mb)


def _stages(cfg, out: Path, ddir, seed, backend, gen_cfg, executor, check_executor, log) -> dict:
    unified, rejected, raw_counts = unify(cfg, ddir, out, backend, gen_cfg, log)
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

    ios = run_iogen(kept, io_config(cfg, seed), out, executor, check_executor)
    with_io = [r for r in ios if r["kept"]]
    log(
        f"[data] {len(with_io)} functions with checked I/O ({sum(len(r['pairs']) for r in with_io)} pairs)"
    )

    vcfg = verify_config(cfg)
    prompt_recs = build_prompts(kept, ios, cfg, seed)
    write_jsonl(out / "prompts.jsonl", prompt_recs)
    held = heldout_records(prompt_recs, kept, vcfg)
    write_jsonl(out / "heldout.jsonl", held)
    train = [p for p in prompt_recs if p["split"] == "train"]
    if cfg.max_predictions is not None:
        train = train[: cfg.max_predictions]
    summary = _summary_base(cfg, raw_counts, unified, kept, rejected, ios, prompt_recs, held, dc)
    if backend is None:
        log("[data] no prediction backend: stopping after the prompts")
        return summary

    by_fid = {u["fid"]: u for u in kept}
    first = run_predict(
        train, out / "predictions.jsonl", backend, gen_cfg, cfg.batch_size, 1, "predict (turn 1)"
    )
    v1 = run_verify(
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
        second = run_predict(
            items,
            out / "revisions.jsonl",
            backend,
            gen_cfg,
            cfg.batch_size,
            2,
            "revise (turn 2)",
            extra=lambda r: {"feedback": fb[r["id"]]},
        )
        v2 = run_verify(
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
    write_jsonl(out / "sft.jsonl", sft)
    write_jsonl(out / "sft_plain.jsonl", plain)
    more = _summary_predictions(train, first, v1, v2, sft, plain, acounts)
    summary["funnel"].update(more.pop("funnel_predictions"))
    summary["counts"].update(more.pop("counts_predictions"))
    summary.update(more)
    return summary


def _maybe_data(ddir):
    from codebench.paths import DataDirError, data_dir

    try:
        return data_dir(ddir)
    except DataDirError:
        return None


def _summary_base(cfg, raw_counts, unified, kept, rejected, ios, prompt_recs, held, dc) -> dict:
    io_reasons = Counter(r["reason"] for r in ios if not r["kept"])
    unify_reasons = Counter(r["reason"] for r in rejected if r["stage"] == "unify")
    repro = Counter()
    for r in ios:
        for k, v in (r.get("reproduced") or {}).items():
            repro[k] += v
        if r.get("reproduced"):
            repro["functions"] += 1
            repro["functions_all_exact"] += r["reproduced"]["exact"] == r["reproduced"]["stored"]
    train_prompts = sum(p["split"] == "train" for p in prompt_recs)
    return {
        "funnel": {
            "raw": raw_counts.get("raw", 0),
            "unified": len(unified),
            "decontaminated": len(kept),
            "with_io": sum(r["kept"] for r in ios),
            "prompts": train_prompts,
        },
        "counts": {
            "pairs": sum(len(r["pairs"]) for r in ios),
            "heldout_functions": len({h["fid"] for h in held}),
            "heldout_prompts": len(held),
        },
        "drop_reasons": {
            "unify": dict(unify_reasons),
            "decontam": {"contaminated": sum(r["stage"] == "decontam" for r in rejected)},
            "io": dict(io_reasons),
        },
        "reproduction": dict(repro),
        "decontam_missing": dc.missing,
        "params": {
            "directions": list(cfg.directions),
            "max_pairs": cfg.max_pairs,
            "sources": list(cfg.sources),
            "limit": cfg.limit,
        },
    }


def _summary_predictions(train, first, v1, v2, sft, plain, acounts) -> dict:
    statuses: dict[str, dict[str, dict[str, int]]] = {"turn1": {}, "turn2": {}, "final": {}}
    for p in train:
        d = p["direction"]
        s1 = v1[p["id"]]["status"]
        statuses["turn1"].setdefault(d, Counter())[s1] += 1
        s2 = v2.get(p["id"], {}).get("status")
        if s2:
            statuses["turn2"].setdefault(d, Counter())[s2] += 1
        statuses["final"].setdefault(d, Counter())[
            "success" if s1 == "success" or s2 == "success" else "failed"
        ] += 1
    truncated = sum(bool(r.get("truncated")) for r in first.values())
    return {
        "funnel_predictions": {
            "predicted": len(train),
            "verified_turn1": sum(v1[p["id"]]["status"] == "success" for p in train),
            "fixed_turn2": sum(v["status"] == "success" for v in v2.values()),
            "sft": len(sft),
        },
        "counts_predictions": {"revised": len(v2), "sft_plain": len(plain)},
        "statuses": {t: {d: dict(c) for d, c in by.items()} for t, by in statuses.items()},
        "truncated_turn1": truncated,
        "assembly": acounts,
    }


def load_jsonl(path: str | os.PathLike) -> list[dict]:
    """All records of a stage file ([] when it does not exist)."""
    p = Path(path)
    return list(read_jsonl(p)) if p.exists() else []


def prediction_backend(cfg: Any, run: Any, device: str = "cpu") -> tuple[Any, str | None]:
    """The prediction backend the parameters ask for, and an id naming its model.

    backend 'none' -> (None, None). 'hf': `cfg.model` is a variant of `run` ('base' is the run's
    base model from 00_base_model), a local path or a hub id, loaded with `codebench.models.load`
    and wrapped in `codebench.generate.make_backend('hf', ...)`. Other kinds ('openai', 'vllm')
    get `cfg.model` and `cfg.backend_options` as they are.
    """
    if cfg.backend == "none":
        return None, None
    from codebench import generate, models

    if cfg.backend != "hf":
        return generate.make_backend(
            cfg.backend, cfg.model, **cfg.backend_options
        ), f"{cfg.backend}:{cfg.model}"
    spec = cfg.model
    folder = Path(run.model_dir(spec)) if "/" not in spec else None
    target = str(folder) if folder is not None and folder.is_dir() else spec
    model, tok = models.load(target, device, run=run)
    options = {"batch_size": cfg.batch_size, **cfg.backend_options}
    return generate.make_backend(
        "hf", model, tokenizer=tok, **options
    ), f"hf:{models.resolve(target, run)}"
