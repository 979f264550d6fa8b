"""Data that travels with the project: the data folder resolution order, the shipped data
(hash-checked), a fresh clone with no ../shared and no $CODEBENCH_DATA, and the automatic
first-use fetch (mocked: tests never touch the network)."""

from __future__ import annotations

import hashlib
import lzma
from pathlib import Path

import pytest

from codebench import fetch as F
from codebench import paths
from codebench.params import load_profile
from codebench.validate import PreflightError, check_profile, preflight

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh_clone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A repository root with no ../shared next to it, no $CODEBENCH_DATA, an empty cache."""
    root = tmp_path / "clone" / "codebench"
    root.mkdir(parents=True)
    monkeypatch.setattr(paths, "REPO_ROOT", root)
    monkeypatch.delenv("CODEBENCH_DATA", raising=False)
    monkeypatch.setenv("CODEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    paths._READY.clear()
    return tmp_path


def test_manifest_lists_hash_size_license_for_every_shipped_file() -> None:
    man = paths.shipped_manifest()
    assert man, "nothing shipped"
    for rel, meta in man.items():
        assert (paths.SHIPPED_DIR / f"{rel}.xz").is_file(), rel
        assert meta["license"] and meta["source"].startswith("https://"), rel
        assert F.set_of(rel) == meta["set"], rel  # fetch-data knows the same file ...
        (src,) = [s for s in F.SOURCES[meta["set"]] if s.path == rel]
        assert src.sha256 == meta["sha256"], rel  # ... with the same hash
    readme = (paths.SHIPPED_DIR / "README.md").read_text()
    assert all(f"`{rel}`" in readme for rel in man)


def test_fresh_clone_resolves_shipped_data(fresh_clone: Path) -> None:
    folder, where = paths.data_source()
    assert where == "shipped" and folder == fresh_clone / "cache" / "data"
    assert paths.verify_shipped(folder) == dict.fromkeys(paths.shipped_files(), "ok")


def test_smoke_profile_data_files_resolve_in_a_fresh_clone(fresh_clone: Path) -> None:
    from codebench.bench.registry import get_task
    from codebench.codeio.sources import DEMO_RAW, DEMO_UNIFIED

    prof = load_profile(REPO / "params" / "smoke.yaml")
    assert prof.data_dir is None
    checked = 0
    for spec in prof.evaluate.benchmarks:
        task = get_task(spec)  # data_dir=None: the resolution order applies
        for f in task.data_files():
            assert Path(f).is_file(), f"{spec}: {f}"
            checked += 1
        # codeio reads the run's held-out split (stage 01); pyfamilies(-sft) is generated in code
        if spec.split(":")[0] not in ("codeio", "pyfamilies", "pyfamilies-sft"):
            assert task.data_files(), spec
        if spec != "codeio":
            assert task.problems(limit=2), spec
    assert checked >= 6
    assert paths.missing_data([paths.data_dir() / r for r in paths.shipped_files()]) is None
    data = paths.data_dir()
    for rel in (DEMO_UNIFIED, DEMO_RAW, "mbpp/mbpp.jsonl", "mtpb/mtpb.jsonl"):
        assert (data / rel).is_file(), rel
    problems = check_profile(REPO / "params" / "smoke.yaml")
    assert [p for p in problems if p.severity == "error"] == [], problems
    assert not any("data" in p.key for p in problems), problems
    warnings = preflight(REPO / "params" / "smoke.yaml", log=None)  # what reproduce runs first
    assert all(w.severity == "warning" for w in warnings)
    assert not list((fresh_clone / "cache").rglob("*.part"))


def test_named_data_folder_never_falls_back(
    fresh_clone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(paths.DataDirError, match="^data_dir: /nonexistent does not exist"):
        paths.data_dir("/nonexistent")
    monkeypatch.setenv("CODEBENCH_DATA", "/nonexistent-env")
    with pytest.raises(paths.DataDirError, match=r"^\$CODEBENCH_DATA: /nonexistent-env"):
        paths.data_dir()
    good = fresh_clone / "mydata"
    good.mkdir()
    assert paths.data_source(good) == (good, "data_dir")  # the profile's wins over the env
    monkeypatch.setenv("CODEBENCH_DATA", str(good))
    assert paths.data_source() == (good, "$CODEBENCH_DATA")


def test_shared_data_next_to_the_repo_comes_before_shipped(fresh_clone: Path) -> None:
    shared = fresh_clone / "clone" / "shared" / "data"
    shared.mkdir(parents=True)
    assert paths.data_source() == (shared, "../shared/data")


def test_damaged_shipped_file_is_refused(
    fresh_clone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ship = fresh_clone / "ship"
    ship.mkdir()
    rel = "mtpb/mtpb.jsonl"
    data = b'{"id": 1}\n'
    (ship / "mtpb").mkdir()
    (ship / f"{rel}.xz").write_bytes(lzma.compress(data))
    meta = {"set": "mtpb", "sha256": "0" * 64, "size": len(data), "source": "x", "license": "x"}
    monkeypatch.setattr(paths, "SHIPPED_DIR", ship)
    monkeypatch.setattr(paths, "shipped_manifest", lambda: {rel: meta})
    with pytest.raises(paths.DataDirError, match="is damaged: SHA-256"):
        paths.ensure_shipped(fresh_clone / "out")
    assert not (fresh_clone / "out" / rel).exists()
    assert not [p for p in (fresh_clone / "out" / "mtpb").iterdir()]  # no temp file left
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    assert (paths.ensure_shipped(fresh_clone / "out") / rel).read_bytes() == data


def _mawps_profile(tmp: Path) -> Path:
    prof = tmp / "mawps.yaml"
    prof.write_text(
        "name: mawps\nstages: [evaluate, report]\nevaluate:\n  benchmarks: [pal-mawps]\n"
    )
    return prof


MAWPS = "pal-math/mawps/test.json"


def test_mawps_is_not_shipped() -> None:
    # the example below: a registered benchmark whose data is fetched on first use
    assert MAWPS not in paths.shipped_manifest() and F.set_of(MAWPS) == "pal-math"


def test_set_not_shipped_is_fetched_on_first_use(
    fresh_clone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("CODEBENCH_OFFLINE", raising=False)
    calls = []

    def fake_fetch(dest, sets, *, strict=False, files=None, log=print, **kw):
        calls.append((Path(dest), sets, strict, files))
        (Path(dest) / MAWPS).parent.mkdir(parents=True, exist_ok=True)
        (Path(dest) / MAWPS).write_text('{"input": "1 + 1?", "target": 2}\n')
        return {MAWPS: "fetched"}

    monkeypatch.setattr(F, "fetch", fake_fetch)
    prof = _mawps_profile(fresh_clone)
    # validate does not download: it says what will be fetched, and how to get it now
    (w,) = [p for p in check_profile(prof) if p.key == "evaluate.benchmarks[0]"]
    assert w.severity == "warning" and "fetched on first use" in str(w)
    assert "codebench fetch-data" in str(w) and "--sets pal-math" in str(w)
    assert calls == []
    # the preflight fetches just that file (strict hashes) into the user data folder
    preflight(prof, log=None)
    assert calls == [(fresh_clone / "cache" / "data", ["pal-math"], True, [MAWPS])]
    assert (fresh_clone / "cache" / "data" / MAWPS).is_file()


def test_set_not_shipped_offline_fails_before_work_naming_the_command(
    fresh_clone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(F, "fetch", lambda *a, **k: pytest.fail("fetched while offline"))
    prof = _mawps_profile(fresh_clone)
    with pytest.raises(PreflightError) as ei:
        preflight(prof, log=None)
    (line,) = str(ei.value).splitlines()
    data = fresh_clone / "cache" / "data"
    assert line.startswith(f"{prof}: evaluate.benchmarks[0]: pal-mawps needs {data / MAWPS}")
    assert f"`codebench fetch-data {data} --sets pal-math`" in line
    reason = paths.missing_data([data / MAWPS, data / "mbpp" / "mbpp.jsonl"])
    assert reason == (
        f"data not available here: {data / MAWPS} "
        f"(get it with `codebench fetch-data {data} --sets pal-math`)"
    )


def test_failed_fetch_fails_preflight(fresh_clone: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("CODEBENCH_OFFLINE", raising=False)
    monkeypatch.setattr(F, "fetch", lambda dest, sets, **k: {MAWPS: "failed: x"})
    with pytest.raises(PreflightError, match="--sets pal-math"):
        preflight(_mawps_profile(fresh_clone), log=None)


def test_package_data_ships_every_data_file() -> None:
    """pyproject's package-data globs cover every file under codebench/data (wheel installs)."""
    import fnmatch
    import tomllib

    conf = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = conf["tool"]["setuptools"]["package-data"]["codebench"]
    pkg = paths.SHIPPED_DIR.parent
    files = [f.relative_to(pkg).as_posix() for f in paths.SHIPPED_DIR.rglob("*") if f.is_file()]
    files = [f for f in files if "__pycache__" not in f]
    assert len(files) >= len(paths.shipped_manifest()) + 2  # + MANIFEST.json, README.md

    # fnmatch's * crosses '/', so compare segment by segment as setuptools does
    def covered(f: str) -> bool:
        return any(
            len(g.split("/")) == len(f.split("/"))
            and all(
                fnmatch.fnmatchcase(a, b) for a, b in zip(f.split("/"), g.split("/"), strict=True)
            )
            for g in globs
        )

    assert [f for f in files if not covered(f)] == []


def test_fresh_clone_stage_inputs_read(fresh_clone: Path) -> None:
    """What stage 01 reads (CodeI/O sources, decontamination sets) comes from the shipped data."""
    from codebench.codeio.decontam import eval_texts
    from codebench.codeio.sources import iter_source

    for spec in ("codeio-demo", "codeio-raw"):
        item = next(iter(iter_source(spec, None)))
        assert item.kind in ("unified", "raw"), (spec, item.error)
    for name in ("humaneval", "mbpp", "mtpb"):
        assert next(iter(eval_texts(name, paths.data_dir()))).strip(), name


def test_unwritable_cache_names_the_setting(
    fresh_clone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = fresh_clone / "file"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("CODEBENCH_CACHE", str(blocker / "cache"))
    with pytest.raises(
        paths.DataDirError, match=r"cannot unpack the shipped data .*CODEBENCH_CACHE"
    ):
        paths.data_dir()
