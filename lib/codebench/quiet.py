"""Third-party log lines a user cannot act on, filtered at their source: one home, with the
reason for each. Installed when `codebench` is imported (before torch, transformers or
torchao are), so the console of `codebench reproduce` and the executed notebooks stay clean.

Each filter drops one exact message from one logger; everything else passes untouched.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import warnings
from collections.abc import Iterator

_installed = False


class DropMessage(logging.Filter):
    """Drop records whose formatted message matches `pattern` (and `when(record)`, if given)."""

    def __init__(self, pattern: str, when=None) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)
        self.when = when

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to judge
            return True
        return not (self.pattern.search(msg) and (self.when is None or self.when(msg)))


def _unusable_torchao_extension(msg: str) -> bool:
    """True when the extension that failed to load could not work here anyway: built for
    another CPython, or a CUDA kernel library on a torch without CUDA."""
    m = re.search(r"_C\w*?\.(cpython-(\d)(\d+)-|abi3\.)", msg)
    if m and m.group(2) and (int(m.group(2)), int(m.group(3))) != sys.version_info[:2]:
        return True
    try:
        import torch

        return not torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return False


def install() -> None:
    """Add the filters (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    # torchao's wheels ship CUDA-only kernel libraries (_C_cutlass_90a: Hopper kernels;
    # _C_mxfp8, built for CPython 3.10 only). transformers imports torchao whenever it is
    # installed, and torchao logs one WARNING per library it cannot load; on a CPU torch (or
    # another Python) none of them can load, and the CPU code paths codebench uses need none.
    # On a CUDA machine a failure of a library built for this Python still shows.
    logging.getLogger("torchao").addFilter(
        DropMessage(r"^Failed to load \S*torchao/_C\w*\.\S*\.so", _unusable_torchao_extension)
    )
    # torchao registers its enums with torch.utils._pytree.register_constant, which torch
    # 2.13 deprecates for Enum subclasses: a note for torchao's maintainers, not for users.
    logging.getLogger("torch.utils._pytree").addFilter(
        DropMessage(r"is an Enum subclass and is now natively supported by torch\.compile")
    )


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """Around peft (and trl) calls that wrap, load or unwrap a model: peft 0.21 reads
    transformers 5's deprecated `is_gradient_checkpointing`, a FutureWarning no user can act
    on. A warning, not a log line, so a context manager rather than a logging filter."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
        )
        yield
