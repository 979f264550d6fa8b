"""`codebench fetch-data DIR`: download the public benchmark sets into a data folder.

Tests and CI never call the network (they read local copies, or mock the fetcher). Each file is
downloaded to `<name>.part`, checked against the SHA-256 of the copy codebench was tested
with, and renamed into place; files already present with the right hash are skipped, and a
`.part` left by an interrupted download is continued with an HTTP range request where the
server allows it, so an interrupted fetch resumes. With `fetch-data` a hash mismatch is kept
but reported (upstream files do change) and recorded in DIR/FETCHED.json; the automatic
first-use fetch (`fetch_missing`, called by `codebench.validate.preflight`) is strict: a file
whose hash differs is removed and reported as a failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from codebench.records import write_json

DS = "https://raw.githubusercontent.com/deepseek-ai/DeepSeek-Coder/main/Evaluation"


@dataclass(frozen=True)
class Source:
    path: str  # destination, relative to the data folder
    url: str
    sha256: str | None  # of the copy codebench was tested with


_HX = {  # local name -> (DeepSeek-Coder file suffix, sha256 of the tested copy)
    "cpp": ("cpp", "8717eabdf202137158c84506144b0fb1e73d5ecccbe5363ec79009ca014df629"),
    "java": ("java", "b21b015763452ec4f9f4e0e6425148ec331ace4da1232c8b4d441186185f6265"),
    "js": ("js", "634e2eee8d6e22de07c121b972207683dd96be76256bf44bdfc1a3386b739287"),
    "sh": ("sh", "2f702106e9ce4aa7385de568d9248d6c57c90382d782b162cb9e072fbd01ccf8"),
    "python": ("python", "0eae07adadbb00d51962fdb78b9e2a26bfa8ade85dc54eb57cae9bffed2f5c54"),
    "ts": ("ts", "4b1af1050c9f226335d54a8c80553c39454a525cace3e67bdcfcc9092ba02637"),
    "go": ("go", "7f5dfe3ff001049b1221e9d21a8119b5cbc38eb87c97fefc5d57fa7adc1df888"),
    "php": ("php", "bebd86875b1d8e65a8b7e692ed7bdf64612b44aa388825ea4dab40c7047c786b"),
    "rb": ("rb", "4204395b835019e32d55513325a0fad01c6d382fd1eb97b516f0458d00058302"),
    "cs": ("cs", "1c3fe18be10addc2d0b96311f4db192ae3232e08628d17768d889d6ab87be224"),
    "rs": ("rust", "e33f562838e973b7e6b8d76dbc1fb84b076d7426629b4cdc624f12678778d2fa"),
}
_PAL = {
    "gsm8k": "9f098df7ff4522078d6ccec27a5c38a454790fdb51131bedfaa0e490070d5394",
    "gsm-hard": "45db606263a4902580aba3974e8b7fb3f66012877889209af206b1c1b2f208f5",
    "svamp": "d0826ff1264f3860e46fc4e71db9e31d2d188960db87090e22677f9493e67a0d",
    "asdiv": "5759580385e706f961a30d4c07d6925b35c3f7c86d6c50bc413957169693dad2",
    "mawps": "00ffe31161be8623a3d36741830edbba87a3aee0109f693810fe40b9d5d91b8b",
    "math": "3371949f33dd702d04b43fddd7d53a028de0aaca0e76abb1b875a050297b3aa4",
}

SOURCES: dict[str, list[Source]] = {
    "humaneval-x": [
        Source(
            f"humaneval-x/humaneval-{k}.jsonl", f"{DS}/HumanEval/data/humaneval-{v[0]}.jsonl", v[1]
        )
        for k, v in _HX.items()
    ],
    "mbpp": [
        Source(
            "mbpp/mbpp.jsonl",
            "https://raw.githubusercontent.com/google-research/google-research/master/mbpp/mbpp.jsonl",
            "ccf64ceae9c5403bf50a044cb6d505bfd2a2963ee58338ba268fd65beab92a9f",
        ),
        Source(
            "mbpp/mbpp_test.jsonl",
            f"{DS}/MBPP/data/mbpp_test.jsonl",
            "e57e9c9999aa35128f4d0b6a486979c2c1dce4f4b8c0680bf92bc6f5f147779f",
        ),
    ],
    "leetcode": [
        Source(
            "leetcode/20240121-Jul.jsonl",
            f"{DS}/LeetCode/data/20240121-Jul.jsonl",
            "7630417651034cfef749d2b21b47163921e1199e078b39ecbc218b4e7c73fbfc",
        )
    ],
    "mtpb": [
        Source(
            "mtpb/mtpb.jsonl",
            "https://raw.githubusercontent.com/salesforce/CodeGen/main/codegen1/benchmark/mtpb.jsonl",
            "3ab79ddb160f484a63491330ba72204930d56cc946f7c0c5fb469622a941f89c",
        )
    ],
    "pal-math": [
        Source(f"pal-math/{k}/test.json", f"{DS}/PAL-Math/datasets/{k}/test.json", h)
        for k, h in _PAL.items()
    ],
    "codeio": [
        Source(
            "codeio/rawcode_1k.jsonl",
            "https://raw.githubusercontent.com/hkust-nlp/CodeIO/main/data/rawcode_1k.jsonl",
            "95330e9f9189939c96e0561f694baa63148f70210efdf308d3902ad9fb9355de",
        ),
        Source(
            "codeio/rawcode_1k_parsed.jsonl",
            "https://raw.githubusercontent.com/hkust-nlp/CodeIO/main/data/rawcode_1k_parsed.jsonl",
            "810a69b819d4d6b28da5d146bcdde9bbac776545f5da146ccecfd88570d46e6a",
        ),
    ],
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while b := fh.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def set_of(relpath: str) -> str | None:
    """The fetch-data set a data-folder file belongs to (None when codebench cannot fetch it)."""
    for name, sources in SOURCES.items():
        if any(src.path == relpath for src in sources):
            return name
    return None


def fetch_command(dest: str | os.PathLike, sets: list[str]) -> str:
    """The shell command that fetches `sets` into `dest`."""
    return f"codebench fetch-data {dest} --sets {' '.join(sorted(set(sets)))}"


def network_allowed() -> bool:
    """False when the user asked for offline mode ($CODEBENCH_OFFLINE, $HF_HUB_OFFLINE)."""
    for var in ("CODEBENCH_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return False
    return True


def _download(url: str, tmp: Path, timeout: float) -> None:
    """Download `url` to `tmp`, continuing a partial `tmp` with a range request if possible."""
    have = tmp.stat().st_size if tmp.is_file() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        r = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not have:  # 416: the partial file is already complete
            raise
        return
    with r:
        mode = "ab" if have and getattr(r, "status", 200) == 206 else "wb"
        with tmp.open(mode) as fh:
            while chunk := r.read(1 << 20):
                fh.write(chunk)


def fetch(
    dest: str | os.PathLike,
    sets: list[str] | None = None,
    *,
    base_url: str | None = None,
    timeout: float = 60,
    strict: bool = False,
    files: list[str] | None = None,
    log=print,
) -> dict:
    """Download `sets` (default all) into `dest`; return {path: status}. `base_url` replaces
    every source's host part with a mirror (used by the tests with a local server). `strict`:
    a downloaded file whose SHA-256 differs from the tested copy is removed and reported as
    failed (instead of kept with a note). `files`: only these paths of the sets."""
    dest = Path(dest)
    unknown = [s for s in sets or [] if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown data set(s) {unknown}; known: {', '.join(SOURCES)}")
    status: dict[str, str] = {}
    for name in sets or list(SOURCES):
        for src in SOURCES[name]:
            if files is not None and src.path not in files:
                continue
            target = dest / src.path
            if target.is_file() and src.sha256 and _sha256(target) == src.sha256:
                status[src.path] = "present"
                continue
            url = f"{base_url.rstrip('/')}/{src.path}" if base_url else src.url
            tmp = target.with_suffix(target.suffix + ".part")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                _download(url, tmp, timeout)
            except (OSError, ValueError) as e:  # URLError and HTTPError are OSErrors
                status[src.path] = f"failed: {url}: {e}"
                log(f"  {src.path}: FAILED ({e}); rerun to resume")
                continue
            got = _sha256(tmp)
            if src.sha256 is not None and got != src.sha256 and strict:
                tmp.unlink(missing_ok=True)
                status[src.path] = f"failed: {url}: SHA-256 {got} differs from {src.sha256}"
                log(f"  {src.path}: FAILED (hash differs from the tested copy)")
                continue
            os.replace(tmp, target)
            ok = src.sha256 is None or got == src.sha256
            status[src.path] = "fetched" if ok else "fetched (hash differs from the tested copy)"
            log(f"  {src.path}: {status[src.path]}")
    with contextlib.suppress(OSError):  # a read-only destination failed every download above
        write_json(dest / "FETCHED.json", status)
    return status


def fetch_missing(
    dest: str | os.PathLike, relpaths: list[str], *, log=print, fetcher=None
) -> dict[str, str]:
    """Fetch the sets holding `relpaths` into `dest` (strict hashes). Returns {relpath: status}
    for the requested files; files of no known set are 'unknown'. `fetcher` replaces `fetch`
    (tests pass a fake: they never touch the network)."""
    fetcher = fetcher or fetch
    sets = sorted({s for r in relpaths if (s := set_of(r))})
    wanted = [r for r in relpaths if set_of(r)]
    status = fetcher(dest, sets, strict=True, files=wanted, log=log) if sets else {}
    return {
        r: status.get(r, "unknown" if set_of(r) is None else "failed: not fetched")
        for r in relpaths
    }
