"""Outcomes and result records returned by every sandbox job.

`Outcome` is a str Enum, so `result.outcome == "passed"` works and JSON encodes cleanly.
`Result` is what every job returns; `CallResult` is one element of `Result.values` for
`call` jobs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """How a job (or one call) ended (a str Enum: compares equal to its value)."""

    PASSED = "passed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    OUT_OF_MEMORY = "out-of-memory"
    SANDBOX_ERROR = "sandbox-error"
    TOOLCHAIN_MISSING = "toolchain-missing"


@dataclass
class CallResult:
    """One call of a `call` job.

    outcome is PASSED when the function returned a value (decoded into `value` as plain data),
    FAILED when it raised (`error` is "TypeName: message") or returned something that cannot
    be sent as plain data, TIMEOUT / CRASHED / OUT_OF_MEMORY when the process died or ran out
    of time during this call.
    """

    outcome: Outcome
    value: Any = None
    error: str = ""
    duration_s: float = 0.0

    def __post_init__(self) -> None:
        self.error = safe_text(self.error)

    @property
    def ok(self) -> bool:
        """True when the call returned a value."""
        return self.outcome is Outcome.PASSED


@dataclass
class Result:
    """The result of one job.

    passed        True only for Outcome.PASSED (always equal to `outcome is Outcome.PASSED`).
    detail        the failing assertion / exception / error tail (truncated), "" when passed.
    stdout/stderr what the sandboxed process printed (truncated; see `Sandbox(max_output=)`).
    exit_code     process exit status for `run_program` jobs (negative: killed by signal).
    values        for `call` jobs: one CallResult per requested call, in order.
    attempts      2 when the job timed out and was retried.
    isolation     how the job ran: "bwrap" (namespaces + seccomp filter), "bwrap-no-seccomp"
                  or "unsafe-fallback" (no namespaces; only with an explicit opt-in).
    first_pass    for a retried job: the outcome and detail of its first attempt.
    """

    outcome: Outcome
    detail: str = ""
    duration_s: float = 0.0
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    values: list[CallResult] | None = None
    attempts: int = 1
    isolation: str = ""
    first_pass: dict[str, str] | None = None
    passed: bool = field(init=False)

    def __post_init__(self) -> None:
        self.outcome = Outcome(self.outcome)
        self.passed = self.outcome is Outcome.PASSED
        self.detail = safe_text(self.detail)
        self.stdout = safe_text(self.stdout)
        self.stderr = safe_text(self.stderr)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (outcome as its string value)."""
        d = asdict(self)
        d["outcome"] = self.outcome.value
        if self.values is not None:
            d["values"] = [dict(v, outcome=Outcome(v["outcome"]).value) for v in d["values"]]
        return d


def safe_text(text: str) -> str:
    """`text` encodable as UTF-8: lone surrogates (model-controlled exception messages,
    printed text) become backslash escapes (\\ud800), so records holding them can be
    written; NULs and everything else are kept."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def truncate(text: str, limit: int) -> str:
    """Keep the head and tail of `text` within about `limit` characters."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    return f"{text[:head]}\n...[{len(text) - limit} chars truncated]...\n{text[-tail:]}"
