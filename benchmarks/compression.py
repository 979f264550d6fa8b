"""Compressed variants against full precision, same run: size, decode speed, perplexity.

    python benchmarks/compression.py                  # CPU: tiny model + codegen-350M-shaped random model
    python benchmarks/compression.py --model PATH     # your tiny (or any) model instead of training one
    python benchmarks/compression.py --merge-order    # also: LoRA merge-then-quantize vs quantize-then-merge
    python benchmarks/compression.py --cuda           # GPU: bf16 reference, nf4 / bnb-int8 / int4 / int8

Every number comes from a fresh process per variant (codebench.compress.measure): bytes of
the weight files, median decode ms/token with a fixed thread count, sliding-window perplexity
on held-out standard-library code. Ratios are against fp32 (CPU) or bf16 (CUDA) measured in
the same run. The codegen-350M-shaped model has random weights: its perplexity is that of a
random model (only the change matters) and it exists to time decode at a real model's shape.
Goal on CPU: an int8 variant >= 3.5x smaller and >= 2x faster at decode than fp32 with <= 2%
more perplexity on the tiny model. Goal on CUDA: NF4 >= 3x smaller than bf16.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
logging.getLogger("torchao").setLevel(logging.ERROR)
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # helpers.compress

from codebench.compress.build import build_variant  # noqa: E402
from codebench.compress.measure import (  # noqa: E402
    MeasureConfig,
    measure_isolated,
    paired_decode_isolated,
)
from codebench.compress.variants import VariantUnavailable  # noqa: E402

CPU_VARIANTS = [
    "int8-dynamic",
    "int8-dynamic@torchao",
    "int8-weight",
    "magnitude-50",
    "2:4",
    "mlp-prune-25",
    "mlp-prune-25+int8-dynamic",
]
CPU_VARIANTS_350M = [
    "int8-dynamic",
    "int8-dynamic@torchao",
    "int8-weight",
    "magnitude-50",
    "mlp-prune-25",
]
CUDA_VARIANTS = [
    "nf4",
    "bnb-int8",
    "int4-weight",
    "int8-dynamic",
    "int8-weight",
    "2:4",
    "mlp-prune-25",
]


def texts() -> tuple[list[str], list[str]]:
    """(held-out texts for perplexity, training-split texts for calibration)."""
    from codebench.corpus import heldout_texts, load_corpus
    from codebench.params import TinyModelConfig

    t = TinyModelConfig()
    corpus = load_corpus(
        "stdlib", max_files=t.max_files, max_chars=t.max_chars, heldout_fraction=t.heldout_fraction
    )
    return heldout_texts(corpus, 20_000), [d.text[:8000] for d in corpus.train[:40]]


def tiny_model(path: str | None, work: Path, steps: int) -> Path:
    """--model PATH, else this checkout's smoke run, else a tiny model trained here (codebench.tiny)."""
    if path:
        return Path(path)
    from codebench.paths import REPO_ROOT

    smoke = REPO_ROOT / "runs" / "smoke" / "models" / "base"
    if (smoke / "config.json").is_file():
        return smoke
    from codebench import tiny
    from codebench.params import TinyModelConfig
    from codebench.runs import RunLayout

    print(
        f"[bench] training a tiny model ({steps} steps; pass --model PATH to reuse one) ...",
        flush=True,
    )
    run = RunLayout(work / "tinyrun", work / "tinyrun" / "figures")
    tiny.build(TinyModelConfig(steps=steps, eval_every=max(steps, 1)), run, log=None)
    return run.model_dir("base")


def random_350m(work: Path) -> Path:
    from helpers.compress import codegen_350m_config, random_model, tiny_tokenizer

    from codebench.runs import write_variant_info

    path = work / "codegen-350M-random"
    model = random_model(codegen_350m_config())
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    write_variant_info(path, kind="base", parent=None, loader="hf")
    del model
    return path


def fmt_bytes(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


def line(label: str, spec: str, ref: dict, m: dict) -> str:
    if "unavailable" in m or "error" in m:
        return f"[{label}] {spec:<26} {'skipped' if 'unavailable' in m else 'FAILED'}: {m.get('unavailable') or m.get('error')}"
    size = ref["weight_bytes"] / m["weight_bytes"]
    ppl = m["perplexity"] / ref["perplexity"] - 1
    p = m.get("paired") or {}
    if "decode_speedup" in p:  # timed against the reference in the same process
        decode = (
            f"decode {p['decode_speedup']:5.2f}x ({p['reference_decode_ms']:.2f} -> "
            f"{p['variant_decode_ms']:.2f} ms/token, paired)"
        )
    else:
        decode = (
            f"decode {ref['decode_ms_per_token'] / m['decode_ms_per_token']:5.2f}x "
            f"({ref['decode_ms_per_token']:.2f} -> {m['decode_ms_per_token']:.2f} ms/token, separate processes)"
        )
    return (
        f"[{label}] {spec:<26} size {size:5.2f}x smaller ({fmt_bytes(ref['weight_bytes'])} -> {fmt_bytes(m['weight_bytes'])}), "
        f"{decode}, "
        f"prefill {ref['prefill_ms'] / m['prefill_ms']:4.2f}x, perplexity {100 * ppl:+6.2f}% ({ref['perplexity']:.3f} -> {m['perplexity']:.3f}), "
        f"peak RSS {fmt_bytes(m['peak_rss_bytes'])}"
        + (f", kernel {m['kernel']}" if m.get("kernel") else "")
    )


def bench_model(
    label: str,
    source: Path,
    variants: list[str],
    work: Path,
    args,
    heldout: list[str],
    calib: list[str],
    ppl_chars: int,
) -> dict:
    """Build every variant, then measure reference and variants in `args.rounds` interleaved
    rounds (the first with perplexity); latency is the minimum over rounds of each round's
    median, which discounts other processes competing for the CPU."""
    device = "cuda" if args.cuda else "cpu"
    cfg = MeasureConfig(
        threads=args.threads,
        prompt_tokens=64,
        new_tokens=args.new_tokens,
        repeats=args.repeats,
        ppl_context=256,
        ppl_stride=128,
    )
    eval_texts = _cut(heldout, ppl_chars)
    built: dict[str, float | str] = {}  # spec -> build seconds, or why it cannot run here
    for spec in variants:
        base_spec = spec.partition("@")[0]
        if base_spec in built:
            continue
        t = time.perf_counter()
        try:
            build_variant(
                source,
                base_spec,
                work / label / base_spec.replace(":", "of"),
                device=device,
                calibration_texts=calib,
                calibration_sequences=8,
                calibration_seq_len=128,
            )
            built[base_spec] = time.perf_counter() - t
        except VariantUnavailable as e:
            built[base_spec] = str(e)
    results: dict[str, dict] = {}
    for r in range(args.rounds):
        rcfg = MeasureConfig(**{**cfg.__dict__, "perplexity": r == 0})
        for spec in ["reference", *variants]:
            base_spec, _, kernel = spec.partition("@")
            if isinstance(built.get(base_spec), str):
                results[spec] = {"unavailable": built[base_spec]}
                continue
            path = source if spec == "reference" else work / label / base_spec.replace(":", "of")
            m = measure_isolated(
                path,
                device,
                eval_texts,
                MeasureConfig(**{**rcfg.__dict__, "kernel": kernel or "auto"}),
            )
            if spec == "reference" and "error" in m:
                sys.exit(f"[{label}] measuring the reference failed: {m['error']}")
            results[spec] = _merge_rounds(results.get(spec), m)
    # decode ratios: each variant timed step by step against the reference in one process
    for spec in variants:
        base_spec, _, kernel = spec.partition("@")
        if "weight_bytes" not in results.get(spec, {}):
            continue
        path = work / label / base_spec.replace(":", "of")
        p = paired_decode_isolated(
            source,
            path,
            device,
            MeasureConfig(**{**cfg.__dict__, "kernel": kernel or "auto"}),
            eval_texts,
        )
        if "decode_speedup" in p:
            results[spec]["paired"] = p
    ref = results.pop("reference")
    print(
        f"[{label}] reference {'bf16' if args.cuda else 'fp32'}: {fmt_bytes(ref['weight_bytes'])}, "
        f"decode {ref['decode_ms_per_token']:.2f} ms/token, prefill {ref['prefill_ms']:.1f} ms, "
        f"perplexity {ref['perplexity']:.3f} over {ref['ppl_tokens']} tokens, peak RSS {fmt_bytes(ref['peak_rss_bytes'])}, "
        f"{cfg.threads} threads, best of {args.rounds} round(s)",
        flush=True,
    )
    shares = [
        m["paired"]["reference_gemm_share"]
        for m in results.values()
        if (m.get("paired") or {}).get("reference_gemm_share") is not None
    ]
    if shares:
        share = statistics.median(shares)
        ref["gemm_share"] = share
        print(
            f"[{label}] weight GEMMs are {100 * share:.0f}% of the fp32 decode step's operator time "
            f"(torch.profiler): no weight format can make decode more than {1 / (1 - share):.2f}x faster "
            f"without also changing attention, cache and dispatch",
            flush=True,
        )
    for spec in variants:
        b = built.get(spec.partition("@")[0])
        print(
            line(label, spec, ref, results[spec])
            + (f", built in {b:.1f} s" if isinstance(b, float) else ""),
            flush=True,
        )
    return {"reference": ref, "variants": results}


def _merge_rounds(prev: dict | None, m: dict) -> dict:
    if prev is None or "error" in prev or "unavailable" in prev:
        return m
    if "error" in m or "unavailable" in m:
        return prev
    for k in ("decode_ms_per_token", "prefill_ms"):
        prev[k] = min(prev[k], m[k])
    prev["peak_rss_bytes"] = max(prev["peak_rss_bytes"], m["peak_rss_bytes"])
    return prev


def _cut(texts: list[str], chars: int) -> list[str]:
    out, left = [], chars
    for t in texts:
        if left <= 0:
            break
        out.append(t[:left])
        left -= len(out[-1])
    return out


def speedup(ref: dict, m: dict) -> float:
    """Decode speed-up: the paired (same-process) ratio when measured, else separate processes."""
    p = m.get("paired") or {}
    return (
        p["decode_speedup"]
        if "decode_speedup" in p
        else ref["decode_ms_per_token"] / m["decode_ms_per_token"]
    )


def goals(tiny: dict, big: dict | None, cuda: bool) -> None:
    if cuda:
        ref, m = tiny["reference"], tiny["variants"].get("nf4", {})
        if "weight_bytes" in m:
            r = ref["weight_bytes"] / m["weight_bytes"]
            print(
                f"[goal] CUDA: nf4 {r:.2f}x smaller than bf16 (goal >= 3x): {'PASS' if r >= 3 else 'FAIL'}"
            )
        return
    ref = tiny["reference"]
    for spec in ("int8-dynamic", "int8-weight"):
        m = tiny["variants"].get(spec, {})
        if "weight_bytes" not in m:
            continue
        size, speed, ppl = (
            ref["weight_bytes"] / m["weight_bytes"],
            speedup(ref, m),
            m["perplexity"] / ref["perplexity"] - 1,
        )
        verdict = " ".join(
            f"{k} {'PASS' if ok else 'FAIL'}"
            for k, ok in (("size", size >= 3.5), ("speed", speed >= 2), ("ppl", ppl <= 0.02))
        )
        extra = ""
        if big and "decode_ms_per_token" in big["variants"].get(spec, {}):
            extra = f"; at the codegen-350M shape decode is {speedup(big['reference'], big['variants'][spec]):.2f}x faster, {big['reference']['weight_bytes'] / big['variants'][spec]['weight_bytes']:.2f}x smaller"
        print(
            f"[goal] tiny {spec}: {size:.2f}x smaller, {speed:.2f}x faster decode, {100 * ppl:+.2f}% perplexity -> {verdict}{extra}"
        )


def merge_order(source: Path, work: Path, heldout: list[str], steps: int) -> None:
    """Train a LoRA on the evaluation texts (a domain fine-tune whose gain is easy to see), then
    compare merge orders: how much of that gain survives int8 in each (docs/compression.md)."""
    import torch
    from merge_order import compare_merge_orders
    from peft import LoraConfig, get_peft_model

    from codebench import models
    from codebench.compress.prune import calibration_batches

    torch.manual_seed(0)
    eval_texts = _cut(heldout, 20_000)
    model, tok = models.load(str(source), "cpu", torch.float32)
    peft = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0)
    )
    opt = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=1e-3)
    batches = calibration_batches(tok, eval_texts, n_sequences=64, seq_len=128, batch_size=8)
    peft.train()
    for i in range(steps):
        b = batches[i % len(batches)]
        peft(input_ids=b, labels=b).loss.backward()
        opt.step()
        opt.zero_grad()
    adapter = work / "lora"
    peft.save_pretrained(adapter)
    tok.save_pretrained(adapter)
    res = compare_merge_orders(source, adapter, eval_texts)
    print(
        f"[merge-order] LoRA r=8 on {res['adapted_layers']} layers, {steps} steps on the evaluation "
        "texts; int8 per-row rounding on every Linear"
    )
    for name, r in res["orders"].items():
        err = f", weight error {r['weight_error']:.4f}" if "weight_error" in r else ""
        print(
            f"[merge-order] {name:<24} perplexity {r['perplexity']:.4f}{err}, "
            f"fine-tune gain kept {100 * r['gain_kept']:.1f}%"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--model",
        help="tiny (or any) model folder; default: runs/smoke/models/base, else train one",
    )
    ap.add_argument(
        "--tiny-steps",
        type=int,
        default=300,
        help="training steps when a tiny model is trained here",
    )
    ap.add_argument(
        "--cuda",
        action="store_true",
        help="GPU mode: bf16 reference, bitsandbytes / int4 / int8 on CUDA",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads while timing (1: on a shared machine, 2-thread fp32 GEMMs stall "
        "in OpenMP barriers whenever another process runs, inflating fp32 times many-fold)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument(
        "--rounds", type=int, default=2, help="interleaved timing rounds (minimum taken)"
    )
    ap.add_argument("--skip-350m", action="store_true", help="only the tiny model")
    ap.add_argument(
        "--merge-order",
        action="store_true",
        help="also compare LoRA merge orders on the tiny model",
    )
    ap.add_argument("--workdir", help="keep built variants here (default: a temp folder)")
    args = ap.parse_args(argv)
    if args.cuda:
        import torch

        if not torch.cuda.is_available():
            print("[bench] --cuda: no CUDA GPU visible here; nothing to measure")
            return 0
    with tempfile.TemporaryDirectory(prefix="codebench-bench-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        heldout, calib = texts()
        source = tiny_model(args.model, work, args.tiny_steps)
        print(f"[bench] tiny model: {source}", flush=True)
        tiny = bench_model(
            "tiny",
            source,
            CUDA_VARIANTS if args.cuda else CPU_VARIANTS,
            work,
            args,
            heldout,
            calib,
            20_000,
        )
        big = None
        if not args.skip_350m:
            print("[bench] codegen-350M-shaped model (random weights) ...", flush=True)
            big = bench_model(
                "codegen-350M",
                random_350m(work),
                CUDA_VARIANTS if args.cuda else CPU_VARIANTS_350M,
                work,
                args,
                heldout,
                calib,
                3_000,
            )
        goals(tiny, big, args.cuda)
        if args.merge_order:
            merge_order(source, work, heldout, steps=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
