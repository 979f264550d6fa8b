"""pyfamilies: a built-in *smoke* benchmark of small Python functions, in HumanEval format.

Why it exists: the embedded tiny model scores zero on HumanEval, MBPP and the rest, and a
harness that always returned 0 would look the same. This benchmark gives the default run a
number with signal: the tiny model is trained (stage 00) on instances of the same task
families, and evaluated on problems it never saw. It shows that the machinery (training,
generation, extraction, sandbox, pass@k, fine-tuning and compression effects) works end to
end; it says nothing about whether a model is good at programming.

Problems are generated deterministically (no data files) from `FAMILIES`: each family is one
kind of one-line function (add a constant, keep the first k items, count an item, repeat a
string, ...) whose docstring states the constant and shows one example call. A problem is a
(function name, family, constant, argument name) combination; its prompt is the signature
and docstring, the canonical solution is the one-line body, the tests are five asserts in a
HumanEval-style `check(candidate)`.

Disjoint by construction: every (function name, family) pair is either an *evaluation* pair
or a *training* pair (`is_eval_pair`, a stable hash). The `EVAL_PROBLEMS` evaluation
problems use evaluation pairs only; `training_instances()` (what stage 00 mixes into the tiny
model's corpus, and what a fine-tuning mix may use) uses training pairs only. So the model
has seen every family and every name, but never a held-out name with a held-out family.
Stage 00 also runs the project's n-gram decontamination (`codebench.codeio.decontam`, set
`pyfamilies`) over its training instances against the evaluation problems and records the
result.

Protocols and scoring are HumanEval's (`codebench.bench.humaneval`): base (continue the
prompt, cut at the Codex stop set) and instruct; tests run as `check(entry_point)` in the
sandbox's trusted process; the canaries score the canonical solution (must pass) and
`return None` (must fail).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from codebench.bench.humaneval import BASE_STOPS, HumanEval
from codebench.bench.tasks import Problem, register

NAME = "pyfamilies"
EVAL_PROBLEMS = 150  # problems in the benchmark (pass@1 interval about +-0.07 at p = 0.3)
EVAL_SEED = 20240601  # fixed: the benchmark never changes with a profile's seed
# `pyfamilies-600`: the same generator run on to 600 problems (its first 150 are `pyfamilies`,
# same task ids), for comparisons that need narrower intervals than 150 problems give (about
# +-0.03 instead of +-0.05 at p = 0.4-0.5; measured in docs/grpo.md). The `make grpo` profile
# evaluates on it.
LARGE_NAME = "pyfamilies-600"
LARGE_PROBLEMS = 600

# Function names, shared by every family: the docstring, not the name, says what to do.
FUNC_NAMES = (
    "solve",
    "compute",
    "transform",
    "process",
    "handle",
    "apply_rule",
    "evaluate",
    "convert",
    "calc",
    "helper",
    "run_step",
    "work",
    "step",
    "make_value",
    "get_result",
    "answer",
    "do_task",
    "func",
    "op",
    "change",
    "update",
    "mapper",
    "pick",
    "reshape",
)
ARG_NAMES = {
    "int": ("x", "n", "num", "value", "a"),
    "list": ("xs", "nums", "items", "values", "data"),
    "str": ("s", "text", "word", "name"),
}


@dataclass(frozen=True)
class Family:
    """One kind of function: docstring and body templates over the argument {a} and constant {k}."""

    key: str
    kind: str  # argument type: int | list | str
    doc: str  # docstring first line, e.g. "Return {a} plus {k}."
    body: str  # the returned expression, e.g. "{a} + {k}"
    fn: Callable[[Any, Any], Any]  # (argument, constant) -> result, for examples and tests
    constants: tuple  # the constants this family draws from

    def render(self, a: str, k: Any) -> tuple[str, str]:
        kk = repr(k)
        return self.doc.format(a=a, k=kk, kc=k), self.body.format(a=a, k=kk)


_SMALL = tuple(range(2, 10))
_SLICE = tuple(range(1, 6))
_LETTERS = tuple("aeiost")

FAMILIES: tuple[Family, ...] = (
    # integers
    Family("add", "int", "Return {a} plus {k}.", "{a} + {k}", lambda x, k: x + k, _SMALL),
    Family("sub", "int", "Return {a} minus {k}.", "{a} - {k}", lambda x, k: x - k, _SMALL),
    Family("mul", "int", "Return {a} times {k}.", "{a} * {k}", lambda x, k: x * k, _SMALL),
    Family(
        "mod",
        "int",
        "Return {a} modulo {k}.",
        "{a} % {k}",
        lambda x, k: x % k,
        _SMALL,
    ),
    Family(
        "floordiv",
        "int",
        "Return {a} divided by {k}, rounded down.",
        "{a} // {k}",
        lambda x, k: x // k,
        _SMALL,
    ),
    Family(
        "min",
        "int",
        "Return the smaller of {a} and {k}.",
        "min({a}, {k})",
        lambda x, k: min(x, k),
        _SMALL,
    ),
    Family(
        "max",
        "int",
        "Return the larger of {a} and {k}.",
        "max({a}, {k})",
        lambda x, k: max(x, k),
        _SMALL,
    ),
    Family(
        "divisible",
        "int",
        "Return True if {a} is divisible by {k}.",
        "{a} % {k} == 0",
        lambda x, k: x % k == 0,
        _SMALL,
    ),
    # lists of integers
    Family(
        "head",
        "list",
        "Return the first {k} items of {a}.",
        "{a}[:{k}]",
        lambda x, k: x[:k],
        _SLICE,
    ),
    Family(
        "tail",
        "list",
        "Return the last {k} items of {a}.",
        "{a}[-{k}:]",
        lambda x, k: x[-k:],
        _SLICE,
    ),
    Family(
        "drop",
        "list",
        "Return {a} without its first {k} items.",
        "{a}[{k}:]",
        lambda x, k: x[k:],
        _SLICE,
    ),
    Family(
        "greater",
        "list",
        "Return the items of {a} above {k}.",
        "[v for v in {a} if v > {k}]",
        lambda x, k: [v for v in x if v > k],
        _SMALL,
    ),
    Family(
        "less",
        "list",
        "Return the items of {a} below {k}.",
        "[v for v in {a} if v < {k}]",
        lambda x, k: [v for v in x if v < k],
        _SMALL,
    ),
    Family(
        "count",
        "list",
        "Return how often {k} occurs in {a}.",
        "{a}.count({k})",
        lambda x, k: x.count(k),
        _SMALL,
    ),
    Family(
        "add_each",
        "list",
        "Add {k} to every item of {a}.",
        "[v + {k} for v in {a}]",
        lambda x, k: [v + k for v in x],
        _SMALL,
    ),
    Family(
        "mul_each",
        "list",
        "Multiply every item of {a} by {k}.",
        "[v * {k} for v in {a}]",
        lambda x, k: [v * k for v in x],
        _SMALL,
    ),
    # strings
    Family(
        "repeat",
        "str",
        "Return {a} repeated {k} times.",
        "{a} * {k}",
        lambda x, k: x * k,
        _SLICE,
    ),
    Family(
        "exclaim",
        "str",
        "Return {a} followed by {k} exclamation marks.",
        "{a} + '!' * {k}",
        lambda x, k: x + "!" * k,
        _SLICE,
    ),
    Family(
        "prefix",
        "str",
        "Return the first {k} characters of {a}.",
        "{a}[:{k}]",
        lambda x, k: x[:k],
        _SLICE,
    ),
    Family(
        "count_char",
        "str",
        "Count the letter {k} in {a}.",
        "{a}.count({k})",
        lambda x, k: x.count(k),
        _LETTERS,
    ),
)

# Families the tiny model never pretrains on: stage 00's corpus draws from FAMILIES only, and
# 01_build_data puts training functions of these (training pairs only) into the SFT mix
# (`codebench.codeio.families`). Their held-out problems are the `pyfamilies-sft` benchmark:
# the base model is near 0 there by construction, so it measures what fine-tuning on the 01
# data teaches. Same generator, same disjoint (name, family) split, same protocols and tests.
SFT_NAME = "pyfamilies-sft"
SFT_EVAL_SEED = 20240602
SFT_FAMILIES: tuple[Family, ...] = (
    Family(
        "power",
        "int",
        "Return {a} to the power {k}.",
        "{a} ** {k}",
        lambda x, k: x**k,
        (2, 3, 4),
    ),
    Family(
        "distance",
        "int",
        "Return the distance between {a} and {k}.",
        "abs({a} - {k})",
        lambda x, k: abs(x - k),
        _SMALL,
    ),
    Family(
        "sum_plus",
        "list",
        "Return the sum of {a} plus {k}.",
        "sum({a}) + {k}",
        lambda x, k: sum(x) + k,
        _SMALL,
    ),
    Family(
        "without",
        "list",
        "Return {a} without the items equal to {k}.",
        "[v for v in {a} if v != {k}]",
        lambda x, k: [v for v in x if v != k],
        _SMALL,
    ),
    Family(
        "suffix",
        "str",
        "Return the last {k} characters of {a}.",
        "{a}[-{k}:]",
        lambda x, k: x[-k:],
        _SLICE,
    ),
)
FAMILY_BY_KEY = {f.key: f for f in FAMILIES + SFT_FAMILIES}


def _unit(*parts: str) -> float:
    digest = hashlib.sha256(":".join(parts).encode()).hexdigest()
    return int(digest[:12], 16) / float(1 << 48)


EVAL_NAMES_PER_FAMILY = 5  # of the FUNC_NAMES, this many per family are evaluation-only


def _eval_names(family: str) -> frozenset[str]:
    ranked = sorted(FUNC_NAMES, key=lambda n: _unit("pyfamilies-pair", n, family))
    return frozenset(ranked[:EVAL_NAMES_PER_FAMILY])


_EVAL_NAMES = {f.key: _eval_names(f.key) for f in FAMILIES + SFT_FAMILIES}


def is_eval_pair(name: str, family: str) -> bool:
    """Whether (function name, family) is reserved for evaluation (stable across runs): for
    each family, the EVAL_NAMES_PER_FAMILY names of lowest hash."""
    return name in _EVAL_NAMES[family]


def pairs(evaluation: bool, families: tuple[Family, ...] = FAMILIES) -> list[tuple[str, Family]]:
    """The (name, family) pairs of one side, in a fixed order."""
    return [(n, f) for f in families for n in FUNC_NAMES if is_eval_pair(n, f.key) == evaluation]


# --------------------------------------------------------------------------- inputs
def _value(kind: str, rng: random.Random, k: Any) -> Any:
    if kind == "int":
        if isinstance(k, int) and rng.random() < 0.3:
            return k * rng.randint(-3, 4) + rng.choice((0, 0, 1, -1))
        return rng.randint(-20, 40)
    if kind == "list":
        out = [rng.randint(0, 12) for _ in range(rng.randint(0, 7))]
        if isinstance(k, int) and out and rng.random() < 0.5:
            out[rng.randrange(len(out))] = k
        return out
    letters = "abcdeiostxy"
    return "".join(rng.choice(letters) for _ in range(rng.randint(0, 8)))


def undistinguished(family: Family, k: Any, inputs: list[Any]) -> list[Any]:
    """The family's other constants that give the same result as `k` on every input."""
    return [
        c
        for c in family.constants
        if c != k and all(family.fn(v, c) == family.fn(v, k) for v in inputs)
    ]


def test_inputs(family: Family, k: Any, rng: random.Random, count: int = 5) -> list[Any]:
    """`count` distinct inputs, an edge case first, chosen so that every other constant of the
    family gives a different result on at least one of them (a wrong constant always fails)."""
    edge = {"int": 0, "list": [], "str": ""}[family.kind]
    pool = [_value(family.kind, rng, k) for _ in range(60)]
    if family.kind == "int" and isinstance(k, int):
        pool[:0] = [k - 3, k + 3, k * 3]
    if family.kind == "str" and isinstance(k, str):
        pool[:0] = ["".join(rng.choice(k + "bcdx") for _ in range(6))]
    out, seen = [edge], {repr(edge)}

    def alive() -> list:  # other constants that the chosen inputs do not yet rule out
        return undistinguished(family, k, out)

    for v in pool:  # first the inputs that rule out another constant
        if len(out) >= count or not alive():
            break
        if repr(v) not in seen and any(family.fn(v, c) != family.fn(v, k) for c in alive()):
            seen.add(repr(v))
            out.append(v)
    for v in pool:  # then fill up with plain random inputs
        if len(out) >= count:
            break
        if repr(v) not in seen:
            seen.add(repr(v))
            out.append(v)
    return out


# --------------------------------------------------------------------------- instances
@dataclass(frozen=True)
class Instance:
    """One generated function: HumanEval-style prompt, one-line solution, tests."""

    task_id: str
    family: str
    name: str
    arg: str
    constant: Any
    prompt: str
    solution: str
    tests: str
    strict: bool = True  # the tests fail every other constant of the family (`make_instance`)


def make_instance(task_id: str, name: str, family: Family, rng: random.Random) -> Instance:
    k = rng.choice(family.constants)
    arg = rng.choice(ARG_NAMES[family.kind])
    doc, body = family.render(arg, k)
    example = _value(family.kind, rng, k)
    if family.kind == "list" and len(example) < 2:
        example = [rng.randint(0, 12) for _ in range(3)]
    prompt = (
        f"def {name}({arg}):\n"
        f'    """{doc}\n'
        f"    >>> {name}({example!r})\n"
        f"    {family.fn(example, k)!r}\n"
        f'    """\n'
    )
    solution = f"    return {body}\n"
    inputs = test_inputs(family, k, rng)
    asserts = "".join(f"    assert candidate({v!r}) == {family.fn(v, k)!r}\n" for v in inputs)
    tests = f"def check(candidate):\n{asserts}"
    # `test_inputs` draws from a random pool, which now and then holds no input that tells two
    # constants apart (about 1 in 150 instances: `divisible` by 8 vs 4, `count` of 3 vs 2):
    # such an instance is marked, and the benchmark and the GRPO tasks leave it out
    strict = not undistinguished(family, k, inputs)
    return Instance(task_id, family.key, name, arg, k, prompt, solution, tests, strict)


def eval_instances(count: int = EVAL_PROBLEMS, *, sft: bool = False) -> list[Instance]:
    """The benchmark's problems: evaluation pairs only, round robin so every pair appears
    (`sft`: the `pyfamilies-sft` problems, of SFT_FAMILIES). Every problem's tests fail the
    family's other constants (`Instance.strict`)."""
    families, name = (SFT_FAMILIES, SFT_NAME) if sft else (FAMILIES, NAME)
    rng = random.Random(SFT_EVAL_SEED if sft else EVAL_SEED)
    side = pairs(True, families)  # family-major order: round robin gives every family its share
    order = [
        side[j * EVAL_NAMES_PER_FAMILY + i]
        for i in range(EVAL_NAMES_PER_FAMILY)
        for j in range(len(families))
    ]
    out, seen = [], set()
    i = 0
    while len(out) < count:
        pair_name, fam = order[i % len(order)]
        i += 1
        inst = make_instance(f"{name}/{len(out)}", pair_name, fam, rng)
        key = (inst.prompt, inst.solution)
        if key in seen or not inst.strict:  # a repeat, or tests a wrong constant passes: again
            continue
        seen.add(key)
        out.append(inst)
    return out


def training_instances(count: int, seed: int = 0, *, sft: bool = False) -> list[Instance]:
    """`count` training functions from the training pairs only (never an evaluation pair);
    `sft`: of SFT_FAMILIES (what the 01 SFT mix adds; stage 00 never sees them)."""
    families, name = (SFT_FAMILIES, SFT_NAME) if sft else (FAMILIES, NAME)
    rng = random.Random(f"{name}-train:{seed}")
    side = pairs(False, families)
    return [make_instance(f"{name}-train/{i}", *rng.choice(side), rng=rng) for i in range(count)]


def eval_texts(*, sft: bool = False, count: int = EVAL_PROBLEMS) -> list[str]:
    """Prompt + canonical solution of every evaluation problem (for decontamination); `count`:
    of the first `count` problems (`LARGE_PROBLEMS` for `pyfamilies-600`)."""
    return [p.prompt + p.solution for p in eval_instances(count, sft=sft)]


def problem_of(inst: Instance) -> Problem:
    return Problem(
        task_id=inst.task_id,
        prompt=inst.prompt,
        language="python",
        entry_point=inst.name,
        tests=inst.tests,
        stop=list(BASE_STOPS),
        reference=inst.solution,
        meta={"family": inst.family, "constant": inst.constant, "arg": inst.arg},
    )


@register(NAME)
class PyFamilies(HumanEval):
    """Built-in smoke benchmark: held-out small Python functions (HumanEval protocols)."""

    name = NAME
    canary_count = 3

    def load(self) -> list[Problem]:
        return [problem_of(i) for i in eval_instances()]

    def data_files(self) -> list:
        return []  # generated in code: the library source hash covers it

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "smoke": True,
            "note": "built-in smoke benchmark: shows the machinery works, not that a model is good",
            "families": len(FAMILIES),
            "eval_pairs": len(pairs(evaluation=True)),
        }


@register(SFT_NAME)
class PyFamiliesSFT(PyFamilies):
    """Built-in smoke benchmark, SFT side: held-out functions of families that only the 01
    SFT data teaches (the base model never trains on them)."""

    name = SFT_NAME

    def load(self) -> list[Problem]:
        return [problem_of(i) for i in eval_instances(sft=True)]

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "note": "built-in smoke benchmark (families only the SFT data teaches): shows the "
            "fine-tuning stage changes a model, not that a model is good",
            "families": len(SFT_FAMILIES),
            "eval_pairs": len(pairs(True, SFT_FAMILIES)),
        }


@register(LARGE_NAME)
class PyFamilies600(PyFamilies):
    """Built-in smoke benchmark, 600 held-out problems: `pyfamilies` and 450 more of the same
    evaluation pairs (the first 150 are `pyfamilies`'s, with the same task ids)."""

    name = LARGE_NAME

    def load(self) -> list[Problem]:
        return [problem_of(i) for i in eval_instances(LARGE_PROBLEMS)]
