"""LeetCode contest benchmark in DeepSeek-Coder's format: data shape, both protocols' prompt
bytes and extraction, class-based tests decided on the trusted side, the custom JSONL path with
the same shape, and fetch-on-first-use. The fixture is codebench's own problems written in the
exact upstream shape (tests never touch the network; upstream's file is not committed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from codebench import fetch as F
from codebench.bench import get_task
from codebench.bench import leetcode as L
from codebench.bench.canary import run_canaries
from codebench.bench.tasks import BenchError

FIXTURE = Path(__file__).parent / "fixtures" / "leetcode" / "20240121-Jul.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
UPSTREAM_KEYS = {"task_id", "url", "title", "meta", "prompt", "prompt_sft", "test", "start_time"}
PUSHES = "weekly-contest-381-minimum-number-of-pushes-to-type-word-i"
LINKED = "weekly-contest-358-double-a-number-represented-as-a-linked-list"

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")


@pytest.fixture(scope="module")
def sandbox():
    from codebench.sandbox import Sandbox

    with Sandbox(timeout=10.0) as sb:
        yield sb


def _task(protocol: str, path: Path = FIXTURE):
    return get_task(f"leetcode:{protocol}", path=str(path))


def _verdicts(task, sandbox, raws: dict[str, str]) -> dict[str, str]:
    probs = {p.task_id: p for p in task.problems()}
    progs = {t: task.extract(probs[t], raw) for t, raw in raws.items()}
    results = sandbox.map([task.job(probs[t], progs[t]) for t in raws])
    return {t: task.verdict(probs[t], progs[t], r)[0] for t, r in zip(raws, results, strict=True)}


def test_fixture_has_the_upstream_shape() -> None:
    assert all(set(r) == UPSTREAM_KEYS for r in ROWS)
    assert all(r["prompt"].endswith("\n        ") for r in ROWS)
    assert all(r["test"].lstrip().startswith("my_solution = Solution()") for r in ROWS)


def test_problems_load_with_method_and_difficulty() -> None:
    probs = _task("instruct").problems()
    assert [p.task_id for p in probs] == [r["task_id"] for r in ROWS]
    by_id = {p.task_id: p for p in probs}
    assert by_id[PUSHES].entry_point == "minimumPushes"
    assert by_id[LINKED].entry_point == "doubleIt"
    assert [p.meta["difficulty"] for p in probs] == ["Easy", "Easy", "Medium", "Hard"]
    assert _task("base").info()["reference_protocol"].startswith("codebench")
    assert "LeetCode" in _task("instruct").info()["reference_protocol"]


def test_instruct_prompt_is_prompt_sft_byte_for_byte() -> None:
    task = _task("instruct")
    seen = []
    prompt = task.prompt(task.problems()[0], chat=lambda msgs: seen.append(msgs) or "X")
    assert prompt == "X"
    assert seen == [[{"role": "user", "content": ROWS[0]["prompt_sft"]}]]


def test_base_prompt_drops_only_the_trailing_indentation() -> None:
    task = _task("base")
    for p, row in zip(task.problems(), ROWS, strict=True):
        assert task.prompt(p) == row["prompt"][: -len("        ")]
        assert task.prompt(p).endswith(":\n")
    assert task.stop(task.problems()[0]) == ["\ndef", "\nclass", "\nif", "\nprint", "\n#"]


def test_instruct_extraction_follows_evaluate_leetcode() -> None:
    head = "class Solution:\n    def f(self, x: int) -> int:"
    body = "        return x + 1\n"
    fenced = f"Sure.\n```python\n{head}\n{body}```\nMore text.\n```python\nprint(1)\n```"
    assert L.instruct_program(head, fenced) == L.HEADER + head + "\n" + body.rstrip("\n") + "\n"
    tagged = f"[PYTHON]\n{head}\n{body}[/PYTHON]"
    assert L.instruct_program(head, tagged) == L.instruct_program(head, fenced)
    # an answer that starts with the method body goes under the prompt's class
    assert L.instruct_program(head, "\n" + body) == L.HEADER + head + "\n\n" + body + "\n"
    # no fence: the text up to the first top-level def/class/if/#/print
    plain = f"{head}\n{body}\nif __name__ == '__main__':\n    print(Solution().f(1))\n"
    assert L.instruct_program(head, plain) == L.HEADER + f"{head}\n{body}" + "\n"
    # the import header is the reference harness's, numpy only where it exists
    assert "from typing import *" in L.HEADER and "from collections import *" in L.HEADER


def test_base_extraction_keeps_class_helpers_and_cuts_top_level_code() -> None:
    prompt = ROWS[0]["prompt"]
    comp = (
        "        return self._h(word)\n\n    def _h(self, w):\n        return len(w)\n"
        "\nprint(Solution().minimumPushes('ab'))\n"
    )
    prog = L.base_program(prompt, comp)
    assert prog.startswith(L.HEADER + prompt[:-8])
    assert "def _h(self, w)" in prog and "print(Solution()" not in prog


def test_bad_rows_name_line_and_field(tmp_path: Path) -> None:
    bad = dict(ROWS[0], prompt_sft="")
    f = tmp_path / "lc.jsonl"
    f.write_text(json.dumps(ROWS[1]) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(BenchError, match=r"lc.jsonl:2: field 'prompt_sft'"):
        _task("instruct", f).problems()
    f.write_text(json.dumps(dict(ROWS[0], test="assert f(1) == 2\n")) + "\n")
    with pytest.raises(BenchError, match="lc.jsonl:1: not in DeepSeek-Coder's LeetCode shape"):
        _task("base", f).problems()


@needs_bwrap
@pytest.mark.parametrize("protocol", ["instruct", "base"])
def test_canaries_pass_on_class_based_tests(sandbox, protocol: str) -> None:
    task = _task(protocol)
    report = run_canaries(task, sandbox)
    assert report["ok"], report["reason"]
    kinds = {(c["task_id"], c["kind"]): c["outcome"] for c in report["checks"]}
    assert kinds[(LINKED, "reference")] == "passed"  # ListNode built and read through handles
    assert kinds[(LINKED, "wrong")] == "failed"
    assert len(kinds) == 6


@needs_bwrap
def test_correct_and_forged_answers(sandbox) -> None:
    task = _task("instruct")
    head = "class Solution:\n    def minimumPushes(self, word: str) -> int:\n"
    good = "```python\n" + head + "        return sum(i // 8 + 1 for i in range(len(word)))\n```"
    # an object equal to everything: the tests compare handles, which equal only themselves
    forged = (
        "```python\nclass Any:\n    def __eq__(self, o):\n        return True\n"
        + head
        + "        return Any()\n```"
    )
    # `List` without an import: the harness's header supplies it
    cost = (
        "```python\nclass Solution:\n    def minimumCost(self, nums: List[int]) -> int:\n"
        "        return nums[0] + sum(sorted(nums[1:])[:2])\n```"
    )
    cost_id = ROWS[1]["task_id"]
    got = _verdicts(task, sandbox, {PUSHES: good, cost_id: cost})
    assert got == {PUSHES: "passed", cost_id: "passed"}
    assert _verdicts(task, sandbox, {PUSHES: forged}) == {PUSHES: "failed"}


# ---------------------------------------------------------------------- custom JSONL path
def _custom_file(tmp_path: Path, with_reference: bool) -> Path:
    f = tmp_path / "mine.jsonl"
    rows = []
    for r in ROWS[:3]:
        row = dict(r)
        if with_reference and r["task_id"] in L.REFERENCES:
            row["reference"] = L.REFERENCES[r["task_id"]]
        rows.append(row)
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


def test_custom_accepts_the_leetcode_shape(tmp_path: Path) -> None:
    f = _custom_file(tmp_path, with_reference=True)
    task = get_task(f"custom:{f}")
    probs = task.problems()
    assert [p.tests for p in probs] == [r["test"] for r in ROWS[:3]]  # `test` read as `tests`
    assert task.prompt(probs[0]) == ROWS[0]["prompt"][:-8]
    inst = get_task(f"custom:{f}:instruct")
    assert inst.messages(inst.problems()[0]) == [{"role": "user", "content": ROWS[0]["prompt_sft"]}]


@needs_bwrap
@pytest.mark.parametrize("protocol", ["base", "instruct"])
def test_custom_leetcode_scores_like_the_builtin(tmp_path: Path, sandbox, protocol: str) -> None:
    f = _custom_file(tmp_path, with_reference=True)
    custom = get_task(f"custom:{f}:{protocol}")
    report = run_canaries(custom, sandbox)
    assert report["ok"], report["reason"]
    assert {c["kind"] for c in report["checks"]} == {"reference", "wrong"}
    builtin = _task(protocol)
    raw = builtin.reference(builtin.problems()[0])
    assert _verdicts(custom, sandbox, {PUSHES: raw}) == {PUSHES: "passed"}


def test_reference_free_custom_file_says_canaries_cannot_run(tmp_path: Path) -> None:
    f = _custom_file(tmp_path, with_reference=False)
    report = run_canaries(get_task(f"custom:{f}"), sandbox=None)
    assert not report["ok"] and report["checks"] == []
    assert "canaries cannot run" in report["reason"] and "no score is reported" in report["reason"]


def test_reference_free_custom_file_is_reported_by_validate(tmp_path: Path) -> None:
    from codebench.validate import check_profile

    f = _custom_file(tmp_path, with_reference=False)
    prof = tmp_path / "p.yaml"
    prof.write_text(f"name: p\nstages: [evaluate]\nevaluate:\n  benchmarks: ['custom:{f}']\n")
    (err,) = [p for p in check_profile(prof) if p.key == "evaluate.benchmarks[0]"]
    assert err.severity == "error" and "canaries cannot run" in str(err)
    prof.write_text(
        f"name: p\nstages: [evaluate]\nevaluate:\n  canaries: false\n  benchmarks: ['custom:{f}']\n"
    )
    (warn,) = [p for p in check_profile(prof) if p.key == "evaluate.benchmarks[0]"]
    assert warn.severity == "warning"


# ---------------------------------------------------------------------- data
def test_data_is_fetched_from_deepseek_coder_with_a_hash() -> None:
    (src,) = F.SOURCES["leetcode"]
    assert src.path == L.DATA_FILE == "leetcode/20240121-Jul.jsonl"
    assert src.url.endswith("/DeepSeek-Coder/main/Evaluation/LeetCode/data/20240121-Jul.jsonl")
    assert src.sha256 and len(src.sha256) == 64
    assert F.set_of(L.DATA_FILE) == "leetcode"


def test_validate_knows_leetcode_and_fetches_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codebench.validate import check_profile

    data = tmp_path / "data"
    data.mkdir()
    prof = tmp_path / "lc.yaml"
    prof.write_text(
        f"name: lc\ndata_dir: {data}\nstages: [evaluate]\nevaluate:\n  benchmarks: [leetcode]\n"
    )
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("CODEBENCH_OFFLINE", raising=False)
    found = [p for p in check_profile(prof) if p.key == "evaluate.benchmarks[0]"]
    assert found and all("unknown benchmark" not in str(p) for p in found)
    assert any("--sets leetcode" in str(p) for p in found)


@needs_bwrap
def test_end_to_end_through_the_runner_with_difficulty_table(tmp_path: Path, sandbox) -> None:
    """The stage-04 path (canaries, generation, trusted verdicts, results.json) on the fixture:
    a chat model that solves only the first problem."""
    from codebench.bench import EvalConfig, evaluate
    from codebench.generate import Completion
    from codebench.models import apply_chat

    good = "```python\n" + L.base_prompt(ROWS[0]["prompt"]) + L.REFERENCES[PUSHES] + "```\n"

    class Chat:
        tokenizer = None

        def chat_prompt(self, messages):
            return apply_chat(None, messages)

        def generate(self, prompts, cfg, progress=None):
            return [
                [Completion(good if "keypad" in p else "no idea", "stop", 3)] * cfg.n
                for p in prompts
            ]

    res = evaluate(
        Chat(),
        "leetcode:instruct",
        tmp_path,
        model="m",
        config=EvalConfig(max_new_tokens=64, options={"path": str(FIXTURE)}),
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert res["status"] == "ok" and res["canary"]["ok"]
    assert res["metrics"]["pass@1"]["value"] == pytest.approx(0.25)
    assert res["by_difficulty"]["Easy"] == {"problems": 2, "solved": 1, "pass@1": 0.5}
    assert res["by_difficulty"]["Hard"]["pass@1"] == 0.0


def test_codebench_eval_fetches_leetcode_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh clone (no ../shared, no $CODEBENCH_DATA): `codebench eval --benchmarks leetcode`
    fetches the file into the user data folder before any model loads (fetcher faked: tests
    never touch the network); offline, one error names the command."""
    from codebench import paths
    from codebench.evaluate_cli import ensure_data

    root = tmp_path / "clone" / "codebench"
    root.mkdir(parents=True)
    monkeypatch.setattr(paths, "REPO_ROOT", root)
    monkeypatch.delenv("CODEBENCH_DATA", raising=False)
    monkeypatch.setenv("CODEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("CODEBENCH_OFFLINE", raising=False)
    paths._READY.clear()
    task = get_task("leetcode")
    with pytest.raises(BenchError, match=r"data not available here: .*--sets leetcode"):
        task.problems()
    calls = []

    def fake(dest, sets, *, strict=False, files=None, log=print, **kw):
        calls.append((sets, strict, files))
        (Path(dest) / L.DATA_FILE).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURE, Path(dest) / L.DATA_FILE)
        return {L.DATA_FILE: "fetched"}

    ensure_data([task], None, fetcher=fake, log=lambda *_: None)
    assert calls == [(["leetcode"], True, [L.DATA_FILE])]
    assert len(get_task("leetcode").problems()) == len(ROWS)
    (tmp_path / "cache" / "data" / L.DATA_FILE).unlink()
    monkeypatch.setenv("CODEBENCH_OFFLINE", "1")
    with pytest.raises(BenchError, match=r"codebench fetch-data .* --sets leetcode"):
        ensure_data([get_task("leetcode")], None, fetcher=fake, log=lambda *_: None)
    assert len(calls) == 1
