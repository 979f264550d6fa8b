"""Local code corpora for the tiny model: the standard library, a folder, or a JSONL file.

Every document has a stable id (its path relative to the source root, or the JSONL record's
id). The train/held-out split and the subset kept under `max_files` / `max_chars` are
decided by hashing that id, so the same source gives the same split on every run and
machine, and adding a file never moves another file between splits.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from codebench.records import read_jsonl

# Folder names never read from the standard library: tests, installed packages, caches,
# and generated data tables that are not code a model should imitate.
STDLIB_SKIP_DIRS = frozenset(
    {
        "test",
        "tests",
        "idle_test",
        "site-packages",
        "dist-packages",
        "__pycache__",
        "encodings",
        "pydoc_data",
        "turtledemo",
    }
)
FOLDER_SKIP_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__", "node_modules"})
TEXT_FIELDS = ("content", "text", "code")
ID_FIELDS = ("id", "path", "task_id", "name")


class CorpusError(ValueError):
    """A corpus source is missing or unreadable; the message names the path."""


@dataclass(frozen=True)
class Document:
    """One source text and its stable id."""

    id: str
    text: str


@dataclass
class Corpus:
    """A source split into train and held-out documents."""

    source: str
    train: list[Document]
    heldout: list[Document]
    skipped: list[str] = field(default_factory=list)  # ids skipped as undecodable, with the reason

    def stats(self) -> dict:
        """Counts and sizes for result records."""
        return {
            "source": self.source,
            "train_files": len(self.train),
            "train_chars": sum(len(d.text) for d in self.train),
            "heldout_files": len(self.heldout),
            "heldout_chars": sum(len(d.text) for d in self.heldout),
            "skipped": len(self.skipped),
        }


def stdlib_root() -> Path:
    """The running interpreter's standard library folder."""
    return Path(sysconfig.get_paths()["stdlib"])


def _unit(doc_id: str, salt: str) -> float:
    """A stable number in [0, 1) from a document id."""
    digest = hashlib.sha1(f"{salt}:{doc_id}".encode()).hexdigest()
    return int(digest[:12], 16) / float(1 << 48)


def is_heldout(doc_id: str, fraction: float) -> bool:
    """Whether `doc_id` belongs to the held-out split (stable, hash-based)."""
    return _unit(doc_id, "split") < fraction


def _walk_py(root: Path, skip: frozenset[str]) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield Path(dirpath) / name


def _read_file(path: Path, doc_id: str, skipped: list[str]) -> str | None:
    """Read UTF-8 text; undecodable files are skipped (and listed), unreadable ones are errors."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"{path}: cannot read source file ({e.strerror or e})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        skipped.append(f"{doc_id}: not UTF-8 ({e.reason} at byte {e.start})")
        return None


def _file_candidates(source: str) -> tuple[Path, list[tuple[str, Path]]]:
    if source == "stdlib":
        root, skip = stdlib_root(), STDLIB_SKIP_DIRS
    else:
        root, skip = Path(source).expanduser(), FOLDER_SKIP_DIRS
    if not root.exists():
        raise CorpusError(
            f"{root}: corpus source not found (expected 'stdlib', a folder of .py files or a .jsonl file)"
        )
    if root.is_file():
        return root.parent, [(root.name, root)]
    if not os.access(root, os.R_OK | os.X_OK):
        raise CorpusError(f"{root}: corpus folder is not readable")
    files = [(p.relative_to(root).as_posix(), p) for p in _walk_py(root, skip)]
    if not files:
        raise CorpusError(f"{root}: no .py files found in corpus folder")
    return root, files


def _jsonl_docs(path: Path) -> Iterator[Document]:
    for lineno, rec in enumerate(read_jsonl(path), 1):
        text = next((rec[k] for k in TEXT_FIELDS if isinstance(rec.get(k), str)), None)
        if text is None:
            raise CorpusError(
                f"{path}: record {lineno}: no text field (expected one of {', '.join(TEXT_FIELDS)})"
            )
        doc_id = next(
            (str(rec[k]) for k in ID_FIELDS if rec.get(k) is not None), f"{path.name}:{lineno}"
        )
        yield Document(doc_id, text)


def load_corpus(
    source: str = "stdlib",
    *,
    max_files: int = 400,
    max_chars: int = 4_000_000,
    heldout_fraction: float = 0.05,
) -> Corpus:
    """Read a code corpus and split it into train and held-out documents.

    source: 'stdlib' (this interpreter's standard library without tests and installed
    packages), a folder (every .py file below it), a single .py file, or a JSONL file with
    a 'content'/'text'/'code' field per record. Files are taken in a stable hash order until
    `max_files` files or `max_chars` characters are read (the last one is cut to fit).
    """
    if source.endswith(".jsonl"):
        path = Path(source).expanduser()
        if not path.is_file():
            raise CorpusError(f"{path}: corpus JSONL not found")
        try:
            docs = sorted(_jsonl_docs(path), key=lambda d: _unit(d.id, "order"))
        except OSError as e:
            raise CorpusError(f"{path}: cannot read corpus JSONL ({e.strerror or e})") from None
        candidates = [(d.id, d) for d in docs]
    else:
        _, files = _file_candidates(source)
        candidates = sorted(files, key=lambda item: _unit(item[0], "order"))

    corpus = Corpus(source=source, train=[], heldout=[])
    total = 0
    for doc_id, item in candidates:
        if len(corpus.train) + len(corpus.heldout) >= max_files or total >= max_chars:
            break
        text = item.text if isinstance(item, Document) else _read_file(item, doc_id, corpus.skipped)
        if not text or not text.strip():
            continue
        text = text[: max_chars - total]
        total += len(text)
        split = corpus.heldout if is_heldout(doc_id, heldout_fraction) else corpus.train
        split.append(Document(doc_id, text))
    if not corpus.heldout and len(corpus.train) > 1:
        # Small caps can leave the hash split empty: hold out the train document whose
        # split hash is lowest (still deterministic for the same source and caps).
        pick = min(corpus.train, key=lambda d: _unit(d.id, "split"))
        corpus.train.remove(pick)
        corpus.heldout.append(pick)
    if not corpus.train:
        raise CorpusError(
            f"{source}: corpus has no training documents (held-out fraction {heldout_fraction}, {len(candidates)} candidates)"
        )
    return corpus


def heldout_texts(corpus: Corpus, max_chars: int) -> list[str]:
    """Held-out documents up to `max_chars` characters in all (the last one cut to fit)."""
    out, left = [], max_chars
    for d in corpus.heldout:
        if left <= 0:
            break
        out.append(d.text[:left])
        left -= len(out[-1])
    return out
