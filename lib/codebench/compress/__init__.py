"""Compressed variants of a model: quantization, pruning, their measurement (stage 03_compress).

Modules (flat, small): `variants` (spec parsing, what runs where), `quantize` (int8 through
torchao, bitsandbytes / int4 on CUDA), `prune` (magnitude, Wanda, 2:4), `structured` (MLP
channels, attention heads), `io` (save / `load_variant`), `measure` (size, RSS, latency,
perplexity, in a fresh process per variant), `build` (`build_variant`: one variant, built and
saved). Stage 03_compress itself is `codebench.stages.compress`. See docs/compression.md.

Importing the package is cheap (no torch); `load_variant` is the loader named in each
variant's codebench_variant.json.
"""

from __future__ import annotations

from typing import Any

from codebench.compress.variants import (
    SpecError,
    VariantSpec,
    VariantUnavailable,
    parse_spec,
    parse_specs,
    unavailable_reason,
    variant_name,
)

__all__ = [
    "SpecError",
    "VariantSpec",
    "VariantUnavailable",
    "build_variant",
    "load_variant",
    "measure_variant",
    "parse_spec",
    "parse_specs",
    "unavailable_reason",
    "variant_name",
]


def load_variant(path, device: str = "cpu", **kwargs: Any):
    """Load a saved variant folder (see `codebench.compress.io.load_variant`)."""
    from codebench.compress.io import load_variant as _load

    return _load(path, device, **kwargs)


def build_variant(*args: Any, **kwargs: Any):
    """Create and save one variant (see `codebench.compress.build.build_variant`)."""
    from codebench.compress.build import build_variant as _build

    return _build(*args, **kwargs)


def measure_variant(*args: Any, **kwargs: Any):
    """Measure one saved model folder (see `codebench.compress.measure.measure_isolated`)."""
    from codebench.compress.measure import measure_isolated

    return measure_isolated(*args, **kwargs)
