"""What each stage writes to `runs/<name>/results/<stage>.json`: one pydantic model per file.

| file                                  | model               | written by                       |
|---------------------------------------|---------------------|----------------------------------|
| `results/base_model.json`             | `BaseModelResults`  | 00 (`tiny.build`, `stages.model`) |
| `results/build_data.json`             | `BuildDataResults`  | 01 (`codeio.pipeline.build`)     |
| `results/finetune.json`               | `FinetuneResults`   | 02 (`train.trainer.finetune`)    |
| `results/<variant>.json` (GRPO)       | `GRPOResults`       | 02 (`train.grpo.grpo_finetune`)  |
| `results/compress.json`               | `CompressResults`   | 03 (`stages.compress`)           |
| `eval/<variant>/<bench>/results.json` | `BenchmarkResults`  | 04 (`bench.runner.evaluate`)     |
| `results/evaluate.json`               | `EvaluateResults`   | 04 (`stages.evaluate`)           |
| `results/report.json`                 | `ReportResults`     | 05 (`stages.report`)             |

Each model types the fields its readers use (`report`, `plots`, `bench.suite`) and keeps
every other field as written (`extra="allow"`), so a file round-trips unchanged. `version`
is the schema version: `write` stamps `VERSION`, `read` refuses a file written by a newer
schema and reads files from before the field existed as version 0. Writers call `write`, readers
call `read` (None when the file does not exist, `ResultsError` naming the file and the field
when it does not match).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from codebench.records import write_json

VERSION = 1


class ResultsError(ValueError):
    """A results file that is not JSON, does not match its model, or is from a newer schema."""


class _Open(BaseModel):
    """Typed fields plus everything else the writer put there, kept as written."""

    model_config = ConfigDict(extra="allow")


class StageResults(_Open):
    """Base of every results file: the schema `version` (0: written before it was recorded)."""

    FILE: ClassVar[str] = ""
    version: int = 0


# --------------------------------------------------------------------------- 00
class Perplexity(_Open):
    """Held-out perplexity (`models.perplexity`)."""

    ppl: float | None
    nll: float | None = None
    tokens: int = 0


class BaseModelResults(StageResults):
    """results/base_model.json: the base model (trained tiny model or a registered hub/path)."""

    FILE: ClassVar[str] = "base_model"
    base: str
    model_dir: str
    parameters: int
    heldout_perplexity: Perplexity
    # a base trained here (tiny) only:
    history: dict[str, list[Any]] | None = None  # step, train_loss, lr, eval_step, heldout_loss
    tokens_seen: int | None = None
    train_seconds: float | None = None
    wall_seconds: float | None = None
    final_train_loss: float | None = None
    final_heldout_loss: float | None = None


# --------------------------------------------------------------------------- 01
class BuildDataResults(StageResults):
    """results/build_data.json: the CodeI/O build's funnel (records per step, in order), drop
    reasons per stage, counts and verification statuses."""

    FILE: ClassVar[str] = "build_data"
    funnel: dict[str, int]
    drop_reasons: dict[str, dict[str, int]] = {}
    counts: dict[str, Any] = {}
    statuses: dict[str, dict[str, dict[str, int]]] = {}  # turn -> direction -> status -> n
    assembly: dict[str, int] = {}  # how the SFT records were made ("sft:revised-gold": n, ...)
    family_sft: dict[str, Any] = {}  # pyfamilies records added to the SFT mix (kept, removed)
    truncated_turn1: int | None = None
    reproduction: dict[str, Any] = {}
    seconds: float | None = None


# --------------------------------------------------------------------------- 02
class FinetuneResults(StageResults):
    """results/finetune.json: SFT method, trl's log history (the loss curves), perplexities."""

    FILE: ClassVar[str] = "finetune"
    method: str
    log_history: list[dict[str, Any]] = []
    train: dict[str, Any] = {}  # steps, seconds, tokens per second, train loss
    val_ppl_before: float | None = None
    val_ppl_after: float | None = None
    expected_lr: list[Any] | None = None  # the schedule's lr per step (the lr figure)
    lengths: list[int] = []  # tokens per kept example (the length figure)
    data: dict[str, Any] = {}  # data path, sha256, prepared-data summary (max_length, n_dropped)
    device: str | None = None
    dtype: str | None = None
    attention: str | None = None
    packing_check_max_abs_diff: float | None = None
    resumed_from: Any = None  # the checkpoint it resumed from
    schedule: Any = None
    artifacts: dict[str, Any] | None = None


class GRPOResults(StageResults):
    """results/<variant>.json of a GRPO run (file named by the variant)."""

    variant: str
    method: Literal["grpo"] = "grpo"
    settings: dict[str, Any] = {}  # GRPOSettings as run
    tasks: dict[str, Any] = {}  # rows, used, contaminated, reference_failed
    curve: list[dict[str, Any]] = []  # per step: mean reward, pass rate, outcomes, timings
    train: dict[str, Any] = {}  # steps, seconds, completions
    rewards_log: str | None = None
    artifacts: dict[str, Any] | None = None


# --------------------------------------------------------------------------- 03
class ModelMeasure(_Open):
    """Headline numbers of one measured model (`stages.compress`): MB of weights on disk, decode
    ms per token, held-out perplexity, peak RSS, optional pass@1."""

    size_mb: float | None = None
    ms_per_token: float | None = None
    perplexity: float | None = None
    peak_rss_mb: float | None = None
    pass_at_1: float | None = None

    def numbers(self) -> dict[str, Any]:
        """Every field as written, typed ones and the measurement's own (weight_bytes, ...)."""
        return self.model_dump(exclude_unset=True)


class CompressSource(_Open):
    name: str
    path: str
    fingerprint: str | None = None


class CompressVariant(ModelMeasure):
    """One variant row: ok (measured), skipped (`reason`) or failed (`error`)."""

    spec: str
    name: str
    status: Literal["ok", "skipped", "failed"]
    reason: str | None = None
    error: str | None = None
    kind: str | None = None
    parent: str | None = None
    measure: dict[str, Any] = {}  # the full measurement (bytes, latencies, RSS, kernel)
    info: dict[str, Any] = {}  # codebench_variant.json (sparsity per layer, structure)


class CompressReference(ModelMeasure):
    """The source model, measured like the variants."""

    name: str


class CompressResults(StageResults):
    """results/compress.json: the source model, its measurement and one row per variant."""

    FILE: ClassVar[str] = "compress"
    source: CompressSource
    device: str
    reference: CompressReference
    variants: list[CompressVariant] = []


# --------------------------------------------------------------------------- 04
class Metric(_Open):
    """One metric of a benchmark result: value, 95% interval where there is one, problems."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    problems: int | None = None


class BenchmarkResults(StageResults):
    """eval/<variant>/<bench>/results.json: the benchmark spec, status (ok / skipped /
    canary-failed / incomplete), the reason when it is not ok, the settings, metrics, canaries,
    counts."""

    benchmark: str | None = None
    status: str = "ok"
    reason: str | None = None
    config: dict[str, Any] = {}  # the EvalConfig it ran with
    metrics: dict[str, Metric] = {}
    canary: dict[str, Any] | None = None
    problems: int | None = None
    samples: int | None = None
    per_problem: dict[str, Any] = {}  # task_id -> {"n": samples, "c": passed}
    model_key: str | None = None  # runs.model_content_key of the evaluated model folder


class EvaluateResults(StageResults):
    """results/evaluate.json: what stage 04 asked for, what was missing or skipped, the score
    rows (`bench.suite.results_table`) and every evaluation's canary verdict."""

    FILE: ClassVar[str] = "evaluate"
    variants: list[str]
    benchmarks: list[str]
    missing_variants: list[str] = []
    skipped: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    canaries: dict[str, bool | None] = {}


# --------------------------------------------------------------------------- 05
class ReportResults(StageResults):
    """results/report.json: report.md's path, the figures (None: no data), stage rows, warnings."""

    FILE: ClassVar[str] = "report"
    report: str
    figures: dict[str, str | None] = {}
    stages: list[dict[str, Any]] = []
    warnings: list[str] = []


R = TypeVar("R", bound=StageResults)


def _describe(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: {where}: {first['msg']}{more}"


def dump(model: type[R], payload: dict[str, Any], path: str | os.PathLike = "") -> dict[str, Any]:
    """`payload` checked against `model`, as the JSON-ready dict `write` stores (with `version`)."""
    try:
        obj = model.model_validate({**payload, "version": VERSION})
    except ValidationError as e:
        raise ResultsError(_describe(Path(path or model.FILE), e)) from None
    return obj.model_dump(mode="python", exclude_unset=True)


def write(path: str | os.PathLike, model: type[R], payload: dict[str, Any]) -> dict[str, Any]:
    """Check `payload` against `model`, write it to `path` (atomically) with the schema
    version, and return what was written."""
    data = dump(model, payload, path)
    write_json(path, data)
    return data


def write_stage(run: Any, model: type[R], payload: dict[str, Any]) -> dict[str, Any]:
    """`write` to the run's results/<model.FILE>.json."""
    return write(run.result_file(model.FILE), model, payload)


def read(path: str | os.PathLike, model: type[R]) -> R | None:
    """The results file at `path` as `model`; None when it does not exist."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ResultsError(f"{p}: not JSON ({e})") from None
    if not isinstance(raw, dict):
        raise ResultsError(f"{p}: expected a JSON object, got {type(raw).__name__}")
    try:
        obj = model.model_validate(raw)
    except ValidationError as e:
        raise ResultsError(_describe(p, e)) from None
    if obj.version > VERSION:
        raise ResultsError(
            f"{p}: results schema version {obj.version}, newer than this codebench's {VERSION}"
        )
    return obj


def read_stage(run: Any, model: type[R]) -> R | None:
    """`read` the run's results/<model.FILE>.json."""
    return read(run.result_file(model.FILE), model)
