"""Job descriptions accepted by `Sandbox.map` / `Sandbox.run`.

Three kinds:

* `TestsJob`   -- assert-style tests with a trusted verdict (HumanEval `check(candidate)`,
  MBPP `assert f(x) == y` lines). `tests` and `prelude` run in the trusted host process;
  `program` runs in the sandbox; the entry point is a proxy that ships arguments in and
  plain data out (see `wire`). `setup` (MBPP test_setup_code) runs in the sandbox after the
  program; the names it assigns become references the tests can pass to the candidate.
* `CallJob`    -- load `program` and call `function` once per element of `calls`
  (an `Args`, a tuple of positional arguments, or a dict of keyword arguments). Every call
  gets a freshly decoded (so deep-copied) set of arguments, its own timeout and an
  output-size limit.
* `ProgramJob` -- run a whole program (python, js, cpp, java, sh) and report its exit status
  and output. With `nonce=True` a trailer that prints a per-run random nonce is appended
  after the tests (MultiPL-E style): passing needs exit status 0 *and* the nonce.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class Args:
    """Positional and keyword arguments for one call: `Args(1, 2, key=3)`."""

    __slots__ = ("args", "kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = tuple(args)
        self.kwargs = dict(kwargs)

    @classmethod
    def of(cls, spec: Any) -> Args:
        """Normalise a call spec: Args, tuple/list (positional), or dict (keyword)."""
        if isinstance(spec, Args):
            return spec
        if isinstance(spec, Mapping):
            return cls(**dict(spec))
        if isinstance(spec, tuple | list):
            return cls(*spec)
        raise TypeError(
            f"a call is an Args, a tuple/list of positional args or a dict, not {type(spec).__name__}"
        )

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"Args({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Args) and (self.args, self.kwargs) == (other.args, other.kwargs)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class TestsJob:
    """Trusted-verdict tests. `entry_point` None: every non-builtin function the tests call."""

    __test__ = False  # not a pytest test class

    program: str
    tests: str
    entry_point: str | None = None
    prelude: str = ""
    setup: str = ""
    timeout: float | None = None
    kind: str = field(default="tests", init=False)


@dataclass(frozen=True)
class CallJob:
    """Call `function` from `program` once per spec in `calls`; timeout is per call."""

    program: str
    function: str
    calls: Sequence[Any]
    timeout: float | None = None
    max_value_bytes: int | None = None
    kind: str = field(default="call", init=False)


@dataclass(frozen=True)
class ProgramJob:
    """Run a whole program; `language` is a key of `languages.TOOLCHAINS` (or an alias)."""

    program: str
    language: str = "python"
    stdin: str = ""
    nonce: bool = False
    timeout: float | None = None
    kind: str = field(default="program", init=False)


Job = TestsJob | CallJob | ProgramJob
