"""What every `codebench` subcommand shares: exit codes, one-line errors, argument types.

Exit codes (every error is one line on stderr, naming the file and line where there is one):

    0    success
    1    a stage failed (the line names the notebook, the cell and the executed notebook)
    2    bad input: arguments, profile, samples or data files (usage errors included)
    3    the run folder is being written by another live codebench process (pid and host named)
    4    cannot write: read-only folder, disk full (the file is named; nothing is left torn)
    130  interrupted (Ctrl-C); run the same command again to resume
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn

EXIT_OK, EXIT_STAGE_FAILED, EXIT_BAD_INPUT, EXIT_BUSY, EXIT_CANNOT_WRITE = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130


def error(msg: object, prog: str = "codebench") -> None:
    """Print one error line (a multi-line message is joined) on stderr."""
    text = " ".join(str(msg).split("\n")).strip()
    print(f"{prog}: error: {text}", file=sys.stderr, flush=True)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (exit 2), pointing at --help."""

    def error(self, message: str) -> NoReturn:
        error(f"{message} (see `{self.prog} --help`)", self.prog)
        sys.exit(EXIT_BAD_INPUT)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return v


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0, got {text}")
    return v
