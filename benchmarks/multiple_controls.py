"""MultiPL-E controls: oracle (must pass) and near-miss oracles (must fail) on every problem,
under both verdict modes (trusted, upstream), with the agreement between the two modes.

    python benchmarks/multiple_controls.py [--languages js cpp java sh] [--limit N] [--workers 2]
                                           [--mutations shifted rotated raises] [--out r.json]

Completions run, per problem (see codebench.bench.multiple_controls):
  oracle   returns, on its k-th call, the k-th test's expected value: must pass in both modes;
  shifted  the last call returns another case's value;
  rotated  off by one: call k returns case k+1's value;
  raises   right on every call but the last, which throws (bash: exit 1);
  published  real model completions published by MultiPL-E's authors: the davinci-0.2
           test inputs of nuprl/MultiPL-E `evaluation/test_inputs/*-davinci-0.2-keep-
           HumanEval53.json` (HumanEval_53_add: one correct and one broken completion for js,
           cpp and sh; there is no Java file). They are the only published MultiPL-E
           completions reachable here.
The last lines print a markdown table: per language and kind, passes under each mode and the
number of completions on which the two modes agree (both pass or both do not).
"""

from __future__ import annotations

import argparse
import json
import time

from codebench.bench.multiple_controls import MUTATIONS, run_controls
from codebench.sandbox import Sandbox

# nuprl/MultiPL-E evaluation/test_inputs/<lang>-davinci-0.2-keep-HumanEval53.json "completions"
# (expected verdicts there: the first passes, the second does not)
PUBLISHED = {
    "js": ["    return x + y;\n}\n", "    return x + ;\n}\n"],
    "cpp": ["    return x + y;", "    return x + ;"],
    "sh": ["    echo $(( $1 + $2 ))", "    excho $(( $1 + $2 ))"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--languages", nargs="+", default=["js", "cpp", "java", "sh"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--mutations", nargs="+", default=list(MUTATIONS), choices=MUTATIONS)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    report, table = {}, []
    with Sandbox(workers=args.workers, timeout=args.timeout) as sb:
        for lang in args.languages:
            extra = [("HumanEval_53_add", "published", c) for c in PUBLISHED.get(lang, [])]
            by_mode = {}
            for mode in ("trusted", "upstream"):
                t0 = time.perf_counter()
                res = run_controls(
                    lang, mode, sb, args.limit, mutations=tuple(args.mutations), extra=extra
                )
                res["seconds"] = round(time.perf_counter() - t0, 1)
                by_mode[mode] = res

            def keyed(rows):
                seen: dict = {}
                out = {}
                for r in rows:  # several published completions share (task_id, kind)
                    k = (r["task_id"], r["kind"])
                    seen[k] = seen.get(k, -1) + 1
                    out[(*k, seen[k])] = r
                return out

            t, u = (keyed(by_mode[m]["rows"]) for m in ("trusted", "upstream"))
            kinds = list(dict.fromkeys(k[1] for k in t))
            agree, total, passes = {}, {}, {}
            for kind in kinds:
                keys = [k for k in t if k in u and k[1] == kind]
                total[kind] = len(keys)
                agree[kind] = sum(
                    (t[k]["outcome"] == "passed") == (u[k]["outcome"] == "passed") for k in keys
                )
                passes[kind] = {
                    m: sum(
                        r["outcome"] == "passed" for r in by_mode[m]["rows"] if r["kind"] == kind
                    )
                    for m in by_mode
                }
                table.append(
                    f"| {lang} | {kind} | {total[kind]} | {passes[kind]['trusted']} | "
                    f"{passes[kind]['upstream']} | {agree[kind]}/{total[kind]} |"
                )
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
                "agreement": {kind: f"{agree[kind]}/{total[kind]}" for kind in kinds},
                "passes": passes,
                "disagreements": disagree,
                "oracle_not_passed": not_passed,
            }
            print(
                lang,
                json.dumps({k: report[lang][k] for k in ("summary", "seconds", "agreement")}),
                flush=True,
            )
            for m, rows in not_passed.items():
                for r in rows:
                    print(f"  {m} oracle {r['task_id']}: {r['outcome']} {r['detail'][:200]!r}")
            for d in disagree:
                print(
                    f"  disagree {d['task_id']} {d['kind']}: trusted {d['trusted']['outcome']}"
                    f" ({d['trusted']['detail'][:120]!r}), upstream {d['upstream']['outcome']}"
                )
    print("\n| language | completions | n | passed, trusted | passed, upstream | modes agree |")
    print("|---|---|---|---|---|---|")
    print("\n".join(table))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
