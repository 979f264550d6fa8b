"""Stage 03_compress: build each variant of the source model (`codebench.compress.build`),
measure it and the source (`codebench.compress.measure`), write results/compress.json, draw
the figures (`codebench.plots.compress`).

`run(ctx, cfg)` is what the notebook calls. A variant this machine cannot run (nf4 on a CPU,
head pruning of a fused-qkv model, ...) is recorded as skipped with the reason; a variant that
fails for any other reason is recorded as failed and, after every other variant has been
built, measured and written, the stage raises `CompressError` naming it.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from codebench import results
from codebench.compress.build import build_variant, fingerprint
from codebench.compress.variants import (
    VariantSpec,
    VariantUnavailable,
    describe,
    parse_specs,
    unavailable_reason,
)
from codebench.params import CompressSection, StageContext

BUILDER_VERSION = 1


class CompressError(RuntimeError):
    """One or more variants failed to build or measure; the message names them."""


@dataclass
class CompressResult:
    """What stage 03 produced: results/compress.json as written (`data`, read through its
    schema), the table of the source and every variant, the saved figures (None: nothing to
    draw) and summary lines."""

    data: results.CompressResults
    table: pd.DataFrame
    figures: dict[str, Path | None]
    lines: list[str]


def run(
    ctx: StageContext, cfg: CompressSection, log: Callable[[str], None] = print
) -> CompressResult:
    """What 03_compress.ipynb runs: build and measure, then the table, figures and summary."""
    data = results.CompressResults.model_validate(build_and_measure(ctx, cfg, log))
    return CompressResult(
        data, variant_table(data), save_figures(data, ctx.figures_dir), summary_lines(data, ctx)
    )


def _row(label: str, status: str, m: results.ModelMeasure, prefill, ratios: dict) -> dict:
    return {
        "variant": label,
        "status": status,
        "MB": m.size_mb,
        "x smaller": ratios.get("size_ratio"),
        "peak RSS MB": m.peak_rss_mb,
        "prefill ms": prefill,
        "decode ms/tok": m.ms_per_token,
        "x faster": ratios.get("decode_speedup"),
        "ppl": m.perplexity,
        "ppl change %": None if ratios.get("ppl_change") is None else 100 * ratios["ppl_change"],
        "pass@1": m.pass_at_1,
    }


def variant_table(result: results.CompressResults) -> pd.DataFrame:
    """One row for the source and one per variant: size, memory, latency, perplexity, pass@1."""
    ref = result.reference
    source = {"size_ratio": 1.0, "decode_speedup": 1.0, "ppl_change": 0.0}
    rows = [_row(f"{ref.name} (source)", "ok", ref, ref.numbers().get("prefill_ms"), source)]
    for v in result.variants:
        rows.append(_row(v.spec, v.status, v, v.measure.get("prefill_ms"), v.numbers()))
    return pd.DataFrame(rows).set_index("variant")


def save_figures(result: results.CompressResults, figures_dir: Path) -> dict[str, Path | None]:
    """figures/<profile>/compress_*.png; None where there is no data to draw."""
    from codebench.plots import compress as cplots
    from codebench.plots import savefig

    figures = {
        "compress_pareto_perplexity": cplots.pareto(
            result, "perplexity", title="size vs held-out perplexity"
        ),
        "compress_pareto_pass_at_1": cplots.pareto(
            result, "pass_at_1", lower_is_better=False, title="size vs pass@1"
        ),
        "compress_latency": cplots.latency_bars(result),
        "compress_sparsity": cplots.sparsity_by_layer(result),
    }
    return {
        name: savefig(fig, figures_dir, name) if fig is not None else None
        for name, fig in figures.items()
    }


def summary_lines(result: results.CompressResults, ctx: StageContext) -> list[str]:
    """Why each variant that is not ok is not, then the source and the counts."""
    ref, variants = result.reference, result.variants
    nan = float("nan")
    lines = [f"{v.spec}: {v.status} - {v.reason or v.error}" for v in variants if v.status != "ok"]
    ok = [v for v in variants if v.status == "ok"]
    lines.append(
        f"source {result.source.name}: {ref.size_mb:.2f} MB, ppl {nan if ref.perplexity is None else ref.perplexity:.3f}, "
        f"decode {nan if ref.ms_per_token is None else ref.ms_per_token:.2f} ms/token on {result.device}"
    )
    lines.append(
        f"{len(ok)} variant(s) measured, {sum(v.status == 'skipped' for v in variants)} skipped; "
        f"results: {ctx.run.result_file('compress')}"
    )
    return lines


# --------------------------------------------------------------------------- source
def resolve_source(run, source: str) -> tuple[str, str]:
    """(name, folder-or-hub-id) of the model to compress.

    'auto': the run's fine-tuned model ('finetuned') when present, else 'base'. A variant name
    of the run, a local folder, or a hub id are taken as given.
    """
    from codebench import models

    present = run.variants()
    name = source
    if source == "auto":
        name = "finetuned" if "finetuned" in present else "base"
    if name in present or name in ("base", "finetuned"):
        if name not in present:
            hint = (
                "run 02_finetune first (or use source: base)"
                if name == "finetuned"
                else "run 00_base_model first"
            )
            raise FileNotFoundError(
                f"compress.source: variant '{name}' not found in {run.models}; {hint}"
            )
        return name, models.resolve(name, run)
    return source, models.resolve(source, run)


# --------------------------------------------------------------------------- measuring
def _ratios(ref: dict, m: dict) -> dict:
    out = {}
    if ref.get("weight_bytes") and m.get("weight_bytes"):
        out["size_ratio"] = ref["weight_bytes"] / m["weight_bytes"]  # > 1: smaller than the source
    if ref.get("decode_ms_per_token") and m.get("decode_ms_per_token"):
        out["decode_speedup"] = ref["decode_ms_per_token"] / m["decode_ms_per_token"]
    if ref.get("prefill_ms") and m.get("prefill_ms"):
        out["prefill_speedup"] = ref["prefill_ms"] / m["prefill_ms"]
    if ref.get("perplexity") and m.get("perplexity"):
        out["ppl_change"] = m["perplexity"] / ref["perplexity"] - 1.0
    return out


def _summary(m: dict) -> dict:
    """Flat headline numbers (what 05_report reads): MB on disk, ms per decoded token, perplexity, peak RSS."""
    out = {
        "size_mb": m["weight_bytes"] / 1e6 if m.get("weight_bytes") else None,
        "ms_per_token": m.get("decode_ms_per_token"),
        "perplexity": m.get("perplexity"),
    }
    if m.get("peak_rss_bytes"):
        out["peak_rss_mb"] = m["peak_rss_bytes"] / 1e6
    if m.get("gpu_peak_bytes"):
        out["gpu_peak_mb"] = m["gpu_peak_bytes"] / 1e6
    return out


def _pass_at_1(run, label: str, model_spec: str, cfg, device: str, data_dir, log) -> dict:
    """pass@1 through the evaluation engine (codebench.bench), in results/compress_eval/."""
    try:
        from codebench import bench
        from codebench.bench.suite import bench_dirname, make_backend

        out = run.results / "compress_eval" / label / bench_dirname(cfg.pass_at_1_benchmark)
        ecfg = bench.EvalConfig(
            n=1,
            temperature=0.0,
            limit=cfg.pass_at_1_limit,
            max_new_tokens=cfg.pass_at_1_max_new_tokens,
            ks=(1,),
        )
        res = bench.evaluate(
            make_backend(model_spec, run, device=device),
            cfg.pass_at_1_benchmark,
            out,
            model=label,
            config=ecfg,
            data_dir=data_dir,
            progress=False,
            log=log,
        )
        if res.get("status") == "skipped":
            return {"pass_at_1": None, "pass_at_1_note": res.get("reason")}
        return {
            "pass_at_1": res["metrics"]["pass@1"]["value"],
            "pass_at_1_problems": res["metrics"]["pass@1"].get("problems"),
            "pass_at_1_dir": str(out),
        }
    except Exception as e:  # noqa: BLE001 - pass@1 is optional; the reason is recorded
        return {"pass_at_1": None, "pass_at_1_note": f"{type(e).__name__}: {e}"}


def texts_for(cfg) -> tuple[list[str], list[str], dict]:
    """(held-out texts for perplexity, train-split texts for calibration, corpus stats)."""
    from codebench.corpus import heldout_texts, load_corpus
    from codebench.params import TinyModelConfig

    t = TinyModelConfig()  # the tiny model's split: its held-out files stay unseen
    corpus = load_corpus(
        "stdlib", max_files=t.max_files, max_chars=t.max_chars, heldout_fraction=t.heldout_fraction
    )
    calib, left = [], cfg.calibration_sequences * cfg.calibration_seq_len * 8
    for d in corpus.train:
        if left <= 0:
            break
        calib.append(d.text[:left])
        left -= len(calib[-1])
    return heldout_texts(corpus, cfg.eval_chars), calib, corpus.stats()


def _reusable(dest: Path, variant: VariantSpec, fp: str) -> dict | None:
    from codebench.runs import read_variant_info

    info = read_variant_info(dest)
    if (
        info
        and info.get("spec") == variant.spec
        and info.get("source_fingerprint") == fp
        and info.get("builder_version") == BUILDER_VERSION
    ):
        return info
    return None


def build_and_measure(ctx, cfg, log: Callable[[str], None] = print) -> dict:
    """Build, save and measure every variant of `cfg.variants`; write results/compress.json.

    Raises `CompressError` naming the failed variants after the others ran and the results
    were written."""
    from codebench.compress.measure import (
        MeasureConfig,
        measure,
        measure_isolated,
        paired_decode,
        paired_decode_isolated,
    )
    from codebench.runs import provenance

    t0 = time.perf_counter()
    variants = parse_specs(cfg.variants)
    run, device = ctx.run, ctx.device
    source_name, source = resolve_source(run, cfg.source)
    fp = fingerprint(source)
    ppl_texts, calib_texts, corpus_stats = texts_for(cfg)
    mcfg = MeasureConfig(
        threads=cfg.threads,
        prompt_tokens=cfg.prompt_tokens,
        new_tokens=cfg.new_tokens,
        repeats=cfg.repeats,
        ppl_context=cfg.ppl_context,
        ppl_stride=cfg.ppl_stride,
        kernel=cfg.int8_kernel,
    )
    measure_fn = measure_isolated if cfg.isolate else measure

    def do_measure(path: str) -> dict:
        try:
            return measure_fn(path, device, ppl_texts, mcfg)
        except VariantUnavailable as e:
            return {"path": path, "unavailable": str(e)}

    def do_pair(path: str) -> dict:
        # decode speed-up timed step by step against the source in one process: separate
        # processes minutes apart can differ by 2x on a shared machine
        try:
            pair = paired_decode_isolated if cfg.isolate else paired_decode
            return pair(source, path, device, mcfg, ppl_texts[:2])
        except Exception as e:  # noqa: BLE001 - the separate-process ratio stands instead
            return {"error": f"{type(e).__name__}: {e}"}

    log(f"[compress] source {source_name} ({source}); {len(variants)} variant(s) on {device}")
    ref_m = do_measure(source)
    reference = {"name": source_name, "path": source, **ref_m, **_summary(ref_m)}
    if cfg.pass_at_1:
        reference.update(
            _pass_at_1(
                run,
                source_name,
                source_name if source_name in run.variants() else source,
                cfg,
                device,
                ctx.data_dir,
                log,
            )
        )
    if "error" in reference:
        raise CompressError(f"measuring the source model {source} failed: {reference['error']}")
    rows = []
    for v in variants:
        rows.append(
            _one_variant(
                v,
                ctx,
                cfg,
                source,
                source_name,
                fp,
                calib_texts,
                (do_measure, do_pair),
                reference,
                log,
            )
        )
    result = {
        "source": {"name": source_name, "path": source, "fingerprint": fp},
        "device": device,
        "reference": reference,
        "variants": rows,
        "corpus": corpus_stats,
        "measure": mcfg.__dict__,
        "config": json.loads(cfg.model_dump_json()),
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "provenance": provenance(ctx.seed),
    }
    result = results.write_stage(run, results.CompressResults, result)
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        raise CompressError(
            f"{len(failed)} variant(s) failed (results kept in {run.result_file('compress')}): "
            + "; ".join(f"{r['spec']}: {r['error']}" for r in failed)
        )
    return result


def _one_variant(
    v: VariantSpec,
    ctx,
    cfg,
    source: str,
    source_name: str,
    fp: str,
    calib_texts,
    measurers,
    reference: dict,
    log,
) -> dict:
    run, device = ctx.run, ctx.device
    do_measure, do_pair = measurers
    row: dict = {"spec": v.spec, "name": v.name, "steps": describe(v)["steps"]}
    reason = unavailable_reason(v, device)
    if reason:
        log(f"[compress] {v.spec}: skipped ({reason})")
        return {**row, "status": "skipped", "reason": reason}
    dest = run.model_dir(v.name)
    try:
        info = _reusable(dest, v, fp) if cfg.reuse else None
        status = "reused" if info else "built"
        if info is None:
            info = build_variant(
                source,
                v,
                dest,
                device=device,
                calibration_texts=calib_texts,
                calibration_sequences=cfg.calibration_sequences,
                calibration_seq_len=cfg.calibration_seq_len,
                quantize_embeddings=cfg.quantize_embeddings,
                sparse_storage=cfg.sparse_storage,
                parent=source_name,
                extra_info={"source_fingerprint": fp, "builder_version": BUILDER_VERSION},
            )
            from codebench.runs import read_variant_info

            info = {**(read_variant_info(dest) or {}), "build_s": info["build_s"]}
    except VariantUnavailable as e:
        log(f"[compress] {v.spec}: skipped ({e})")
        return {**row, "status": "skipped", "reason": str(e)}
    except Exception as e:  # noqa: BLE001 - recorded; the stage raises after the others ran
        log(
            f"[compress] {v.spec}: FAILED to build: {type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"
        )
        return {**row, "status": "failed", "error": f"build: {type(e).__name__}: {e}"}
    m = do_measure(str(dest))
    if "unavailable" in m:
        log(f"[compress] {v.spec}: built but cannot run here ({m['unavailable']})")
        return {
            **row,
            "status": "skipped",
            "reason": m["unavailable"],
            "info": info,
            "path": str(dest),
        }
    if "error" in m:
        log(f"[compress] {v.spec}: FAILED to measure: {m['error']}")
        return {
            **row,
            "status": "failed",
            "error": f"measure: {m['error']}",
            "info": info,
            "path": str(dest),
        }
    row.update(
        status="ok",
        built=status,
        kind=info.get("kind"),
        parent=source_name,
        path=str(dest),
        format=info.get("format"),
        **_summary(m),
        **_ratios(reference, m),
        info=info,
        measure=m,
    )
    if m.get("decode_ms_per_token") and reference.get("decode_ms_per_token"):
        pair = do_pair(str(dest))
        row["decode_paired"] = pair
        if "decode_speedup" in pair:
            row["decode_speedup_separate"] = row.get("decode_speedup")
            row["decode_speedup"] = pair["decode_speedup"]
    if cfg.pass_at_1:
        row.update(_pass_at_1(run, v.name, v.name, cfg, device, ctx.data_dir, log))
    log(
        f"[compress] {v.spec}: {m['weight_bytes'] / 1e6:.2f} MB ({row.get('size_ratio', float('nan')):.2f}x smaller), "
        f"decode {m.get('decode_ms_per_token', float('nan')):.1f} ms/token ({row.get('decode_speedup', float('nan')):.2f}x), "
        f"ppl {m.get('perplexity', float('nan')):.2f} ({100 * row.get('ppl_change', float('nan')):+.1f}%)"
    )
    return row
