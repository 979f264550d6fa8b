"""Reproduction profiles: load a YAML profile, validate it, hand each stage its section.

A profile (`params/<name>.yaml`) has common keys (name, seed, device, data_dir, stages)
and one section per stage. Every value is typed, unknown keys are rejected, and every
error names the file and the key path. Notebooks call `stage_config` on their own
parameters so "Run All" in JupyterLab validates exactly like a papermill run.

Each stage's section class is owned by that stage's module author; keep fields plain
(str, int, float, bool, lists and dicts of those) because papermill injects them as literals.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

STAGES: tuple[str, ...] = ("model", "data", "finetune", "compress", "evaluate", "report")
COMMON_KEYS: tuple[str, ...] = ("profile", "seed", "device", "data_dir", "run_dir", "figures_dir")


class ProfileError(ValueError):
    """A profile or stage parameter set is invalid. The message names file and key path."""


class Section(BaseModel):
    """Base for every profile section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- 00 model
class TinyModelConfig(Section):
    """The embedded offline model: a byte-level BPE tokenizer and a small Llama trained here."""

    source: str = Field("stdlib", description="'stdlib' (this interpreter's standard library), a folder of .py files, or a JSONL with a 'content'/'text' field")
    max_files: int = Field(400, ge=1, description="at most this many source files are read")
    max_chars: int = Field(4_000_000, ge=10_000, description="corpus size cap in characters")
    vocab_size: int = Field(2048, ge=300, le=65536, description="BPE vocabulary size including special tokens")
    hidden_size: int = Field(128, ge=16, description="model width")
    intermediate_size: int = Field(384, ge=16, description="MLP width")
    num_layers: int = Field(4, ge=1, description="transformer blocks")
    num_heads: int = Field(4, ge=1, description="attention heads")
    context: int = Field(256, ge=32, description="training sequence length (and max positions)")
    fim_rate: float = Field(0.5, ge=0.0, le=1.0, description="share of training examples rewritten as fill-in-the-middle")
    steps: int = Field(300, ge=1, description="optimizer steps")
    batch_size: int = Field(16, ge=1, description="sequences per step")
    lr: float = Field(3e-3, gt=0, description="peak learning rate (cosine decay, linear warm-up)")
    warmup_steps: int = Field(30, ge=0, description="linear warm-up steps")
    eval_every: int = Field(50, ge=1, description="held-out loss every N steps")
    heldout_fraction: float = Field(0.05, gt=0, lt=0.5, description="share of files kept for held-out loss")
    threads: int = Field(0, ge=0, description="torch CPU threads (0 = all cores)")


class ModelSection(Section):
    """Stage 00_base_model: which base model every later stage starts from."""

    base: str = Field("tiny", description="'tiny', a hub id (e.g. Salesforce/codegen-350M-mono) or a local path")
    revision: str | None = Field(None, description="hub revision (branch, tag or commit)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="auto = bf16 on GPU, fp32 on CPU")
    trust_remote_code: bool = Field(False, description="allow model code from the hub")
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig)


# --------------------------------------------------------------------------- 01 data
class DataSection(Section):
    """Stage 01_build_data: the CodeI/O pipeline. Fields owned by codebench.codeio."""

    source: str = Field("codeio-demo", description="'codeio-demo' (data_dir/codeio), a JSONL of raw code or unified records, or a folder of .py files")
    limit: int = Field(64, ge=1, description="at most this many source records")


# --------------------------------------------------------------------------- 02 finetune
class FinetuneSection(Section):
    """Stage 02_finetune: LoRA / QLoRA SFT. Fields owned by codebench.train."""

    method: Literal["lora", "qlora", "full"] = "lora"
    max_steps: int = Field(60, ge=1)


# --------------------------------------------------------------------------- 03 compress
class CompressSection(Section):
    """Stage 03_compress: quantization and pruning variants. Fields owned by codebench.compress."""

    variants: list[str] = Field(default_factory=lambda: ["int8-dynamic", "magnitude-50"])


# --------------------------------------------------------------------------- 04 evaluate
class EvaluateSection(Section):
    """Stage 04_evaluate: benchmarks x variants. Fields owned by codebench.bench."""

    benchmarks: list[str] = Field(default_factory=lambda: ["humaneval"])
    variants: list[str] = Field(default_factory=lambda: ["base"])
    n: int = Field(1, ge=1)
    limit: int | None = Field(20, ge=1)


# --------------------------------------------------------------------------- 05 report
class ReportSection(Section):
    """Stage 05_report: tables and figures over every stage's results."""

    title: str = ""


SECTION_MODELS: dict[str, type[Section]] = {
    "model": ModelSection,
    "data": DataSection,
    "finetune": FinetuneSection,
    "compress": CompressSection,
    "evaluate": EvaluateSection,
    "report": ReportSection,
}


class Profile(Section):
    """A whole reproduction profile."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="run folder name: runs/<name>, figures/<name>")
    description: str = ""
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data_dir: str | None = Field(None, description="benchmark data; default $CODEBENCH_DATA")
    stages: list[Literal["model", "data", "finetune", "compress", "evaluate", "report"]] | None = Field(
        None, description="stages to run, in pipeline order; default all"
    )
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    finetune: FinetuneSection = Field(default_factory=FinetuneSection)
    compress: CompressSection = Field(default_factory=CompressSection)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    report: ReportSection = Field(default_factory=ReportSection)

    def enabled_stages(self) -> list[str]:
        """Stages to run, in pipeline order."""
        chosen = set(self.stages) if self.stages is not None else set(STAGES)
        return [s for s in STAGES if s in chosen]


# --------------------------------------------------------------------------- loading
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of silently keeping the last."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise ProfileError(f"line {mark.line + 1} column {mark.column + 1}: duplicate key {key!r}")
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def format_validation_error(where: str, err: ValidationError) -> str:
    """One line per problem: `where: key.path: message`."""
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            parent = e["loc"][:-1]
            msg = f"unknown key{_allowed_hint(parent)}"
        elif e["type"] == "missing":
            msg = "required key is missing"
        else:
            got = e.get("input")
            msg = f"{e['msg']} (got {got!r})" if not isinstance(got, dict) else e["msg"]
        lines.append(f"{where}: {path}: {msg}")
    return "\n".join(lines)


def _allowed_hint(parent: tuple) -> str:
    model: Any = Profile
    for part in parent:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return ""
        model = ann
    return " (allowed: " + ", ".join(model.model_fields) + ")"


def load_profile(path: str | os.PathLike) -> Profile:
    """Read and validate a profile; raise ProfileError naming the file and key path."""
    p = Path(path)
    if not p.is_file():
        raise ProfileError(f"{p}: profile not found")
    try:
        raw = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except ProfileError as e:
        raise ProfileError(f"{p}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ProfileError(f"{p}:{where}: malformed YAML: {problem}") from None
    except UnicodeDecodeError as e:
        raise ProfileError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if raw is None:
        raise ProfileError(f"{p}: profile is empty")
    if not isinstance(raw, dict):
        raise ProfileError(f"{p}: top level must be a mapping of keys, got {type(raw).__name__}")
    try:
        return Profile.model_validate(raw)
    except ValidationError as e:
        raise ProfileError(format_validation_error(str(p), e)) from None


# --------------------------------------------------------------------------- stage side
@dataclass
class StageContext:
    """What every stage notebook needs besides its own section."""

    profile: str
    seed: int
    device: str
    data_dir: str | None
    run_dir: Path
    figures_dir: Path

    @property
    def run(self):  # -> codebench.runs.RunLayout (imported lazily to keep params light)
        from codebench.runs import RunLayout

        return RunLayout(self.run_dir, self.figures_dir)


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; 'cuda' without a GPU is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise ProfileError(f"device: expected auto, cpu or cuda, got {device!r}")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise ProfileError("device: 'cuda' requested but no CUDA GPU is visible (use device: auto or cpu)")
    return "cpu"


def stage_config(section: str, namespace: dict[str, Any]) -> tuple[StageContext, Section]:
    """Validate a notebook's parameters: common keys plus its section's fields.

    `namespace` is the notebook's `globals()` after the parameters cell (and papermill's
    injected cell). Returns the stage context and the typed section. Seeds python, numpy
    and torch from `seed`.
    """
    if section not in SECTION_MODELS:
        raise ProfileError(f"unknown stage section {section!r} (known: {', '.join(SECTION_MODELS)})")
    model = SECTION_MODELS[section]
    values = {k: namespace[k] for k in model.model_fields if k in namespace}
    try:
        cfg = model.model_validate(values)
    except ValidationError as e:
        raise ProfileError(format_validation_error(f"notebook parameters [{section}]", e)) from None
    missing = [k for k in COMMON_KEYS if k not in namespace]
    if missing:
        raise ProfileError(f"notebook parameters [{section}]: missing common keys {missing}")
    ctx = StageContext(
        profile=str(namespace["profile"]),
        seed=int(namespace["seed"]),
        device=resolve_device(str(namespace["device"])),
        data_dir=namespace["data_dir"],
        run_dir=Path(namespace["run_dir"]).resolve(),
        figures_dir=Path(namespace["figures_dir"]).resolve(),
    )
    seed_everything(ctx.seed)
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    ctx.figures_dir.mkdir(parents=True, exist_ok=True)
    return ctx, cfg


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (if imported) for reproducible stages."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)
