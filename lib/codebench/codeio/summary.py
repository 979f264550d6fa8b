"""The summary of a build (results/build_data.json): funnel, drop reasons, statuses."""

from __future__ import annotations

from collections import Counter


def base(cfg, raw_counts, unified, kept, rejected, ios, prompt_recs, held, dc) -> dict:
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


def predictions(train, first, v1, v2, sft, plain, acounts) -> dict:
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
