"""Controls for every Python benchmark: references must pass, wrong answers must not.

    python benchmarks/reference_controls.py [--specs humaneval mbpp ...] [--timeout 10]

Each benchmark's reference output (`task.reference`) and its wrong output (`task.wrong`) go
through 04_evaluate's own scoring path (`runner._score_units`: extraction, the task's sandbox
job, the task's trusted verdict), references and wrong answers interleaved on one pool. Prints,
per benchmark spec, the problems with a reference, how many references passed (and the ones
that did not, with their outcome and detail) and how many wrong answers passed (must be 0).
MultiPL-E has no references: see benchmarks/multiple_controls.py.
"""

from __future__ import annotations

import argparse
import time

from codebench.bench import get_task
from codebench.bench.runner import _score_units, _Unit
from codebench.sandbox import Sandbox

SPECS = [
    "humaneval",
    "humaneval:instruct",
    "mbpp",
    "mbpp:instruct",
    "pyfamilies",
    "fim",
    "fim:multi-line",
    "pal-gsm8k",
    "pal-svamp",
    "pal-mawps",
    "pal-gsm-hard",
    "mtpb:single",
    "mtpb:multi",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--specs", nargs="+", default=SPECS)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    print("| benchmark | problems with a reference | references passed | wrong passed | s |")
    print("|---|---|---|---|---|")
    notes = []
    with Sandbox(workers=args.workers, timeout=args.timeout) as sb:
        for spec in args.specs:
            task = get_task(spec)
            if spec.startswith("fim"):
                from codebench.models import FimTokens

                task.tokens = FimTokens("<pre>", "<suf>", "<mid>")
            t0 = time.perf_counter()
            units, kinds = [], []
            for p in task.problems():
                ref = task.reference(p)
                if ref is None:
                    continue
                units += [_Unit(p, 0, ref), _Unit(p, 1, task.wrong(p))]
                kinds += ["ref", "wrong"]
            scored = _score_units(task, units, sb)
            refs = [s for s, k in zip(scored, kinds, strict=True) if k == "ref"]
            wrong = [s for s, k in zip(scored, kinds, strict=True) if k == "wrong"]
            ok = sum(oc == "passed" for _, _, oc, _, _ in refs)
            bad = sum(oc == "passed" for _, _, oc, _, _ in wrong)
            dt = time.perf_counter() - t0
            print(f"| {spec} | {len(refs)} | {ok}/{len(refs)} | {bad}/{len(wrong)} | {dt:.0f} |")
            for u, _, oc, det, _ in refs:
                if oc != "passed":
                    notes.append(f"{spec} {u.problem.task_id}: reference {oc}: {det[:200]!r}")
            for u, _, oc, _det, _ in wrong:
                if oc == "passed":
                    notes.append(f"{spec} {u.problem.task_id}: WRONG ANSWER PASSED")
    print("\n".join(notes) or "(no exceptions)")


if __name__ == "__main__":
    main()
