"""Build one compressed variant of a model and save it (`build_variant`): pruning steps,
quantization, the variant folder with its `codebench_variant.json`. Stage 03_compress
(`codebench.stages.compress`) builds, measures and reports every variant of a profile.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

from codebench.compress.variants import (
    VariantSpec,
    VariantUnavailable,
    describe,
    parse_specs,
    unavailable_reason,
)
from codebench.records import write_dir_atomic

HF_QUANT = ("nf4", "bnb-int8", "int4-weight")


def fingerprint(target: str) -> str:
    """A cheap identity of a model folder: file names, sizes and modification times."""
    p = Path(target)
    if not p.is_dir():
        return f"hub:{target}"
    h = hashlib.sha256()
    for f in sorted(p.rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(p)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- building
def _prune(model, variant: VariantSpec, batches) -> dict:
    """Apply the pruning steps in order; return their reports."""
    from codebench.compress import prune, structured

    out: dict = {"structured": [], "masked": None}
    for step in variant.pruning:
        if step.method == "mlp-prune":
            out["structured"].append(structured.prune_mlp_channels(model, step.amount, batches))
        elif step.method == "head-prune":
            out["structured"].append(structured.prune_attention_heads(model, step.amount, batches))
        elif step.kind == "prune":
            if step.method == "wanda":
                masks = prune.prune_wanda(model, step.amount, batches)
            else:
                masks = prune.prune_magnitude(
                    model, step.amount, "global" if step.method == "magnitude-global" else "layer"
                )
            out["masked"] = sorted(masks)
        elif step.kind == "semi":
            masks, skipped = prune.prune_semi_structured(
                model, step.method, batches if step.method == "wanda" else None
            )
            out["masked"], out["semi_skipped"] = sorted(masks), skipped
    if out["masked"] is not None:
        out["sparsity"] = prune.sparsity_report(model, out["masked"])
    return out


def build_variant(
    source: str,
    variant: VariantSpec | str,
    dest: str | os.PathLike,
    *,
    device: str = "cpu",
    calibration_texts: list[str] | None = None,
    calibration_sequences: int = 16,
    calibration_seq_len: int = 256,
    quantize_embeddings: bool = True,
    sparse_storage: bool = True,
    parent: str | None = None,
    extra_info: dict | None = None,
) -> dict:
    """Create one variant of the model at `source` and save it to `dest`; return its info.

    Raises VariantUnavailable when this machine cannot build or run it.
    """
    import torch

    from codebench import models
    from codebench.compress import io, prune
    from codebench.compress.quantize import quantize_with_transformers

    if isinstance(variant, str):
        variant = parse_specs([variant])[0]
    reason = unavailable_reason(variant, device)
    if reason:
        raise VariantUnavailable(reason)
    t0 = time.perf_counter()
    quant = variant.quantization
    kinds = {s.kind for s in variant.steps}
    kind = (
        "quantized"
        if kinds == {"quantize"}
        else "pruned"
        if "quantize" not in kinds
        else "compressed"
    )
    info = {
        "kind": kind,
        "parent": parent or str(source),
        "spec": variant.spec,
        "source_model": str(source),
        "steps": describe(variant)["steps"],
        **(extra_info or {}),
    }
    if quant is not None and quant.method in HF_QUANT and not variant.pruning:
        tok = models.load_tokenizer(str(source))
        model = None  # transformers' quantizer loads the source itself
    else:
        model, tok = models.load(str(source), device, torch.float32 if device == "cpu" else "auto")
    batches = None
    if variant.needs_calibration:
        if not calibration_texts:
            raise ValueError(f"{variant.spec}: needs calibration texts (code)")
        batches = prune.calibration_batches(
            tok, calibration_texts, calibration_sequences, calibration_seq_len
        )
    report = (
        _prune(model, variant, batches) if model is not None else {"structured": [], "masked": None}
    )
    info["structured"] = report["structured"] or None
    if "sparsity" in report:
        sp = report["sparsity"]
        info["sparsity"] = {k: v for k, v in sp.items() if k != "layers"}
        info["sparsity_layers"] = sp["layers"]
        info["semi_skipped"] = report.get("semi_skipped") or None
    if quant is None:
        if report["masked"] is not None and sparse_storage:
            io.save_sparse(model, tok, dest, report["masked"], **info)
        else:
            io.save_hf(model, tok, dest, **info)
    elif quant.method in ("int8-dynamic", "int8-weight"):
        mode = "dynamic" if quant.method == "int8-dynamic" else "weight"
        io.save_int8(
            model,
            tok,
            dest,
            mode=mode,
            include_embeddings=quantize_embeddings,
            quantization=quant.method,
            **info,
        )
    else:
        src = str(source)
        with tempfile.TemporaryDirectory(prefix="codebench-prequant-") as tmp:
            if variant.pruning:  # quantize the pruned model, not the source
                model.save_pretrained(tmp)
                src = tmp

            def write(folder: Path) -> None:
                quantize_with_transformers(src, folder, quant.method, device)
                tok.save_pretrained(folder)
                io._info(folder, format="hf", quantization=quant.method, **info)

            write_dir_atomic(dest, write)
    info["build_s"] = round(time.perf_counter() - t0, 2)
    del model
    return info
