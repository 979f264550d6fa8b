"""Reward-call throughput: codebench's SandboxReward vs one `subprocess.run` per completion.

    .venv/bin/python benchmarks/reward_throughput.py [--repeat R] [--workers N] [--sequential]

The common execution reward in GRPO recipes (trl/open-r1 style local rewards) writes each
completion with its tests appended to a file and runs `subprocess.run([sys.executable, file])`,
reward = 1 when the exit status is 0. This script scores the SAME completions both ways in
one run:

  completions  HumanEval's 164 canonical solutions (honest), `return None` (wrong) and each
               problem given the next problem's canonical body (wrong, realistic: it runs,
               then fails or raises); x R (--repeat, default 2): 164 x 3 x R completions
  subprocess   one `python file.py` per completion (prompt + completion + test +
               check(entry_point)), timeout 3 s, on a thread pool of the same size as the
               sandbox pool (cores + 1 unless --workers) -- the fairest form of the pattern;
               --sequential also times the plain loop the examples use
  sandbox      SandboxReward(mode="binary") and (mode="fraction"): one warm pool, trusted
               verdicts, every completion of a call scored as one batch

Prints completions/s for each, the ratio, and the verdict agreement (per completion) on the
honest completions and on all of them. Timings are wall-clock seconds of the scoring call
only (the sandbox pool is started before timing, as it is once per training run; its start
time is printed separately). Load average before and after is printed: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from codebench.rewards import SandboxReward
from codebench.sandbox.problems import load_humaneval


def completions() -> tuple[list[dict], list[str], list[str]]:
    """(rows, completions, kinds): canonical, return None, next problem's body."""
    probs = list(load_humaneval().values())
    rows, comps, kinds = [], [], []
    for i, p in enumerate(probs):
        row = {k: p[k] for k in ("task_id", "prompt", "test", "entry_point")}
        other = probs[(i + 1) % len(probs)]["canonical_solution"]
        for kind, comp in (
            ("honest", p["canonical_solution"]),
            ("none", "    return None\n"),
            ("shifted", other),
        ):
            rows.append(row)
            comps.append(comp)
            kinds.append(kind)
    return rows, comps, kinds


def subprocess_reward(row: dict, completion: str, tmp: Path, index: int, timeout: float) -> float:
    """The common pattern: program + tests in a file, `python file`, exit status 0 = 1.0."""
    program = (
        row["prompt"] + completion + "\n\n" + row["test"] + f"\n\ncheck({row['entry_point']})\n"
    )
    path = tmp / f"c{index}.py"
    path.write_text(program, encoding="utf-8", errors="surrogatepass")
    try:
        r = subprocess.run(
            [sys.executable, str(path)], capture_output=True, timeout=timeout, cwd=tmp
        )
        return 1.0 if r.returncode == 0 else 0.0
    except subprocess.TimeoutExpired:
        return 0.0
    finally:
        path.unlink(missing_ok=True)


def run_subprocess(rows, comps, workers: int, timeout: float) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory(prefix="reward-subprocess-") as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        if workers <= 1:
            out = [
                subprocess_reward(r, c, tmp, i, timeout)
                for i, (r, c) in enumerate(zip(rows, comps, strict=True))
            ]
        else:
            with ThreadPoolExecutor(workers) as ex:
                out = list(
                    ex.map(
                        lambda a: subprocess_reward(a[1][0], a[1][1], tmp, a[0], timeout),
                        enumerate(zip(rows, comps, strict=True)),
                    )
                )
        return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=2, help="copies of the 492 completions")
    ap.add_argument("--workers", type=int, default=None, help="pool size (default cores + 1)")
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--sequential", action="store_true", help="also time the plain loop")
    args = ap.parse_args(argv)
    workers = args.workers or len(os.sched_getaffinity(0)) + 1
    rows, comps, kinds = completions()
    rows, comps, kinds = rows * args.repeat, comps * args.repeat, kinds * args.repeat
    n = len(comps)
    print(
        f"completions: {n} ({kinds.count('honest')} honest), workers: {workers}, "
        f"cores: {len(os.sched_getaffinity(0))}, load average before: {os.getloadavg()[0]:.1f}"
    )

    times: dict[str, float] = {}
    verdicts: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    with SandboxReward(mode="binary", workers=workers, timeout=args.timeout) as rb:
        sb = rb.sandbox  # start the pool before timing (once per training run)
        start = time.perf_counter() - t0
        with SandboxReward(mode="fraction", sandbox=sb, timeout=args.timeout) as rf:
            # each mode twice: the first call of a task set, then a repeat call (later GRPO
            # steps reuse the tasks; the sandbox predicts a test suite's calls once it passed)
            for name, r in (("sandbox binary", rb), ("sandbox fraction", rf)):
                for label in ("", " (repeat)"):
                    t = time.perf_counter()
                    rewards = [s.reward for s in r.score(rows, comps)]
                    times[name + label] = time.perf_counter() - t
                    verdicts[name + label] = [1.0 if x == 1.0 else 0.0 for x in rewards]
                    if name == "sandbox fraction" and not label:
                        frac = rewards
        isolation = sb.isolation
    print(f"sandbox pool start: {start:.2f} s (isolation: {isolation})")
    verdicts["subprocess pool"], times["subprocess pool"] = run_subprocess(
        rows, comps, workers, args.timeout
    )
    if args.sequential:
        verdicts["subprocess loop"], times["subprocess loop"] = run_subprocess(
            rows, comps, 1, args.timeout
        )
    for name, secs in times.items():
        passed = sum(v == 1.0 for v in verdicts[name])
        print(f"{name:18s}: {n / secs:8.1f} completions/s ({secs:6.2f} s)  passed {passed}/{n}")
    base = times["subprocess pool"]
    for name in times:
        if name.startswith("sandbox"):
            print(f"ratio {name} / subprocess pool: {base / times[name]:.1f}x")
    if "subprocess loop" in times:
        print(
            f"ratio sandbox binary / subprocess loop: {times['subprocess loop'] / times['sandbox binary']:.1f}x"
        )
    ref = verdicts["subprocess pool"]
    for name in verdicts:
        if name == "subprocess pool":
            continue
        honest = [i for i, k in enumerate(kinds) if k == "honest"]
        agree_h = sum(verdicts[name][i] == ref[i] for i in honest)
        agree = sum(a == b for a, b in zip(verdicts[name], ref, strict=True))
        diff = sorted(
            {rows[i]["task_id"] + ":" + kinds[i] for i in range(n) if verdicts[name][i] != ref[i]}
        )
        print(
            f"verdicts {name} vs subprocess: honest {agree_h}/{len(honest)} agree, "
            f"all {agree}/{n} agree{'; differ: ' + ', '.join(diff[:8]) if diff else ''}"
        )
    print(
        f"mean fraction reward: honest {sum(f for f, k in zip(frac, kinds, strict=True) if k == 'honest') / kinds.count('honest'):.3f}, "
        f"wrong {sum(f for f, k in zip(frac, kinds, strict=True) if k != 'honest') / (n - kinds.count('honest')):.3f}"
    )
    # the same attack through both: the completion ends the function, then exits 0 at import
    attack = "    return None\nimport sys\nsys.exit(0)\n"
    probs = list(load_humaneval().values())
    arows = [{k: p[k] for k in ("task_id", "prompt", "test", "entry_point")} for p in probs]
    with SandboxReward(mode="binary", workers=workers) as rb:
        forged_sb = sum(s.reward > 0 for s in rb.score(arows, [attack] * len(arows)))
    forged_sp = sum(v > 0 for v in run_subprocess(arows, [attack] * len(arows), workers, 3.0)[0])
    print(
        f"attack 'sys.exit(0) after the function': rewarded as a pass by subprocess "
        f"{forged_sp}/{len(arows)}, by the sandbox {forged_sb}/{len(arows)}"
    )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
