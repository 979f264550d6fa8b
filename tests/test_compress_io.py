"""Saved variants round-trip from disk through load_variant / codebench.models, and generate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.compress import CODE, save_random_model

from codebench import models
from codebench.compress import io
from codebench.compress.build import build_variant
from codebench.compress.measure import dir_bytes
from codebench.compress.variants import VariantUnavailable
from codebench.runs import read_variant_info

CPU_SPECS = [
    "int8-dynamic",
    "int8-weight",
    "magnitude-50",
    "magnitude-global-50",
    "wanda-50",
    "2:4",
    "mlp-prune-25",
    "head-prune-50",
    "mlp-prune-25+int8-dynamic",
]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("src")
    return {
        "llama": save_random_model(
            root / "llama", "llama", hidden=64, inter=128, layers=2, heads=4
        ),
        "codegen": save_random_model(root / "codegen", "codegen", n_embd=64, layers=2, heads=4),
    }


def _generate(model, path) -> torch.Tensor:
    tok = models.load_tokenizer(str(path))
    enc = tok("def add(a, b):", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(
            **enc, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id
        )
    assert out.shape[1] == enc["input_ids"].shape[1] + 4
    return out


@pytest.mark.parametrize("spec", CPU_SPECS)
@pytest.mark.parametrize("arch", ["llama", "codegen"])
def test_variant_round_trips_and_generates(arch, spec, sources, tmp_path) -> None:
    dest = tmp_path / spec
    try:
        build_variant(
            sources[arch],
            spec,
            dest,
            calibration_texts=list(CODE) * 8,
            calibration_sequences=4,
            calibration_seq_len=32,
        )
    except VariantUnavailable as e:
        assert arch == "codegen" and spec == "head-prune-50", (
            e
        )  # CodeGen's fused qkv: reported, not crashed
        return
    info = read_variant_info(dest)
    assert info["loader"] == "codebench.compress" and info["spec"] == spec
    model = models.load_model(
        str(dest), "cpu"
    )  # through the public loader and codebench_variant.json
    _generate(model, dest)
    model2, tok = models.load(
        str(dest), "cpu"
    )  # tokenizer alignment works on quantized modules too
    assert tok.pad_token_id is not None


def test_int8_kernels_agree_with_full_precision(sources, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    src = sources["llama"]
    ref_model = AutoModelForCausalLM.from_pretrained(src).eval()
    x = torch.randint(2, 300, (2, 12))
    with torch.no_grad():
        ref = ref_model(x).logits
        for spec, kernels in (
            ("int8-dynamic", ("fbgemm", "torchao")),
            ("int8-weight", ("torchao",)),
        ):
            build_variant(src, spec, tmp_path / spec)
            for kernel in kernels:
                model = io.load_variant(tmp_path / spec, "cpu", kernel=kernel)
                assert model._codebench_kernel == kernel
                err = (model(x).logits - ref).abs().max() / ref.abs().max()
                assert err < 0.05, (spec, kernel, float(err))
    with pytest.raises(VariantUnavailable, match="int8-dynamic only"):
        io.load_variant(tmp_path / "int8-weight", "cpu", kernel="fbgemm")


def test_int8_file_layout_stores_tied_embedding_once(sources, tmp_path) -> None:
    from safetensors import safe_open

    build_variant(sources["llama"], "int8-dynamic", tmp_path / "v")
    with safe_open(str(tmp_path / "v" / io.INT8_FILE), "pt") as f:
        keys, meta = set(f.keys()), f.metadata()
        assert f.get_tensor("model.embed_tokens.qweight").dtype == torch.int8
    layout = json.loads(meta["layout"])
    assert layout["lm_head"]["tied_to"] == "model.embed_tokens"
    assert "lm_head.qweight" not in keys and not any(
        k.endswith(".weight") and "proj" in k for k in keys
    )


def test_sizes_come_from_files_not_memory_footprint(sources, tmp_path) -> None:
    """get_memory_footprint() reports full-precision sizes for torchao weights; the files do not."""
    from transformers import AutoModelForCausalLM

    src = sources["codegen"]  # untied head: torchao Int8Tensor weights everywhere
    build_variant(src, "int8-weight", tmp_path / "q", quantize_embeddings=False)
    fp32 = dir_bytes(src)["weight_bytes"]
    q = dir_bytes(tmp_path / "q")["weight_bytes"]
    model = io.load_variant(tmp_path / "q", "cpu", kernel="torchao")
    fp_footprint = AutoModelForCausalLM.from_pretrained(src).get_memory_footprint()
    assert (
        model.get_memory_footprint() > 0.5 * fp_footprint
    )  # the pitfall: int8 weights counted as fp32
    lin_params = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert q < fp32 - 2.5 * lin_params  # the Linear weights shrank ~4x on disk


def test_sparse_storage_exact_and_smaller(sources, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    build_variant(sources["codegen"], "magnitude-50", tmp_path / "sparse", sparse_storage=True)
    build_variant(sources["codegen"], "magnitude-50", tmp_path / "dense", sparse_storage=False)
    assert read_variant_info(tmp_path / "sparse")["format"] == "sparse"
    a = io.load_variant(tmp_path / "sparse", "cpu")
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "dense")
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb and torch.equal(pa, pb), na
    assert (
        dir_bytes(tmp_path / "sparse")["weight_bytes"]
        < 0.8 * dir_bytes(tmp_path / "dense")["weight_bytes"]
    )


def test_pack_sparse_round_trip_planted() -> None:
    w = torch.tensor([[0.0, 1.5, 0.0], [-2.0, 0.0, 3.0]])
    bits, values = io.pack_sparse(w)
    assert values.tolist() == [1.5, -2.0, 3.0]
    assert torch.equal(io.unpack_sparse(bits, values, [2, 3]), w)


def test_cuda_only_variants_report_unavailable(sources, tmp_path) -> None:
    for spec in ("nf4", "bnb-int8", "int4-weight"):
        with pytest.raises(VariantUnavailable, match="CUDA"):
            build_variant(sources["llama"], spec, tmp_path / spec)
        assert not (tmp_path / spec).exists()
    # a folder saved by a GPU machine, loaded here: reported, not crashed
    (tmp_path / "gpu").mkdir()
    (tmp_path / "gpu" / "codebench_variant.json").write_text(
        json.dumps(
            {
                "kind": "quantized",
                "parent": "base",
                "loader": "codebench.compress",
                "format": "hf",
                "quantization": "nf4",
            }
        )
    )
    with pytest.raises(VariantUnavailable, match="CUDA"):
        io.load_variant(tmp_path / "gpu", "cpu")


def test_bad_folders_named(tmp_path) -> None:
    with pytest.raises(io.VariantLoadError, match="no codebench_variant.json"):
        io.load_variant(tmp_path, "cpu")
    (tmp_path / "codebench_variant.json").write_text(
        json.dumps({"kind": "quantized", "loader": "codebench.compress", "format": "int8"})
    )
    with pytest.raises(io.VariantLoadError, match="codebench_int8.safetensors is missing"):
        io.load_variant(tmp_path, "cpu")


@pytest.mark.parametrize("spec", ["magnitude-50", "wanda-50", "mlp-prune-25", "head-prune-50"])
def test_hf_format_variants_load_with_plain_from_pretrained(spec, sources, tmp_path) -> None:
    """Where the format allows (format 'hf': pruned weights stored dense, structured pruning
    with a rewritten config), a variant folder is an ordinary transformers checkpoint:
    `AutoModelForCausalLM.from_pretrained` loads it without codebench and computes the same
    logits as `load_variant`. (The 'int8' and 'sparse' layouts are codebench's own; see
    docs/compression.md, Formats and loading.)"""
    from transformers import AutoModelForCausalLM

    dest = tmp_path / spec
    build_variant(
        sources["llama"],
        spec,
        dest,
        calibration_texts=list(CODE) * 8,
        calibration_sequences=4,
        calibration_seq_len=32,
        sparse_storage=False,
    )
    assert read_variant_info(dest)["format"] == "hf"
    plain = AutoModelForCausalLM.from_pretrained(dest, dtype=torch.float32).eval()
    ours = io.load_variant(dest, "cpu", dtype=torch.float32)
    ids = models.load_tokenizer(str(dest))("def add(a, b):", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, ours(ids).logits)
