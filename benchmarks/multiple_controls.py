"""MultiPL-E controls: oracle (must pass) and shifted oracle (must fail) on every problem, under
both verdict modes (trusted, upstream), with the agreement between the two.

    python benchmarks/multiple_controls.py [--languages js cpp java sh] [--limit N] [--workers 2]
                                           [--out results.json]

See codebench.bench.multiple_controls for what the oracles are.
"""

from __future__ import annotations

import argparse
import json
import time

from codebench.bench.multiple_controls import run_controls
from codebench.sandbox import Sandbox


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--languages", nargs="+", default=["js", "cpp", "java", "sh"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    report = {}
    with Sandbox(workers=args.workers, timeout=args.timeout) as sb:
        for lang in args.languages:
            by_mode = {}
            for mode in ("trusted", "upstream"):
                t0 = time.perf_counter()
                res = run_controls(lang, mode, sb, args.limit)
                res["seconds"] = round(time.perf_counter() - t0, 1)
                by_mode[mode] = res
            t, u = (
                {(r["task_id"], r["kind"]): r for r in by_mode[m]["rows"]}
                for m in ("trusted", "upstream")
            )
            agree = {
                kind: sum(
                    (t[k]["outcome"] == "passed") == (u[k]["outcome"] == "passed")
                    for k in t
                    if k in u and k[1] == kind
                )
                for kind in ("oracle", "shifted")
            }
            total = {kind: sum(1 for k in t if k in u and k[1] == kind) for kind in agree}
            disagree = [
                {"task_id": k[0], "kind": k[1], "trusted": t[k], "upstream": u[k]}
                for k in t
                if k in u and (t[k]["outcome"] == "passed") != (u[k]["outcome"] == "passed")
            ]
            not_passed = {
                m: [
                    {"task_id": r["task_id"], "outcome": r["outcome"], "detail": r["detail"][:300]}
                    for r in by_mode[m]["rows"]
                    if r["kind"] == "oracle" and r["outcome"] != "passed"
                ]
                for m in by_mode
            }
            report[lang] = {
                "summary": {
                    m: {k: dict(v) for k, v in by_mode[m]["summary"].items()} for m in by_mode
                },
                "seconds": {m: by_mode[m]["seconds"] for m in by_mode},
                "agreement": {kind: f"{agree[kind]}/{total[kind]}" for kind in agree},
                "disagreements": disagree,
                "oracle_not_passed": not_passed,
            }
            print(
                lang, json.dumps({k: report[lang][k] for k in ("summary", "seconds", "agreement")})
            )
            for m, rows in not_passed.items():
                for r in rows:
                    print(f"  {m} oracle {r['task_id']}: {r['outcome']} {r['detail'][:200]!r}")
            for d in disagree:
                print(
                    f"  disagree {d['task_id']} {d['kind']}: trusted {d['trusted']['outcome']}, upstream {d['upstream']['outcome']}"
                )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
