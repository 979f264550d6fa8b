"""The `codebench` command: reproduce a profile, score samples, inspect a profile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codebench import __version__


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
    log = logging.getLogger("papermill")
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from codebench.params import ProfileError
    from codebench.pipeline import NOTEBOOKS, Runner, StageFailed

    try:
        runner = Runner(
            Path(args.profile),
            runs_root=Path(args.runs_dir),
            figures_root=Path(args.figures_dir),
            **({"notebooks_dir": Path(args.notebooks_dir)} if args.notebooks_dir else {}),
        )
        if args.list:
            manifest = runner.load_manifest()["stages"]
            print(f"profile {runner.profile.name}: run folder {runner.layout.root}")
            for stage, key, will_run in runner.plan(args.only, args.force):
                prev = manifest.get(stage, {})
                state = "would run" if will_run else "up to date"
                last = (
                    f"last: {prev.get('status')} in {prev.get('duration_s', '?')}s"
                    if prev
                    else "never ran"
                )
                print(f"  {NOTEBOOKS[stage]:<22} key {key}  {state:<10}  ({last})")
            return 0
        _stage_logging(args.quiet)
        runner.run(only=args.only, force=args.force)
        return 0
    except (ProfileError, StageFailed) as e:
        print(f"codebench: error: {e}", file=sys.stderr)
        return 1


def _cmd_validate(args: argparse.Namespace) -> int:
    from codebench.params import ProfileError, load_profile

    bad = 0
    for p in args.profiles:
        try:
            prof = load_profile(p)
            print(f"{p}: ok (profile '{prof.name}', stages: {', '.join(prof.enabled_stages())})")
        except ProfileError as e:
            print(f"codebench: error: {e}", file=sys.stderr)
            bad += 1
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
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

    vp = sub.add_parser("validate", help="check profiles without running anything")
    vp.add_argument("profiles", nargs="+")
    vp.set_defaults(func=_cmd_validate)

    from codebench import evaluate_cli, fetch

    fetch.add_parser(sub)
    evaluate_cli.add_parser(sub)
    try:  # the sandbox scorer registers itself when present
        from codebench import score

        score.add_parser(sub)
    except ImportError:
        pass
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
