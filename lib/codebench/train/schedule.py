"""The learning-rate schedule, computed independently, and a guard that the trainer honours it.

DeepSeek-Coder's DeepSpeed config silently replaced the cosine schedule its script asked for.
`ScheduleGuard` inspects the scheduler the Trainer actually built (at train start) and stops
with `ScheduleMismatch` unless every step's rate equals `expected_lr` for the configuration.
"""

from __future__ import annotations

import math

from transformers import TrainerCallback

SCHEDULES = ("cosine", "linear", "constant", "constant_with_warmup")


class ScheduleMismatch(RuntimeError):
    """The scheduler the trainer built does not follow the configured schedule."""


def warmup_steps(warmup: float, total_steps: int) -> int:
    """Warm-up as steps: a value >= 1 is a step count, below 1 a fraction of the total."""
    return int(warmup) if warmup >= 1 else math.ceil(total_steps * warmup)


def expected_lr(step: int, *, lr: float, schedule: str, warmup: int, total: int) -> float:
    """Learning rate after `step` optimizer steps (closed form, linear warm-up then the decay)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {schedule!r} (known: {', '.join(SCHEDULES)})")
    if schedule == "constant":
        return lr
    if step < warmup:
        return lr * step / max(1, warmup)
    if schedule == "constant_with_warmup":
        return lr
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "linear":
        return lr * max(0.0, (total - step) / max(1, total - warmup))
    return lr * max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def expected_curve(*, lr: float, schedule: str, warmup: int, total: int) -> list[float]:
    return [
        expected_lr(s, lr=lr, schedule=schedule, warmup=warmup, total=total)
        for s in range(total + 1)
    ]


def check_scheduler(
    scheduler, *, lr: float, schedule: str, warmup: int, total: int, rtol: float = 1e-6
) -> None:
    """Raise ScheduleMismatch unless `scheduler` gives `expected_lr` at every step 0..total."""
    inner = getattr(scheduler, "scheduler", scheduler)  # accelerate wraps it
    lambdas = getattr(inner, "lr_lambdas", None)
    base = getattr(inner, "base_lrs", None)
    if not lambdas or not base:
        raise ScheduleMismatch(
            f"the trainer built a {type(inner).__name__}, not the configured {schedule!r} schedule "
            "(a DeepSpeed config with a 'scheduler' section overrides it: remove that section)"
        )
    if not math.isclose(base[0], lr, rel_tol=rtol):
        raise ScheduleMismatch(f"optimizer base lr is {base[0]}, configured lr is {lr}")
    for step in range(total + 1):
        got = base[0] * lambdas[0](step)
        want = expected_lr(step, lr=lr, schedule=schedule, warmup=warmup, total=total)
        if not math.isclose(got, want, rel_tol=rtol, abs_tol=lr * rtol):
            raise ScheduleMismatch(
                f"step {step}: the trainer's scheduler gives lr {got:.3e}, the configured {schedule!r} "
                f"schedule (warm-up {warmup}, {total} steps) gives {want:.3e}"
            )


class ScheduleGuard(TrainerCallback):
    """Check the built scheduler against the configuration when training starts."""

    def __init__(self, *, lr: float, schedule: str, warmup: float):
        self.lr, self.schedule, self.warmup = lr, schedule, warmup
        self.checked: dict | None = None

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        total = state.max_steps
        w = warmup_steps(self.warmup, total)
        check_scheduler(lr_scheduler, lr=self.lr, schedule=self.schedule, warmup=w, total=total)
        self.checked = {
            "schedule": self.schedule,
            "lr": self.lr,
            "warmup_steps": w,
            "total_steps": total,
            "matches": True,
        }
