"""Benchmark lookup by spec string: `get_task`, `names`, `parse_spec` (see `bench.tasks`).

The benchmark modules register their tasks with `tasks.register` when imported; this module
imports them on first lookup, so `import codebench.bench.registry` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codebench.bench.tasks import _REGISTRY, BenchError, Task


def _ensure_loaded() -> None:
    # importing the modules registers their tasks
    # (explain: code explanation with text metrics and a round trip, maintained with codebench.metrics)
    from codebench.bench import (  # noqa: F401
        codeio_io,
        custom,
        explain,
        fim,
        humaneval,
        leetcode,
        mbpp,
        mtpb,
        multiple,
        palmath,
        pyfamilies,
    )


def names() -> list[str]:
    """Registered benchmark names."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def parse_spec(spec: str) -> tuple[str, str | None, str | None]:
    """'name[:protocol]' or 'custom:path[:protocol]' / 'codeio:path' -> (name, protocol, path)."""
    name, _, rest = spec.partition(":")
    name = name.strip().lower()
    if name in ("custom", "codeio"):
        path, protocol = rest, None
        for p in ("base", "instruct"):
            if rest.endswith(":" + p):
                path, protocol = rest[: -len(p) - 1], p
        return name, protocol, path or None
    return name, (rest or None), None


def get_task(spec: str | Task, data_dir: str | Path | None = None, **options: Any) -> Task:
    """A Task from a spec string (see module doc) or a Task instance (returned as is)."""
    if isinstance(spec, Task):
        return spec
    _ensure_loaded()
    name, protocol, path = parse_spec(spec)
    if name not in _REGISTRY:
        raise BenchError(f"unknown benchmark {spec!r} (known: {', '.join(sorted(_REGISTRY))})")
    if path is not None:
        options.setdefault("path", path)
    return _REGISTRY[name](protocol=protocol, data_dir=data_dir, **options)
