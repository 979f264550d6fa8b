"""Save and load compressed variants in formats that round-trip.

Every variant folder holds `config.json`, the tokenizer, `generation_config.json` and
`codebench_variant.json` (loader 'codebench.compress', `format`). Formats:

- 'hf'     `save_pretrained` safetensors: structured pruning (smaller config), dense pruned
           weights, and transformers' quantizers (nf4, bnb-int8, int4-weight; CUDA).
- 'int8'   `codebench_int8.safetensors`: per quantized module `<m>.qweight` (int8) and
           `<m>.scale` (fp32 per row), every other tensor as is; header metadata holds the
           layout (which modules, which are tied) and the mode (dynamic | weight).
- 'sparse' `codebench_sparse.safetensors`: each pruned weight stored as a bit mask of its
           non-zeros (1 bit per weight) plus the non-zero values, every other tensor dense;
           at 50% sparsity an fp32 layer takes 53% of its dense bytes. Loaded back dense
           (no sparse kernels here), so only the disk size changes.

`load_variant(path, device)` is what `codebench.models.load_model` calls for these folders.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from codebench.compress.variants import CUDA_ONLY, VariantUnavailable
from codebench.models import resolve_device, resolve_dtype
from codebench.records import write_dir_atomic
from codebench.runs import read_variant_info, write_variant_info

LOADER = "codebench.compress"
INT8_FILE = "codebench_int8.safetensors"
SPARSE_FILE = "codebench_sparse.safetensors"
FORMAT_VERSION = "1"


class VariantLoadError(ValueError):
    """A variant folder is missing or inconsistent; the message names the folder and what is wrong."""


# --------------------------------------------------------------------------- helpers
def dedupe_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Drop state-dict entries that share storage with an earlier one (tied weights).

    Returns (tensors, aliases) with aliases[dropped_key] = kept_key.
    """
    out, aliases, seen = {}, {}, {}
    for key, t in state.items():
        ptr = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if ptr in seen and t.numel():
            aliases[key] = seen[ptr]
            continue
        seen[ptr] = key
        out[key] = t.detach().cpu().contiguous()
    return out, aliases


def _write_common(model, tokenizer, folder: Path) -> None:
    model.config.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


def _info(folder: Path, **info) -> None:
    write_variant_info(folder, loader=LOADER, format_version=FORMAT_VERSION, **info)


# --------------------------------------------------------------------------- saving
def save_hf(model, tokenizer, dest: str | os.PathLike, **info) -> Path:
    """`save_pretrained` (safetensors) plus tokenizer and variant info."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        _info(tmp, format="hf", **info)

    return write_dir_atomic(dest, write)


def save_int8(
    model, tokenizer, dest: str | os.PathLike, *, mode: str, include_embeddings: bool = True, **info
) -> Path:
    """Quantize a full-precision model to the int8 layout (see module doc) and save it."""
    from safetensors.torch import save_file

    from codebench.compress.quantize import int8_state

    if mode not in ("dynamic", "weight"):
        raise ValueError(f"int8 mode must be 'dynamic' or 'weight', got {mode!r}")
    tensors, layout, aliases = int8_state(model, include_embeddings)
    meta = {
        "codebench_format": "int8",
        "version": FORMAT_VERSION,
        "mode": mode,
        "layout": json.dumps(layout),
        "aliases": json.dumps(aliases),
    }

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp / INT8_FILE), metadata=meta)
        _write_common(model, tokenizer, tmp)
        _info(tmp, format="int8", int8_mode=mode, quantized_modules=len(layout), **info)

    return write_dir_atomic(dest, write)


def pack_sparse(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(bitmask uint8 of the non-zeros, row-major; the non-zero values)."""
    nz = (w != 0).reshape(-1)
    bits = torch.from_numpy(np.packbits(nz.cpu().numpy()))
    return bits, w.reshape(-1)[nz].detach().cpu().contiguous()


def unpack_sparse(bits: torch.Tensor, values: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """Inverse of `pack_sparse`: the dense tensor."""
    numel = int(np.prod(shape))
    nz = torch.from_numpy(np.unpackbits(bits.numpy(), count=numel).astype(bool))
    if int(nz.sum()) != values.numel():
        raise VariantLoadError(
            f"sparse tensor: mask has {int(nz.sum())} non-zeros but {values.numel()} values are stored"
        )
    out = torch.zeros(numel, dtype=values.dtype)
    out[nz] = values
    return out.view(shape)


def save_sparse(model, tokenizer, dest: str | os.PathLike, names: list[str], **info) -> Path:
    """Save with the named Linear weights as bitmask + values where that is smaller than dense."""
    from safetensors.torch import save_file

    tensors, aliases = dedupe_state(model.state_dict())
    sparse: dict[str, dict] = {}
    for n in names:
        key = f"{n}.weight"
        w = tensors[key]
        bits, values = pack_sparse(w)
        if bits.numel() + values.numel() * values.element_size() < w.numel() * w.element_size():
            del tensors[key]
            tensors[f"{key}.bitmask"], tensors[f"{key}.values"] = bits, values
            sparse[key] = {"shape": list(w.shape)}
    meta = {
        "codebench_format": "sparse",
        "version": FORMAT_VERSION,
        "sparse": json.dumps(sparse),
        "aliases": json.dumps(aliases),
    }

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp / SPARSE_FILE), metadata=meta)
        _write_common(model, tokenizer, tmp)
        _info(tmp, format="sparse", sparse_tensors=len(sparse), **info)

    return write_dir_atomic(dest, write)


# --------------------------------------------------------------------------- loading
def _device(device: str) -> str:
    try:
        return resolve_device(device)
    except ValueError as e:
        raise VariantUnavailable(str(e)) from None


def _dtype(dtype, device: str) -> torch.dtype:
    return resolve_dtype("auto" if dtype is None else dtype, device)


def _empty_model(folder: Path, dtype: torch.dtype):
    """The architecture from config.json with uninitialised (untouched, so not resident) weights."""
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig
    from transformers.initialization import no_init_weights

    config = AutoConfig.from_pretrained(folder)
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    if (folder / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(folder)
    return model


@contextlib.contextmanager
def _open(folder: Path, filename: str, fmt: str):
    """(safe_open handle, metadata) of a codebench safetensors file; tensors are read one at a
    time, so loading never holds a second copy of the whole model."""
    from safetensors import safe_open

    path = folder / filename
    if not path.is_file():
        raise VariantLoadError(f"{folder}: {filename} is missing (variant format '{fmt}')")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("codebench_format") != fmt:
            raise VariantLoadError(
                f"{path}: not a codebench '{fmt}' file (metadata format {meta.get('codebench_format')!r})"
            )
        yield f, meta


class _LazyTensors(Mapping):
    """Read-on-access view of a safe_open handle."""

    def __init__(self, handle):
        self._f = handle
        self._keys = list(handle.keys())

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._f.get_tensor(key)

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def _load_plain(
    model: nn.Module,
    folder: Path,
    state: dict[str, torch.Tensor],
    aliases: dict[str, str],
    allowed_missing: set[str],
    assign: bool = False,
) -> None:
    for dup, src in aliases.items():
        if src in state:
            state[dup] = state[src]
    missing, unexpected = model.load_state_dict(state, strict=False, assign=assign)
    bad = sorted(set(missing) - allowed_missing)
    if bad or unexpected:
        raise VariantLoadError(
            f"{folder}: weights do not match config.json (missing {bad[:5]}, unexpected {sorted(unexpected)[:5]})"
        )


def load_int8(folder: Path, device: str = "cpu", kernel: str = "auto", dtype=None) -> nn.Module:
    """Rebuild an int8 variant with the kernel for `device` (see quantize.resolve_kernel)."""
    from codebench.compress.quantize import install_int8, resolve_kernel

    with _open(folder, INT8_FILE, "int8") as (f, meta):
        layout, aliases, mode = (
            json.loads(meta["layout"]),
            json.loads(meta.get("aliases", "{}")),
            meta["mode"],
        )
        kernel = resolve_kernel(mode, device, kernel)
        dtype = _dtype(dtype, device)
        model = _empty_model(folder, dtype)
        tensors = _LazyTensors(f)
        quant_keys = {k for n in layout for k in (f"{n}.qweight", f"{n}.scale")}
        plain = {k: tensors[k] for k in tensors if k not in quant_keys}
        _load_plain(model, folder, plain, aliases, {f"{n}.weight" for n in layout})
        install_int8(model, tensors, layout, mode=mode, kernel=kernel, dtype=dtype, device="cpu")
    if device != "cpu":  # after the swap, so no float copy of the quantized weights reaches the GPU
        model.to(device)
    model._codebench_kernel = kernel
    return model


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype) if t.is_floating_point() else t


def load_sparse(folder: Path, device: str = "cpu", dtype=None) -> nn.Module:
    """Rebuild a bitmask-stored variant as a dense model (tensors unpacked one at a time and
    assigned, not copied, so peak memory stays near one dense model)."""
    dtype = _dtype(dtype, device)
    with _open(folder, SPARSE_FILE, "sparse") as (f, meta):
        sparse, aliases = json.loads(meta["sparse"]), json.loads(meta.get("aliases", "{}"))
        tensors = _LazyTensors(f)
        packed = {k for key in sparse for k in (f"{key}.bitmask", f"{key}.values")}
        state = {k: _cast(tensors[k], dtype) for k in tensors if k not in packed}
        for key, entry in sparse.items():
            dense = unpack_sparse(
                tensors[f"{key}.bitmask"], tensors[f"{key}.values"], entry["shape"]
            )
            state[key] = _cast(dense, dtype)
    model = _empty_model(folder, dtype)
    _load_plain(model, folder, state, aliases, set(), assign=True)
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    return model.to(device)


def load_hf(
    folder: Path, device: str = "cpu", dtype=None, quantization: str | None = None
) -> nn.Module:
    from transformers import AutoModelForCausalLM

    if quantization in CUDA_ONLY and not device.startswith("cuda"):
        raise VariantUnavailable(f"{folder.name}: {CUDA_ONLY[quantization]} (device {device})")
    if quantization:
        return AutoModelForCausalLM.from_pretrained(folder, device_map={"": device})
    return AutoModelForCausalLM.from_pretrained(folder, dtype=_dtype(dtype, device)).to(device)


def load_variant(
    path: str | os.PathLike, device: str = "cpu", *, kernel: str = "auto", dtype=None
) -> nn.Module:
    """Load a variant folder written by codebench.compress, in eval mode.

    device: 'cpu', 'cuda[:n]' or 'auto'. kernel: int8 kernel ('auto' = fbgemm for
    int8-dynamic on CPU, torchao otherwise). dtype: activations ('auto' = fp32 on CPU, bf16
    on CUDA). A variant this machine cannot run raises VariantUnavailable with the reason.
    """
    folder = Path(path)
    info = read_variant_info(folder)
    if info is None:
        raise VariantLoadError(f"{folder}: no codebench_variant.json (not a saved variant)")
    device = _device(device)
    fmt = info.get("format", "hf")
    if fmt == "int8":
        model = load_int8(folder, device, kernel, dtype)
    elif fmt == "sparse":
        model = load_sparse(folder, device, dtype)
    elif fmt == "hf":
        model = load_hf(folder, device, dtype, info.get("quantization"))
    else:
        raise VariantLoadError(
            f"{folder}: unknown variant format {fmt!r} in codebench_variant.json"
        )
    return model.eval()
