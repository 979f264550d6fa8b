"""Trainer callbacks: readable one-line logs (papermill-friendly) and a stop-after-N-steps hook."""

from __future__ import annotations

import sys

from transformers import TrainerCallback


class LogPrinter(TrainerCallback):
    """Print one compact line per log event from the main process (no progress-bar noise)."""

    def __init__(self, stream=None):
        self.stream = stream

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        parts = [f"step {state.global_step:>4}/{state.max_steps}"]
        for key, fmt in (
            ("loss", ".4f"),
            ("eval_loss", ".4f"),
            ("learning_rate", ".2e"),
            ("grad_norm", ".3f"),
        ):
            if key in logs:
                parts.append(f"{key.replace('learning_rate', 'lr')} {logs[key]:{fmt}}")
        if "train_runtime" in logs:
            parts.append(f"done in {logs['train_runtime']:.1f}s")
        print("  ".join(parts), file=self.stream or sys.stdout, flush=True)


class StopAfter(TrainerCallback):
    """Stop training after `steps` optimizer steps (simulates an interrupted run in tests)."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.steps:
            control.should_training_stop = True
            control.should_save = True
        return control
