"""Variant specs: parsing, folder names, what runs where, profile validation."""

from __future__ import annotations

import pytest

from codebench.compress.variants import (
    SpecError,
    parse_spec,
    parse_specs,
    unavailable_reason,
    variant_name,
)
from codebench.params import CompressSection, ProfileError, stage_config


@pytest.mark.parametrize(
    "spec, canonical, name, kinds",
    [
        ("int8-dynamic", "int8-dynamic", "int8-dynamic", ["quantize"]),
        ("magnitude-50", "magnitude-50", "magnitude-50", ["prune"]),
        ("magnitude-global-37.5", "magnitude-global-37.5", "magnitude-global-37.5", ["prune"]),
        ("wanda-50", "wanda-50", "wanda-50", ["prune"]),
        ("2:4", "2:4", "2of4", ["semi"]),
        ("magnitude-2:4", "2:4", "2of4", ["semi"]),
        ("wanda-2:4", "wanda-2:4", "wanda-2of4", ["semi"]),
        ("mlp-prune-25", "mlp-prune-25", "mlp-prune-25", ["structured"]),
        (
            " mlp-prune-25 + int8-dynamic ",
            "mlp-prune-25+int8-dynamic",
            "mlp-prune-25+int8-dynamic",
            ["structured", "quantize"],
        ),
    ],
)
def test_parse(spec, canonical, name, kinds) -> None:
    v = parse_spec(spec)
    assert v.spec == canonical and v.name == name
    assert [s.kind for s in v.steps] == kinds


def test_amounts() -> None:
    assert parse_spec("wanda-50").steps[0].amount == 0.5
    assert parse_spec("magnitude-global-37.5").steps[0].amount == 0.375
    assert parse_spec("2:4").steps[0].amount == 0.5


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("foo", "unknown method 'foo'"),
        ("magnitude-0", "expected 0 < pct < 100"),
        ("int8-dynamic+magnitude-50", "must come last"),
        ("int8-dynamic+int8-weight", "at most one quantization"),
        ("wanda-50+2:4", "at most one unstructured"),
        ("magnitude-50+mlp-prune-25", "structured pruning must come before"),
        ("wanda-50+nf4", "structured pruning only"),
        ("", "empty spec"),
        ("int8-dynamic+", "empty step"),
    ],
)
def test_bad_specs_name_the_spec(spec, fragment) -> None:
    with pytest.raises(SpecError) as e:
        parse_spec(spec)
    assert fragment in str(e.value) and repr(spec) in str(e.value)


def test_duplicate_folder_names_rejected() -> None:
    with pytest.raises(SpecError, match="same variant"):
        parse_specs(["2:4", "magnitude-2:4"])


def test_variant_name_has_no_colon() -> None:
    assert ":" not in variant_name("wanda-2:4")


@pytest.mark.parametrize("spec", ["nf4", "bnb-int8", "int4-weight", "mlp-prune-25+nf4"])
def test_cuda_only_variants_unavailable_on_cpu(spec) -> None:
    reason = unavailable_reason(parse_spec(spec), "cpu")
    assert reason and "CUDA" in reason


@pytest.mark.parametrize(
    "spec",
    [
        "int8-dynamic",
        "int8-weight",
        "magnitude-50",
        "wanda-50",
        "2:4",
        "mlp-prune-25",
        "head-prune-50",
    ],
)
def test_cpu_variants_available(spec) -> None:
    assert unavailable_reason(parse_spec(spec), "cpu") is None


def test_section_defaults_parse_and_bad_spec_is_a_profile_error(tmp_path) -> None:
    parse_specs(CompressSection().variants)
    ns = {
        "profile": "t",
        "seed": 0,
        "device": "cpu",
        "data_dir": None,
        "run_dir": str(tmp_path / "r"),
        "figures_dir": str(tmp_path / "f"),
        "variants": ["int8-dynamic", "int9"],
    }
    with pytest.raises(ProfileError, match=r"variants: .*'int9'"):
        stage_config("compress", ns)
