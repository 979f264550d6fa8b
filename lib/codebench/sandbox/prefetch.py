"""One round trip per sample: predict the calls trusted tests will make, run them in a batch.

A round trip to the sandbox per call costs more than most HumanEval/MBPP calls themselves.
Before running a sample's tests we *predict* the sequence of calls they will make, from

* what the same tests did last time they ran to the end (learned, per tests text), else
* the tests' source: `name(<literals>)` calls in straight-line code, in evaluation order.

The sample process then loads the program and answers the whole batch in one go (and, when
the prediction is believed complete, is killed and swept in the same round trip). The
trusted tests run exactly as before; the proxy checks that each call it is asked to make is
the next predicted one (same function, byte-identical encoded arguments) and only then uses
the batched answer, in order. On the first divergence it falls back to live calls: a fresh
sample process that first replays the calls made so far (so a stateful program is in the
same state), then continues call by call. Verdicts are therefore those of live calls; the
only observable difference is CPU spent on predicted calls the tests never reach.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from codebench.sandbox import wire
from codebench.sandbox.jobs import TestsJob
from codebench.sandbox.outcome import Outcome
from codebench.sandbox.runner import Session, classify_death, decode_reply, reply_value
from codebench.sandbox.trusted import SampleAbort, parse

_LEARNED: dict[str, Plan] = {}
_LOCK = threading.Lock()
_MAX_LEARNED = 20_000


@dataclass(frozen=True)
class Plan:
    """Predicted call requests in order; `complete`: believed to be all of them."""

    calls: tuple[bytes, ...]
    complete: bool


class _Stop(Exception):
    pass


def job_key(job: TestsJob) -> str:
    """Identity of a test suite (the prediction cache key)."""
    h = hashlib.sha1()
    for part in (job.tests, job.prelude, job.entry_point or "", job.setup):
        h.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


class _Extractor:
    """Collect predictable proxy calls in evaluation order; raise _Stop where order is unknown."""

    def __init__(self, tree: ast.Module, targets: set[str], refs: set[str]) -> None:
        self.funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        self.targets, self.refs = targets, refs
        self.modules = {
            (a.asname or a.name).split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import | ast.ImportFrom)
            for a in n.names
        } | (set(sys.stdlib_module_names) - targets)
        self.calls: list[bytes] = []

    def _arg(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Name) and node.id in self.refs:
            return wire.Ref(node.id)
        return ast.literal_eval(node)

    def _has_call(self, node: ast.AST, names: dict[str, str]) -> bool:
        for sub in ast.walk(node):
            if (
                isinstance(sub, ast.Call)
                and isinstance(sub.func, ast.Name)
                and (sub.func.id in names or sub.func.id in self.funcs)
            ):
                return True
        return False

    def expr(self, node: ast.AST, names: dict[str, str]) -> None:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
            if any(isinstance(a, ast.Starred) for a in node.args) or any(
                k.arg is None for k in node.keywords
            ):
                raise _Stop
            try:
                args = tuple(self._arg(a) for a in node.args)
                kwargs = {k.arg: self._arg(k.value) for k in node.keywords}
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                raise _Stop from None
            self.calls.append(Session.encode_call(names[node.func.id], args, kwargs, True))
            return
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            # a method call: on a module (math.isclose) it is not ours; on anything else it
            # may act on a handle (`Solution().twoSum(...)`), which the plan cannot predict
            base = node.func.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if not (isinstance(base, ast.Name) and base.id in self.modules):
                raise _Stop
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in self.funcs
        ):
            raise _Stop
        if isinstance(
            node,
            ast.BoolOp
            | ast.IfExp
            | ast.Lambda
            | ast.Dict
            | ast.DictComp
            | ast.ListComp
            | ast.SetComp
            | ast.GeneratorExp
            | ast.NamedExpr
            | ast.Await
            | ast.Yield,
        ):
            if self._has_call(node, names):
                raise _Stop
            return
        for child in ast.iter_child_nodes(node):
            self.expr(child, names)

    def stmts(self, body: list[ast.stmt], names: dict[str, str], depth: int = 0) -> None:
        for st in body:
            if isinstance(
                st,
                ast.FunctionDef
                | ast.AsyncFunctionDef
                | ast.ClassDef
                | ast.Import
                | ast.ImportFrom
                | ast.Pass
                | ast.Global
                | ast.Nonlocal,
            ):
                continue
            if isinstance(st, ast.Assert):
                self.expr(st.test, names)  # the message only runs on failure
            elif (
                isinstance(st, ast.Expr)
                and isinstance(st.value, ast.Call)
                and isinstance(st.value.func, ast.Name)
                and st.value.func.id in self.funcs
                and depth == 0
            ):
                call = st.value
                fn = self.funcs[call.func.id]
                if call.keywords or len(call.args) > len(fn.args.args):
                    raise _Stop
                inner = {}
                for param, arg in zip(fn.args.args, call.args, strict=False):
                    if isinstance(arg, ast.Name) and arg.id in names:
                        inner[param.arg] = names[arg.id]
                    elif self._has_call(arg, names):
                        raise _Stop
                self.stmts(fn.body, {**names, **inner}, depth + 1)
            elif isinstance(st, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.Expr | ast.Return):
                if st.value is not None:
                    self.expr(st.value, names)
            elif self._has_call(st, names):
                raise _Stop


def static_plan(tests: str, targets: list[str], refs: tuple[str, ...]) -> Plan | None:
    """Predict calls from the tests' source (None when no call can be predicted)."""
    return _static_plan(tests, tuple(targets), tuple(refs))


@functools.lru_cache(maxsize=4096)
def _static_plan(tests: str, targets: tuple[str, ...], refs: tuple[str, ...]) -> Plan | None:
    try:
        tree = parse(tests)
    except SyntaxError:
        return None
    ex = _Extractor(tree, set(targets), set(refs))
    complete = True
    try:
        ex.stmts(tree.body, {t: t for t in targets})
    except (_Stop, SampleAbort):
        complete = False
    return Plan(tuple(ex.calls), complete) if ex.calls else None


def plan_for(job: TestsJob, targets: list[str], refs: tuple[str, ...]) -> Plan | None:
    """The learned plan for these tests, else the static one."""
    return _LEARNED.get(job_key(job)) or static_plan(job.tests, targets, refs)


def learn(job: TestsJob, plan: Plan) -> None:
    """Remember a plan for these tests."""
    with _LOCK:
        if len(_LEARNED) > _MAX_LEARNED:
            _LEARNED.clear()
        _LEARNED[job_key(job)] = plan


class PlannedCaller:
    """The `call` function handed to the trusted tests: batched answers, then live calls."""

    def __init__(
        self,
        sess: Session,
        job: TestsJob,
        plan: Plan | None,
        budget: float,
        deadline: float,
        wall: float,
    ) -> None:
        self.sess, self.job, self.plan = sess, job, plan
        self.budget, self.deadline, self.wall = budget, deadline, wall
        self.seen: list[bytes] = []
        self.replies: list[bytes] = []
        self.death: dict[str, Any] | None = None
        self.on_plan = plan is not None
        self.cpu_base = 0.0
        self.diverged = False
        self.handles: dict[int, Any] = {}

    def begin(self) -> None:
        """Start the sample: load the program and run the predicted batch."""
        if self.plan is None:
            self.sess.load(self.job.program, self.job.setup, self.budget, self.wall, self.budget)
            return
        h, frames = self.sess.start(
            self.job.program,
            self.job.setup,
            self.budget,
            self.wall,
            self.budget,
            list(self.plan.calls),
            end=self.plan.complete,
        )
        decode_reply(h, frames[:1], self.budget, "while loading the program")
        self.replies = frames[1:]
        if h.get("st") != "ok":
            self.death = h

    def cpu_used(self) -> float:
        """CPU seconds the sample has used so far (over every process it had)."""
        return self.cpu_base + self.sess.cpu_used

    def handle(self, hid: int, type_name: str) -> Any:
        """The host-side stand-in for object #hid of the sample (one per id, so `is` works)."""
        h = self.handles.get(hid)
        if h is None:
            from codebench.sandbox.trusted import Handle

            h = self.handles[hid] = Handle(hid, type_name, self.op)
        return h

    def op(self, hid: int, op: str, args: tuple, kwargs: dict, label: str) -> Any:
        """An operation on a held object (see `trusted.Handle`)."""
        payload = Session.encode_call(op, args, kwargs, True, hid)
        return self.send(payload, f"in {label}")

    def __call__(self, name: str, args: tuple, kwargs: dict) -> Any:
        payload = Session.encode_call(name, args, kwargs, True)
        return self.send(payload, f"in call to {name}()")

    def send(self, payload: bytes, during: str) -> Any:
        """Answer one request: from the predicted batch when it is the next predicted one,
        else live."""
        i = len(self.seen)
        self.seen.append(payload)
        if self.on_plan and i < len(self.plan.calls) and payload == self.plan.calls[i]:
            if i < len(self.replies):
                return reply_value(self.replies[i], during, self.handle)
            if self.death is not None and self.death.get("st") != "toolarge":
                raise SampleAbort(*classify_death(self.death, self.budget, during))
        if self.on_plan:
            self._go_live(i)
        left = self.deadline - time.monotonic()
        if left <= 0 or self.cpu_used() >= self.budget:
            raise SampleAbort(Outcome.TIMEOUT, "timed out (sample budget used up)")
        remaining = self.budget - self.cpu_base
        h, frames = self.sess.call_raw(payload, remaining, left)
        return decode_reply(h, frames, remaining, during, self.handle)

    def _go_live(self, i: int) -> None:
        """Leave the plan at call i: keep the batch process if it is exactly there, else
        start a fresh one and replay calls 0..i-1."""
        self.on_plan = False
        calls = self.plan.calls if self.plan else ()
        if i < len(calls) and self.seen[i] != calls[i]:
            self.diverged = True
        if i == len(calls) and self.death is None and self.sess.alive:
            return  # a partial plan fully consumed: continue on the same process
        self.cpu_base += self.sess.cpu_used
        self.sess.end()
        left = self.deadline - time.monotonic()
        remaining = self.budget - self.cpu_base
        if left <= 0 or remaining <= 0:
            raise SampleAbort(Outcome.TIMEOUT, "timed out (sample budget used up)")
        self.sess.cpu_used = 0.0
        self.sess.load(self.job.program, self.job.setup, remaining, left, remaining)
        for payload in self.seen[:i]:
            h, _ = self.sess.call_raw(
                payload, remaining, max(self.deadline - time.monotonic(), 0.01)
            )
            if h.get("st") != "ok":
                raise SampleAbort(*classify_death(h, remaining, "while replaying earlier calls"))

    def learn(self, passed: bool) -> None:
        """Record what the tests actually called, for the next sample of the same tests."""
        if passed and self.seen:
            if (
                self.plan is None
                or self.diverged
                or len(self.seen) != len(self.plan.calls)
                or not self.plan.complete
            ):
                learn(self.job, Plan(tuple(self.seen), True))
        elif self.diverged and self.plan is not None:
            common = 0
            for a, b in zip(self.seen, self.plan.calls, strict=False):
                if a != b:
                    break
                common += 1
            learn(self.job, Plan(self.plan.calls[:common], False))
