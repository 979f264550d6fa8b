"""The stage runners of `pipeline.build`: unify, I/O generation, prompts, prediction, verification.

Each expensive runner appends to a `JsonlStore` keyed by stable ids and skips what is done.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codebench.codeio import execute, iogen, predict, prompts, transform, verify
from codebench.codeio.records import stable_fraction
from codebench.codeio.sources import iter_source
from codebench.records import JsonlStore


def _log_default(msg: str) -> None:
    print(msg, flush=True)


def progress_bar(total: int, desc: str):
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
        bar = progress_bar(sum(not store.has((i["id"],)) for i in items), "transform")
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


def run_iogen(
    unified: list[dict], cfg: iogen.IOConfig, out: Path, executor: Any, check_executor: Any = None
) -> list[dict]:
    """ios.jsonl records for `unified` (resumable: functions already in the file are skipped)."""
    with JsonlStore(out / "ios.jsonl", "fid") as store:
        # a stored sandbox error is our failure, not the function's: run it again
        todo = [u for u in unified if not _final(store, (u["fid"],), "reason")]
        bar = progress_bar(len(todo), "I/O generation")

        def save(part: list[dict]) -> None:
            _store(store, part)
            bar.update(len(part))

        iogen.generate_all(todo, cfg, executor, check_executor, on_chunk=save)
        bar.close()
        by_fid = {r["fid"]: r for r in store}
    return [by_fid[u["fid"]] for u in unified if u["fid"] in by_fid]


def _final(store: JsonlStore, key: tuple, field: str) -> bool:
    """Whether `key` is stored with a final result (a sandbox error is not final)."""
    rec = store.records.get(key)
    return rec is not None and rec.get(field) != "sandbox-error"


def _store(store: JsonlStore, part: list[dict]) -> None:
    """Append new records; replace stored ones (reruns of sandbox errors)."""
    redo = [r for r in part if store.has(store.key_of(r))]
    store.extend(r for r in part if not store.has(store.key_of(r)))
    store.replace(redo)


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
        bar = progress_bar(todo, desc)
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
        todo = [(p, q) for p, q in pairs if not _final(store, (p["id"],), "status")]
        bar = progress_bar(len(todo), desc)
        for s in range(0, len(todo), chunk):
            part = todo[s : s + chunk]
            _store(store, verify.verify_batch(part, unified_by_fid, executor, vcfg))
            bar.update(len(part))
        bar.close()
        return {r["id"]: r for r in store}
