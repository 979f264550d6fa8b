"""Quantization: int8 (dynamic and weight-only) through torchao, bitsandbytes and int4 on CUDA.

int8 variants quantize every Linear layer (lm_head included) and the token embedding with
symmetric per-row scales, computed by torchao (`Int8Tensor.from_hp`, the math behind
`Int8DynamicActivationInt8WeightConfig` / `Int8WeightOnlyConfig`). On a small model the
embedding and output head hold most of the bytes, so leaving them in fp32 would cap the
size gain near 2x; tied embeddings are stored once.

How the int8 weights run is a load-time choice (`kernel`):
- 'torchao': torchao `Int8Tensor` weights (dynamic per-token activations for int8-dynamic,
  float activations for int8-weight): the CUDA path, and int8-weight's only path;
- 'fbgemm': the weights packed for PyTorch's x86 int8 GEMM (the kernel behind the older
  `torch.ao.quantization.quantize_dynamic`, called directly), activations quantized per call.
  torchao 0.18 ships no eager int8 CPU kernel: its CPU int8 matmul is written for Inductor,
  and run eagerly it is slower than fp32 (see docs/compression.md), so 'auto' picks fbgemm
  for int8-dynamic on CPU.

nf4 / bnb-int8 (bitsandbytes) and int4-weight (torchao tinygemm) run through transformers'
quantizers on CUDA and are saved with `save_pretrained`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from codebench.compress.variants import VariantUnavailable

INT8_KERNELS = ("auto", "torchao", "fbgemm")


# --------------------------------------------------------------------------- int8 math
def quantize_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: (qdata int8 [N, K], scale fp32 [N]) with w ~= qdata * scale[:, None].

    Uses torchao's `Int8Tensor.from_hp(w, PerRow())`; falls back to the same formula
    (scale = absmax / 127.5) when torchao is not importable.
    """
    w = w.detach().float()
    try:
        from torchao.quantization import Int8Tensor, PerRow

        t = Int8Tensor.from_hp(w, PerRow())
        return t.qdata.contiguous(), t.scale.reshape(-1).float().contiguous()
    except ImportError:  # pragma: no cover - torchao is a dependency
        scale = (w.abs().amax(dim=1) / 127.5).clamp_min(torch.finfo(torch.float32).eps)
        q = torch.round(w / scale[:, None]).clamp(-128, 127).to(torch.int8)
        return q.contiguous(), scale


def dequantize_rows(
    q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Inverse of `quantize_rows`."""
    return (q.float() * scale.float()[:, None]).to(dtype)


def fake_quantize_(model: nn.Module, names: list[str] | None = None) -> list[str]:
    """Round every Linear weight (or those named) through int8 in place; return the names.

    Used to compare merge orders on equal terms (docs/compression.md).
    """
    done = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and (names is None or name in names):
            with torch.no_grad():
                q, s = quantize_rows(mod.weight)
                mod.weight.copy_(dequantize_rows(q, s, mod.weight.dtype))
            done.append(name)
    return done


# --------------------------------------------------------------------------- modules
def _meta_weight(shape: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    # Quantized modules answer `.weight.shape` / `.dtype` (tokenizer alignment, logits masks) without a float copy.
    return torch.empty(shape, dtype=dtype, device="meta")


class Int8Embedding(nn.Module):
    """Token embedding with int8 rows and one fp32 scale per row, dequantized per lookup."""

    def __init__(
        self,
        qweight: torch.Tensor,
        scale: torch.Tensor,
        dtype: torch.dtype,
        padding_idx: int | None = None,
    ):
        super().__init__()
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale)
        self.dtype = dtype
        self.padding_idx = padding_idx
        self.num_embeddings, self.embedding_dim = qweight.shape

    @property
    def weight(self) -> torch.Tensor:
        return _meta_weight(tuple(self.qweight.shape), self.dtype)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = nn.functional.embedding(ids, self.qweight).to(self.dtype)
        return rows * self.scale[ids].unsqueeze(-1).to(self.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8 per-row"


class FbgemmInt8Linear(nn.Module):
    """Linear layer with int8 weights packed for PyTorch's x86 int8 GEMM (fbgemm) and
    activations quantized dynamically per call: CPU int8-dynamic."""

    def __init__(
        self,
        qweight: torch.Tensor,
        scale: torch.Tensor,
        bias: torch.Tensor | None,
        dtype: torch.dtype = torch.float32,
        reduce_range: bool = True,
    ):
        super().__init__()
        self.out_features, self.in_features = qweight.shape
        self.dtype = dtype
        self.reduce_range = (
            reduce_range  # 7-bit activations: no int16 overflow on CPUs without VNNI
        )
        zero = torch.zeros(self.out_features, dtype=torch.long)
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", UserWarning
            )  # the qint8 tensor exists only to be packed
            qt = torch._make_per_channel_quantized_tensor(
                qweight.cpu(), scale.double().cpu(), zero, 0
            )
            self._packed = torch.ops.quantized.linear_prepack(
                qt, None if bias is None else bias.float().cpu()
            )

    @property
    def weight(self) -> torch.Tensor:
        return _meta_weight((self.out_features, self.in_features), self.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.quantized.linear_dynamic(x.float(), self._packed, self.reduce_range)
        return y.to(x.dtype)

    def int8_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(qdata, scale, bias) recovered from the packed weights."""
        qt, bias = torch.ops.quantized.linear_unpack(self._packed)
        return qt.int_repr(), qt.q_per_channel_scales().float(), bias

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, int8 fbgemm dynamic"
        )


def fbgemm_available() -> bool:
    """Whether PyTorch's x86 int8 GEMM (fbgemm) is built in."""
    engines = getattr(torch.backends.quantized, "supported_engines", [])
    return any(e in engines for e in ("x86", "fbgemm")) and hasattr(
        torch.ops.quantized, "linear_dynamic"
    )


def resolve_kernel(mode: str, device: str, kernel: str = "auto") -> str:
    """The int8 kernel for `mode` ('dynamic' | 'weight') on `device`."""
    if kernel not in INT8_KERNELS:
        raise ValueError(f"int8 kernel must be one of {INT8_KERNELS}, got {kernel!r}")
    if kernel == "auto":
        kernel = (
            "fbgemm" if mode == "dynamic" and device == "cpu" and fbgemm_available() else "torchao"
        )
    if kernel == "fbgemm":
        if mode != "dynamic":
            raise VariantUnavailable(
                "the fbgemm kernel quantizes activations: it runs int8-dynamic only (int8-weight uses torchao)"
            )
        if device != "cpu" or not fbgemm_available():
            raise VariantUnavailable(
                f"the fbgemm int8 kernel runs on an x86 CPU only (device {device})"
            )
    return kernel


def torchao_int8_weight(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype, dynamic: bool):
    """A torchao Int8Tensor from stored int8 rows: per-token dynamic activations or weight-only."""
    from torchao.quantization import Int8Tensor, PerRow
    from torchao.quantization.quantize_.workflows.int8.int8_tensor import QuantizeTensorToInt8Kwargs

    act = QuantizeTensorToInt8Kwargs(granularity=PerRow()) if dynamic else None
    zero = torch.zeros(q.shape[0], 1, dtype=torch.int8, device=q.device)
    return Int8Tensor(
        q,
        scale.reshape(-1, 1).float(),
        [1, q.shape[1]],
        dtype,
        zero_point=zero,
        act_quant_kwargs=act,
    )


# --------------------------------------------------------------------------- state <-> model
def int8_targets(model: nn.Module, include_embeddings: bool = True) -> list[tuple[str, nn.Module]]:
    """Modules int8 variants quantize: every nn.Linear (lm_head too) and the input embedding."""
    emb = model.get_input_embeddings() if include_embeddings else None
    out = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) or (
            emb is not None and mod is emb and isinstance(mod, nn.Embedding)
        ):
            out.append((name, mod))
    return out


def int8_state(
    model: nn.Module, include_embeddings: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, dict], dict[str, str]]:
    """Quantize a full-precision model's weights for the int8 file layout.

    Returns (tensors, layout, aliases): `<module>.qweight` (int8) and `<module>.scale` (fp32)
    per quantized module plus every other state-dict tensor as is; layout maps each
    quantized module to {'type': 'linear'|'embedding', 'tied_to': module|None}; aliases maps
    state-dict keys that share storage with an earlier key (stored once).
    """
    tensors: dict[str, torch.Tensor] = {}
    layout: dict[str, dict] = {}
    owner: dict[int, str] = {}
    for name, mod in int8_targets(model, include_embeddings):
        kind = "embedding" if isinstance(mod, nn.Embedding) else "linear"
        w = mod.weight
        if id(w) in owner:
            layout[name] = {"type": kind, "tied_to": owner[id(w)]}
            continue
        q, s = quantize_rows(w)
        tensors[f"{name}.qweight"], tensors[f"{name}.scale"] = q.cpu(), s.cpu()
        layout[name] = {"type": kind, "tied_to": None}
        owner[id(w)] = name
    quantized = {f"{n}.weight" for n in layout}
    aliases: dict[str, str] = {}
    seen: dict[int, str] = {}
    for key, t in model.state_dict().items():
        if key in quantized:
            continue
        ptr = t.data_ptr()
        if ptr in seen and t.numel():
            aliases[key] = seen[ptr]
            continue
        seen[ptr] = key
        tensors[key] = t.detach().cpu().contiguous()
    return tensors, layout, aliases


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def install_int8(
    model: nn.Module,
    tensors: Mapping[str, torch.Tensor],
    layout: dict[str, dict],
    *,
    mode: str,
    kernel: str,
    dtype: torch.dtype,
    device: str,
) -> None:
    """Swap the modules named in `layout` for int8 ones built from `tensors` (in place)."""
    dynamic = mode == "dynamic"
    shared: dict[str, torch.Tensor] = {}  # torchao weights shared by tied modules
    for name, entry in layout.items():
        src = entry["tied_to"] or name
        q, s = tensors[f"{src}.qweight"].to(device), tensors[f"{src}.scale"].to(device)
        old = model.get_submodule(name)
        if entry["type"] == "embedding":
            _set_module(model, name, Int8Embedding(q, s, dtype, getattr(old, "padding_idx", None)))
            continue
        bias = None if old.bias is None else old.bias.detach().to(device)
        if kernel == "fbgemm":
            _set_module(model, name, FbgemmInt8Linear(q, s, bias, dtype))
            continue
        if src not in shared:
            shared[src] = nn.Parameter(
                torchao_int8_weight(q, s, dtype, dynamic), requires_grad=False
            )
        new = nn.Linear(old.in_features, old.out_features, bias=bias is not None, device="meta")
        new.weight = shared[src]
        if bias is not None:
            new.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
        _set_module(model, name, new)


# --------------------------------------------------------------------------- transformers quantizers (CUDA)
def hf_quantization_config(method: str):
    """transformers quantization config for nf4 / bnb-int8 / int4-weight."""
    from transformers import BitsAndBytesConfig, TorchAoConfig

    if method == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    if method == "bnb-int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    if method == "int4-weight":
        from torchao.quantization import Int4WeightOnlyConfig
        from torchao.quantization.quantize_.workflows.int4.int4_packing_format import (
            Int4PackingFormat,
        )

        # tinygemm's layout: its kernel (aten._weight_int4pack_mm) ships with PyTorch's CUDA build
        fmt = Int4PackingFormat.TILE_PACKED_TO_4D
        return TorchAoConfig(Int4WeightOnlyConfig(group_size=128, int4_packing_format=fmt))
    raise ValueError(f"no transformers quantizer for {method!r}")


def quantize_with_transformers(
    source: str | Path, out_dir: str | Path, method: str, device: str = "cuda"
) -> None:
    """Load `source` through transformers' quantizer for `method` on `device` and save it."""
    from transformers import AutoModelForCausalLM

    if not str(device).startswith("cuda"):
        raise VariantUnavailable(f"{method} runs on CUDA only (device {device})")
    model = AutoModelForCausalLM.from_pretrained(
        str(source),
        quantization_config=hf_quantization_config(method),
        dtype=torch.bfloat16,
        device_map={"": device},
    )
    model.save_pretrained(str(out_dir))
