"""Trusted side of assert-style tests: they run here, in the host, never in the sandbox.

The test code (and the benchmark's own prelude, e.g. HumanEval's prompt with helpers such as
`poly` or `encode_cyclic`) is executed in a fresh namespace of the host process. The names
under test are `Proxy` objects: calling one ships the arguments (wire-encoded plain data)
to the sandboxed program and returns the decoded plain result. Model code therefore never
shares a process with the tests, their frames, builtins, assertions or the verdict.

Asserts are guaranteed to run even under PYTHONOPTIMIZE: every `assert` is rewritten into an
explicit `if not ...: raise AssertionError(...)` and the code is compiled with optimize=0.
"""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import importlib
import importlib.util
import linecache
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from codebench.sandbox.outcome import Outcome
from codebench.sandbox.wire import Ref, Remote


class CandidateError(Exception):
    """The sandboxed code raised an exception that is not a builtin exception type."""


class SampleAbort(BaseException):  # noqa: N818 - BaseException so tests cannot swallow it
    """The sample process died, timed out or ran out of memory: stop the tests."""

    def __init__(self, outcome: Outcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome, self.detail = outcome, detail


class _AssertRewriter(ast.NodeTransformer):
    def visit_Assert(self, node: ast.Assert) -> ast.AST:  # noqa: N802
        exc = ast.Call(ast.Name("AssertionError", ast.Load()), [node.msg] if node.msg else [], [])
        new = ast.If(ast.UnaryOp(ast.Not(), node.test), [ast.Raise(exc, None)], [])
        return ast.copy_location(new, node)


# CPython 3.11's AST <-> object conversion keeps a recursion counter that is not thread-safe
# ("SystemError: AST constructor recursion depth mismatch" when two threads parse at once),
# so every parse/compile of an AST here goes through one lock (results are cached anyway).
_AST_LOCK = threading.Lock()


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    """ast.parse under the module's lock (retried once if another thread still raced it)."""
    for attempt in (0, 1):
        try:
            with _AST_LOCK:
                return ast.parse(source, filename)
        except SystemError:
            if attempt:
                raise
    raise AssertionError("unreachable")


@functools.lru_cache(maxsize=2048)
def compile_trusted(source: str, kind: str = "tests") -> Any:
    """Compile trusted test code with asserts made unconditional (cached per source)."""
    filename = f"<{kind} {hashlib.sha1(source.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}>"
    tree = _AssertRewriter().visit(parse(source, filename))
    ast.fix_missing_locations(tree)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    with _AST_LOCK:
        return compile(tree, filename, "exec", dont_inherit=True, optimize=0)


# builtin exceptions that would change the trusted code's control flow rather than fail a
# test: a StopIteration raised through map()/filter() silently ends the iteration there
_NOT_REBUILT = ("StopIteration", "StopAsyncIteration")


def rebuild_exception(type_name: str, module: str, message: str) -> Exception:
    """An exception of the builtin type `type_name` (CandidateError when not builtin, or a
    StopIteration that would end a trusted iteration silently)."""
    cls = getattr(builtins, type_name, None) if module == "builtins" else None
    if type_name in _NOT_REBUILT:
        cls = None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError needs 5 arguments
            pass
    return CandidateError(f"{type_name}: {message}")


class Proxy(Ref):
    """Stands for a function of the sandboxed program inside the trusted tests. Calling it
    calls the function in the sandbox; passing it as an argument (`filter(is_even, xs)` in
    the tests, or to another sandboxed function) gives the sandbox its own function back."""

    def __init__(self, name: str, call: Callable[[str, tuple, dict], Any]) -> None:
        self.name = name
        self.__name__ = self.__qualname__ = name
        self._call = call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<sandboxed function {self.__name__}>"


class Handle(Remote):
    """Stands for an object that stays in the sandboxed program (an instance of a class the
    completion defines, a bound method, a generator, ...) inside the trusted tests.

    Every use of it is a request to the sample process, answered with plain data (or
    another handle): calling it (`Solution()` then `.twoSum(...)`), attribute get/set,
    truth value, len, str, iteration (the sample's `list(obj)`), indexing, `in`. It is
    equal only to itself: `handle == 5` is False whatever the object's `__eq__` says, so
    an object cannot pass an equality test by overriding comparison; its truth value,
    length, text and items are what the sample computes for them, as a plain bool, int,
    str or list would be."""

    __slots__ = ("_type", "_op")

    def __init__(self, hid: int, type_name: str, op: Callable[..., Any]) -> None:
        object.__setattr__(self, "_hid", hid)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_op", op)

    def _do(self, op: str, *args: Any, **kwargs: Any) -> Any:
        return object.__getattribute__(self, "_op")(
            object.__getattribute__(self, "_hid"), op, args, kwargs, repr(self)
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._do("getattr", name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._do("setattr", name, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._do("call", *args, **kwargs)

    def __bool__(self) -> bool:
        return self._do("bool")

    def __len__(self) -> int:
        return self._do("len")

    def __str__(self) -> str:
        return self._do("str")

    def __iter__(self) -> Any:
        items = self._do("list")
        if type(items) is not list:
            raise TypeError("iteration over a sandbox object did not give a list")
        return iter(items)

    def __getitem__(self, key: Any) -> Any:
        return self._do("getitem", key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._do("setitem", key, value)

    def __contains__(self, item: Any) -> bool:
        return self._do("contains", item)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __hash__(self) -> int:
        return object.__getattribute__(self, "_hid")

    def __repr__(self) -> str:
        t = object.__getattribute__(self, "_type")
        return f"<sandbox {t} object #{object.__getattribute__(self, '_hid')}>"


@functools.lru_cache(maxsize=2048)
def assigned_names(source: str) -> tuple[str, ...]:
    """Top-level names a piece of code assigns (the objects MBPP test_setup_code builds)."""
    if not source.strip():
        return ()
    names: list[str] = []
    for node in parse(source).body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for t in targets:
            for sub in ast.walk(t):
                if isinstance(sub, ast.Name) and sub.id not in names:
                    names.append(sub.id)
    return tuple(names)


@functools.lru_cache(maxsize=2048)
def free_names(tests: str, prelude: str = "") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(called, other) names the tests use but neither they, the prelude nor builtins define."""
    defined = set(dir(builtins))
    for src in (prelude, tests):
        for node in ast.walk(parse(src)):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
                defined.add(node.id)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                defined.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.arg):
                defined.add(node.arg)
    called: list[str] = []
    other: list[str] = []
    tree = parse(tests)
    funcs = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in defined:
            bucket = called if id(node) in funcs else other
            if node.id not in bucket:
                bucket.append(node.id)
    return tuple(called), tuple(n for n in other if n not in called)


def _stdlib_module(name: str) -> Any:
    if name in sys.stdlib_module_names and importlib.util.find_spec(name) is not None:
        return importlib.import_module(name)
    return None


def failure_detail(exc: BaseException, limit: int = 2000) -> str:
    """'AssertionError: <failing test line>' or 'Type: message' for a test failure."""
    # the last frame in the trusted tests; walked by hand because `traceback.extract_tb`
    # re-stats every cached source file per call (~4% of the host's time on failing samples)
    last = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename.startswith("<tests "):
            last = (frame.f_code.co_filename, lineno)
    line = linecache.getline(*last).strip() if last else ""
    where = f" (tests line {last[1]}: {line})" if last and line else ""
    msg = str(exc)
    text = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return (text + where)[:limit]


def proxy_names(tests: str, prelude: str, entry_point: str | None, setup: str) -> list[str]:
    """Names that become proxies: the entry point and every other free function the tests call."""
    setup_names = assigned_names(setup)
    called, _ = free_names(tests, prelude)
    names = [entry_point] if entry_point else []
    return names + [n for n in called if n not in setup_names and n not in names]


def run_trusted(
    tests: str,
    prelude: str,
    entry_point: str | None,
    setup: str,
    call: Callable[[str, tuple, dict], Any],
    ref: Callable[[str], Any],
) -> tuple[Outcome, str]:
    """Execute trusted tests against proxies; return (PASSED|FAILED|abort outcome, detail)."""
    ns: dict[str, Any] = {"__name__": "__codebench_tests__", "__builtins__": builtins}
    if prelude.strip():
        exec(compile_trusted(prelude, "prelude"), ns)
    setup_names = assigned_names(setup)
    _, other = free_names(tests, prelude)
    targets = proxy_names(tests, prelude, entry_point, setup)
    for name in targets:
        ns[name] = Proxy(name, call)
    for name in setup_names:
        if name not in ns:
            ns[name] = _stdlib_module(name) or ref(name)
    for name in other:  # used but not called here: a function passed by name, most likely
        if name not in ns:
            ns[name] = _stdlib_module(name) or Proxy(name, call)
    try:
        exec(compile_trusted(tests), ns)
    except SampleAbort as e:
        return e.outcome, e.detail
    except Exception as e:  # noqa: BLE001 - any exception in the tests is a failed sample
        return Outcome.FAILED, failure_detail(e)
    return Outcome.PASSED, ""
