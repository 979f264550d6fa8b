"""Variant specs: parse the strings of `compress.variants`, say what each needs to run.

A spec is one method or several joined by '+', applied left to right:

  quantization (last step only)   int8-dynamic  int8-weight  int4-weight  nf4  bnb-int8
  unstructured pruning            magnitude-<pct>  magnitude-global-<pct>  wanda-<pct>
  semi-structured (N:M) pruning   2:4  (= magnitude-2:4)  wanda-2:4
  structured pruning (shrinks)    mlp-prune-<pct>  head-prune-<pct>

e.g. "int8-dynamic", "wanda-50", "2:4", "mlp-prune-25+int8-dynamic". <pct> is the share of
weights (or channels / heads) removed, 0 < pct < 100. The folder a variant is saved in is its
`name`: the spec with ':' written 'of' ("2:4" -> "2of4"), safe on every file system.

This module imports no torch: the profile validator uses it.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass

QUANT_METHODS = ("int8-dynamic", "int8-weight", "int4-weight", "nf4", "bnb-int8")
PRUNE_METHODS = ("magnitude", "magnitude-global", "wanda")
STRUCTURED_METHODS = ("mlp-prune", "head-prune")
CUDA_ONLY = {
    "nf4": "bitsandbytes NF4 (double quant) runs on CUDA only",
    "bnb-int8": "bitsandbytes LLM.int8() runs on CUDA only",
    "int4-weight": "torchao int4 weight-only (tinygemm kernel) runs on CUDA only",
}
NEEDS_PACKAGE = {"nf4": "bitsandbytes", "bnb-int8": "bitsandbytes", "int4-weight": "torchao"}
EXAMPLES = "int8-dynamic, int8-weight, int4-weight, nf4, bnb-int8, magnitude-50, magnitude-global-50, wanda-50, 2:4, wanda-2:4, mlp-prune-25, head-prune-25, mlp-prune-25+int8-dynamic"

_PCT = r"(\d{1,2}(?:\.\d+)?)"
_PATTERNS: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(rf"^(magnitude-global|magnitude|wanda)-{_PCT}$"), "prune"),
    (re.compile(r"^(?:(magnitude|wanda)-)?2:4$"), "semi"),
    (re.compile(rf"^(mlp-prune|head-prune)-{_PCT}$"), "structured"),
)


class SpecError(ValueError):
    """A variant spec is malformed; the message names the spec and the accepted forms."""


class VariantUnavailable(RuntimeError):
    """This variant cannot run here (no CUDA, package missing, unsupported architecture)."""


@dataclass(frozen=True)
class Step:
    """One compression step.

    kind      'quantize' | 'prune' (unstructured) | 'semi' (N:M) | 'structured'
    method    e.g. 'int8-dynamic', 'magnitude', 'magnitude-global', 'wanda', 'mlp-prune'
    amount    fraction removed (0..1) for pruning steps, None for quantization
    """

    kind: str
    method: str
    amount: float | None = None

    @property
    def spec(self) -> str:
        if self.kind == "quantize":
            return self.method
        if self.kind == "semi":
            return "2:4" if self.method == "magnitude" else f"{self.method}-2:4"
        return f"{self.method}-{_pct(self.amount)}"


@dataclass(frozen=True)
class VariantSpec:
    """A parsed spec: its canonical text, folder name and steps."""

    spec: str
    steps: tuple[Step, ...]

    @property
    def name(self) -> str:
        return variant_name(self.spec)

    @property
    def quantization(self) -> Step | None:
        last = self.steps[-1]
        return last if last.kind == "quantize" else None

    @property
    def pruning(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.kind != "quantize")

    @property
    def needs_calibration(self) -> bool:
        return any(s.method in ("wanda", "mlp-prune", "head-prune") for s in self.steps)


def _pct(amount: float | None) -> str:
    v = round((amount or 0.0) * 100, 6)
    return str(int(v)) if v == int(v) else str(v)


def variant_name(spec: str) -> str:
    """Folder name of a variant: the spec with ':' written as 'of' ('2:4' -> '2of4')."""
    return spec.strip().replace(":", "of")


def _parse_step(text: str, spec: str) -> Step:
    if text in QUANT_METHODS:
        return Step("quantize", text)
    for pattern, kind in _PATTERNS:
        m = pattern.match(text)
        if not m:
            continue
        if kind == "semi":
            return Step("semi", m.group(1) or "magnitude", 0.5)
        pct = float(m.group(2))
        if not 0 < pct < 100:
            raise SpecError(f"variant {spec!r}: '{text}' removes {pct}% (expected 0 < pct < 100)")
        return Step(kind, m.group(1), pct / 100)
    raise SpecError(f"variant {spec!r}: unknown method '{text}' (known forms: {EXAMPLES})")


def parse_spec(spec: str) -> VariantSpec:
    """Parse one spec; raise SpecError naming it and the accepted forms."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"variant {spec!r}: empty spec (known forms: {EXAMPLES})")
    parts = [p.strip() for p in spec.strip().split("+")]
    if any(not p for p in parts):
        raise SpecError(f"variant {spec!r}: empty step between '+' signs")
    steps = tuple(_parse_step(p, spec) for p in parts)
    quant = [i for i, s in enumerate(steps) if s.kind == "quantize"]
    if len(quant) > 1 or (quant and quant[0] != len(steps) - 1):
        raise SpecError(f"variant {spec!r}: at most one quantization step, and it must come last")
    unstructured = [s for s in steps if s.kind in ("prune", "semi")]
    if len(unstructured) > 1:
        raise SpecError(f"variant {spec!r}: at most one unstructured / 2:4 pruning step")
    if steps and quant and steps[-1].method in ("nf4", "bnb-int8", "int4-weight") and unstructured:
        raise SpecError(
            f"variant {spec!r}: {steps[-1].method} re-packs weights and would not keep the zeros; combine it with structured pruning only"
        )
    kinds = [s.kind for s in steps]
    if "structured" in kinds and any(
        k in ("prune", "semi") for k in kinds[: kinds.index("structured")]
    ):
        raise SpecError(
            f"variant {spec!r}: structured pruning must come before unstructured pruning"
        )
    return VariantSpec("+".join(s.spec for s in steps), steps)


def parse_specs(specs: list[str]) -> list[VariantSpec]:
    """Parse a list of specs; duplicates (same folder name) are an error."""
    out, seen = [], {}
    for s in specs:
        v = parse_spec(s)
        if v.name in seen:
            raise SpecError(
                f"variant {s!r}: same variant as {seen[v.name]!r} (folder models/{v.name})"
            )
        seen[v.name] = s
        out.append(v)
    return out


def unavailable_reason(variant: VariantSpec, device: str) -> str | None:
    """Why this variant cannot run on `device` here, or None when it can."""
    for step in variant.steps:
        if step.method in CUDA_ONLY and not str(device).startswith("cuda"):
            return f"{step.method}: {CUDA_ONLY[step.method]} (device is {device})"
        pkg = NEEDS_PACKAGE.get(step.method)
        if pkg and importlib.util.find_spec(pkg) is None:
            return f"{step.method}: needs the '{pkg}' package, which is not installed (pip install {pkg})"
    return None


def describe(variant: VariantSpec) -> dict:
    """A JSON-able description of a variant's steps."""
    return {
        "spec": variant.spec,
        "name": variant.name,
        "steps": [{"kind": s.kind, "method": s.method, "amount": s.amount} for s in variant.steps],
    }
