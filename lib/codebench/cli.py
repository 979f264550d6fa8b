"""The `codebench` command: reproduce a profile, score samples, inspect a profile.

Exit codes: see `codebench.cliutil` (0 ok, 1 stage failed, 2 bad input, 3 run busy,
4 cannot write, 130 interrupted).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codebench import __version__
from codebench.cliutil import (
    EXIT_BAD_INPUT,
    EXIT_BUSY,
    EXIT_CANNOT_WRITE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STAGE_FAILED,
    Parser,
    error,
    non_negative_float,
)


def _stage_logging(quiet: bool) -> None:
    """Show each notebook's printed output indented under its stage line."""
    import logging

    class _CellOutputOnly(logging.Filter):
        """Keep the notebooks' own output and warnings; drop papermill's per-cell chatter."""

        noise = (
            "Executing Cell",
            "Ending Cell",
            "Input Notebook",
            "Output Notebook",
            "Working directory",
            "Executing notebook with kernel",
            "Unable to parse line",
            "Passed unknown parameter",
        )

        def filter(self, record: logging.LogRecord) -> bool:
            msg = record.getMessage()
            record.msg, record.args = msg.rstrip("\n"), ()
            return bool(record.msg.strip()) and not msg.startswith(self.noise)

    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_CellOutputOnly())
    handler.setFormatter(logging.Formatter("    | %(message)s"))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    log = logging.getLogger("papermill")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)  # the runner's progress lines read papermill's cell events
    log.propagate = False


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from codebench.params import ProfileError
    from codebench.pipeline import NOTEBOOKS, Runner, StageFailed
    from codebench.records import RecordError, RecordWriteError
    from codebench.runs import RunLocked

    try:
        runner = Runner(
            Path(args.profile),
            runs_root=Path(args.runs_dir),
            figures_root=Path(args.figures_dir),
            wait=args.wait,
            **({"notebooks_dir": Path(args.notebooks_dir)} if args.notebooks_dir else {}),
        )
        if args.list:
            manifest = runner.load_manifest()
            owner = manifest.get("owner") or {}
            print(
                f"profile {runner.profile.name}: run folder {runner.layout.root}"
                + (
                    f" ({manifest['state']}, pid {owner.get('pid')} on {owner.get('host')})"
                    if manifest.get("state")
                    else ""
                )
            )
            for item in runner.plan(args.only, args.force):
                prev = manifest["stages"].get(item.stage, {})
                last = (
                    f"last: {prev.get('status')} in {prev.get('duration_s', '?')}s"
                    if prev
                    else "never ran"
                )
                print(f"  {NOTEBOOKS[item.stage]:<22} key {item.key}  {item.state:<24}  ({last})")
            return EXIT_OK
        _stage_logging(args.quiet)
        runner.run(only=args.only, force=args.force)
        return EXIT_OK
    except StageFailed as e:
        error(e)
        return EXIT_STAGE_FAILED
    except RunLocked as e:
        error(e)
        return EXIT_BUSY
    except RecordWriteError as e:
        error(e)
        return EXIT_CANNOT_WRITE
    except (ProfileError, RecordError, *_preflight_errors()) as e:
        error(e)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        error("interrupted; run the same command again to resume")
        return EXIT_INTERRUPTED


def _preflight_errors() -> tuple[type[BaseException], ...]:
    """The error types codebench.validate's pre-run checks raise (bad input, exit 2)."""
    try:
        from codebench import validate
    except ImportError:
        return ()
    return tuple(
        t
        for t in (getattr(validate, n, None) for n in ("ValidationError", "PreflightError"))
        if isinstance(t, type) and issubclass(t, BaseException)
    )


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(
        prog="codebench", description="A Jupyter research workbench for code language models."
    )
    ap.add_argument("--version", action="version", version=f"codebench {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    rp = sub.add_parser(
        "reproduce", help="run a profile's stage notebooks with papermill (cached by content keys)"
    )
    rp.add_argument("profile", help="profile YAML, e.g. params/smoke.yaml")
    rp.add_argument(
        "--only",
        nargs="+",
        metavar="STAGE",
        help="run only these stages (model data finetune compress evaluate report)",
    )
    rp.add_argument(
        "--force", action="store_true", help="rerun stages even when their key is unchanged"
    )
    rp.add_argument("--quiet", action="store_true", help="do not echo notebook output")
    rp.add_argument(
        "--list",
        action="store_true",
        help="show the stages, their keys and what would run; run nothing",
    )
    rp.add_argument(
        "--wait",
        type=non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="when another process is writing this run, wait up to SECONDS for it "
        "(default 0: refuse at once, naming its pid and host)",
    )
    rp.add_argument("--runs-dir", default="runs", help="root of run folders (default: runs)")
    rp.add_argument(
        "--figures-dir", default="figures", help="root of figure folders (default: figures)"
    )
    rp.add_argument(
        "--notebooks-dir",
        default=None,
        help="stage notebooks folder (default: the repository's notebooks/)",
    )
    rp.set_defaults(func=_cmd_reproduce)

    from codebench import validate

    vp = sub.add_parser(
        "validate",
        help="check profiles without running anything (exit 2 on any error)",
        description=validate.__doc__.split("\n\n")[0],
    )
    validate.add_arguments(vp)
    vp.set_defaults(func=validate.run_cli)

    from codebench import evaluate_cli

    _add_fetch_parser(sub)
    evaluate_cli.add_parser(sub)
    try:  # the sandbox scorer registers itself when present
        from codebench import score

        score.add_parser(sub)
    except ImportError:
        pass
    return ap


def _add_fetch_parser(sub) -> None:
    from codebench.fetch import SOURCES

    p = sub.add_parser("fetch-data", help="download the public benchmark sets into a data folder")
    p.add_argument(
        "dest",
        nargs="?",
        help="data folder to fill (then point $CODEBENCH_DATA or data_dir at it); default: the "
        "user data folder codebench reads when neither is set ($CODEBENCH_CACHE/data, "
        "~/.cache/codebench/data)",
    )
    p.add_argument("--sets", nargs="+", choices=list(SOURCES), help="which sets (default: all)")
    p.add_argument("--mirror", help="base URL of a mirror holding the same relative paths")
    p.set_defaults(func=_cmd_fetch_data)


def _cmd_fetch_data(args) -> int:
    from codebench.fetch import fetch
    from codebench.paths import user_data_dir

    dest = args.dest or user_data_dir()
    print(f"codebench: fetching into {dest}")
    status = fetch(dest, args.sets, base_url=args.mirror)
    failed = [k for k, v in status.items() if v.startswith("failed")]
    if failed:
        print(
            f"codebench: error: {len(failed)} file(s) could not be fetched (see above)",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # usage errors: one line, exit 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
