"""Code explanation: the model explains reference code; scored as text and by a round trip.

Specs: `explain:humaneval` (164 canonical solutions) and `explain:mbpp` (the MBPP test split).

1. Explain. The model gets the reference solution (docstring removed, so it cannot copy the
   answer) in a chat message (`explain_messages`, also used by the playground; base models use the documented
   fallback template) and writes an explanation.
2. Text metrics against the problem's own description (HumanEval's docstring, MBPP's
   text): corpus BLEU and chrF (sacrebleu, 0-100) and BERTScore F1 with a local encoder
   (`metrics.bertscore`, MiniLM by default, idf off), with per-problem 95% bootstrap
   intervals where the metric is a per-problem mean.
3. Round trip. The explanation alone (plus the function signature) goes to a code model —
   the same backend, or `roundtrip_backend` — whose answer runs against the problem's tests
   in the sandbox through the source benchmark's own instruct path (`extract`, `job`,
   `verdict`). `roundtrip_pass@1` is the share that passes; `codebleu` compares that code
   with the reference solution (`metrics.codebleu`).

The task runs itself (`runs_itself = True`: `evaluate(backend, out_dir, ...)`), because it
needs two generations per problem and text metrics; it writes `samples.jsonl` (resumable,
keyed by task id) and `results.json` (`metrics` with `value`, `ci_low`, `ci_high`) like every
benchmark.
"""

from __future__ import annotations

import ast
import inspect
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codebench import metrics
from codebench.bench.tasks import BenchError, Problem, Task, register

EXPLAIN_INSTRUCTION = (
    "Explain what the following Python code does, in plain English, in a few sentences."
)


def explain_messages(code: str) -> list[dict]:
    """Chat messages asking for an explanation of `code` (the benchmark and the playground)."""
    return [
        {"role": "user", "content": f"{EXPLAIN_INSTRUCTION}\n\n```python\n{code.rstrip()}\n```"}
    ]


ROUNDTRIP_TEMPLATE = (
    "Write a Python function with this signature:\n\n```python\n{signature}\n```\n\n"
    "It must do the following:\n{explanation}\n\n"
    "Reply with the whole function in one ```python code block."
)
EXPLAIN_STOPS = ["\n### Instruction", "<|endoftext|>"]


def _is_doc(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def strip_docstrings(code: str) -> str:
    """`code` without docstrings (and other bare string statements); other lines verbatim.

    A body left empty becomes `pass`, so the code stays valid. HumanEval/115 puts its
    docstring after an import, so every bare string statement goes, not only the first.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    lines = code.splitlines()
    drop: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        docs = [st for st in body if _is_doc(st) and st.lineno != getattr(node, "lineno", -1)]
        for st in docs:
            drop.update(range(st.lineno, st.end_lineno + 1))
        if docs and len(docs) == len(body) and not isinstance(node, ast.Module):
            first = docs[0]
            lines[first.lineno - 1] = re.match(r"\s*", lines[first.lineno - 1]).group(0) + "pass"
            drop.discard(first.lineno)
    return "\n".join(x for i, x in enumerate(lines, 1) if i not in drop).rstrip() + "\n"


def signature_of(code: str, entry_point: str | None) -> str:
    """The `def name(args) -> ret:` line of `entry_point` in `code` (first def when unnamed)."""
    name = re.escape(entry_point) if entry_point else r"\w+"
    pat = r"^[ \t]*(?:async\s+)?def\s+" + name + r"\s*\(.*?\)\s*(?:->[^:]*)?:"
    m = re.search(pat, code, re.M | re.S)
    return m.group(0).strip() if m else f"def {entry_point or 'solution'}(...):"


def humaneval_description(prompt: str, entry_point: str) -> str:
    """The natural-language part of a HumanEval docstring (examples and doctests cut)."""
    try:
        tree = ast.parse(prompt + "    pass\n")
        fn = next(
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == entry_point
        )
        doc = next((inspect.cleandoc(st.value.value) for st in fn.body if _is_doc(st)), "")
    except (SyntaxError, StopIteration):
        doc = ""
    keep = []
    for line in doc.splitlines():
        if re.match(
            r"\s*(>>>|for example|example|examples?:|e\.g\.|\w+\(.*\)\s*(==|➞|=>|->))", line, re.I
        ):
            break
        keep.append(line.strip())
    text = " ".join(x for x in keep if x).strip()
    return text or next((x.strip() for x in doc.splitlines() if x.strip()), "")


@register("explain")
class Explain(Task):
    """Explain HumanEval/MBPP reference code; text metrics plus an execution round trip."""

    name = "explain"
    language = "python"
    protocols = ("humaneval", "mbpp")
    runs_itself = True
    canary_count = 2

    def source(self, protocol: str = "instruct") -> Task:
        """The source benchmark's task (instruct protocol: the round trip's extract/job/verdict)."""
        if self.protocol == "humaneval":
            from codebench.bench.humaneval import HumanEval as cls
        else:
            from codebench.bench.mbpp import MBPP as cls
        return cls(protocol=protocol, data_dir=self.data_dir)

    def load(self) -> list[Problem]:
        out = []
        for p in self.source().problems():
            if p.reference is None:
                continue
            if self.protocol == "humaneval":
                code = strip_docstrings(p.prompt + p.reference)
                description = humaneval_description(p.prompt, p.entry_point or "")
            else:
                code = strip_docstrings(p.reference)
                m = re.match(
                    r"You are an expert Python programmer, and here is your task: (.*?) Your code should pass",
                    p.meta.get("statement", ""),
                    re.S,
                )
                description = (
                    m.group(1).strip() if m else p.meta.get("statement", "").split("\n")[0]
                )
            out.append(
                Problem(
                    task_id=p.task_id,
                    prompt=code,
                    entry_point=p.entry_point,
                    tests=p.tests,
                    reference=description,
                    meta={"code": code, "signature": signature_of(code, p.entry_point)},
                )
            )
        if not out:
            raise BenchError(f"explain:{self.protocol}: no problems with reference solutions")
        return out

    def messages(self, problem: Problem) -> list[dict]:
        return explain_messages(problem.meta["code"])

    def prompt(self, problem: Problem, chat=None) -> str:
        if chat is None:
            raise BenchError("explain: needs a chat renderer (backend.chat_prompt)")
        return chat(self.messages(problem))

    def stop(self, problem: Problem) -> list[str]:
        return list(EXPLAIN_STOPS)

    def roundtrip_messages(self, problem: Problem, explanation: str) -> list[dict]:
        return [
            {
                "role": "user",
                "content": ROUNDTRIP_TEMPLATE.format(
                    signature=problem.meta["signature"],
                    explanation=explanation.strip() or "(no explanation)",
                ),
            }
        ]

    def reference(self, problem: Problem) -> str | None:
        return problem.reference

    def wrong(self, problem: Problem) -> str:
        return "The quick brown fox jumps over the lazy dog."

    # ------------------------------------------------------------------ running
    def evaluate(
        self,
        backend: Any,
        out_dir: str | Path,
        *,
        cfg: Any = None,
        limit: int | None = None,
        roundtrip_backend: Any = None,
        roundtrip_cfg: Any = None,
        sandbox: Any = None,
        encoder: str | Path | None = None,
        variant: str | None = None,
        seed: int = 0,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> dict:
        """Explain, score, round-trip; write samples.jsonl and results.json in `out_dir`.

        `cfg`/`roundtrip_cfg`: GenerationConfig (greedy, 128/256 new tokens by default).
        `sandbox`: an open `codebench.sandbox.Sandbox` (one is opened when None).
        Already-scored problems in samples.jsonl are kept (resumable).
        """
        from codebench import results as schema
        from codebench.records import JsonlStore

        if cfg is None or roundtrip_cfg is None:
            from codebench.generate import GenerationConfig

            cfg = cfg or GenerationConfig(max_new_tokens=128, temperature=0.0)
            roundtrip_cfg = roundtrip_cfg or GenerationConfig(max_new_tokens=256, temperature=0.0)

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        from dataclasses import replace

        cfg = replace(cfg, stop=list(dict.fromkeys([*(cfg.stop or []), *EXPLAIN_STOPS])))
        rt_backend = roundtrip_backend or backend
        rt_cfg = roundtrip_cfg
        problems = self.problems(limit)
        t0 = time.monotonic()
        with JsonlStore(out / "samples.jsonl", "task_id") as store:
            todo = [p for p in problems if not store.has((p.task_id,))]
            if todo:
                self._run_batch(
                    todo, backend, cfg, rt_backend, rt_cfg, sandbox, encoder, store, progress
                )
            records = [store.records[(p.task_id,)] for p in problems]
        results = summarize(records, seed=seed)
        results.update(
            status="ok",
            benchmark=self.spec,
            variant=variant,
            problems=len(records),
            duration_s=round(time.monotonic() - t0, 2),
            settings={
                "explain": _cfg_dict(cfg),
                "roundtrip": _cfg_dict(rt_cfg),
                "roundtrip_model": "same" if rt_backend is backend else repr(rt_backend),
                "encoder": str(encoder) if encoder else "default (MiniLM)",
            },
        )
        return schema.write(out / "results.json", schema.BenchmarkResults, results)

    def _run_batch(
        self, todo, backend, cfg, rt_backend, rt_cfg, sandbox, encoder, store, progress
    ) -> None:

        tick = progress or (lambda *_: None)
        tick("explain", 0, len(todo))
        prompts = [self.prompt(p, backend.chat_prompt) for p in todo]
        explanations = [_clean_explanation(c[0].text) for c in backend.generate(prompts, cfg)]
        tick("explain", len(todo), len(todo))
        rt_prompts = [
            rt_backend.chat_prompt(self.roundtrip_messages(p, e))
            for p, e in zip(todo, explanations, strict=True)
        ]
        raws = [c[0].text for c in rt_backend.generate(rt_prompts, rt_cfg)]
        verdicts = self._run_tests(todo, raws, sandbox, tick)
        refs = [p.reference or "" for p in todo]
        bert = metrics.bertscore(explanations, refs, model_path=encoder)["f1"]
        for i, p in enumerate(todo):
            code = verdicts[i]["code"]
            store.append(
                {
                    "task_id": p.task_id,
                    "explanation": explanations[i],
                    "reference_explanation": refs[i],
                    "roundtrip_raw": raws[i],
                    "roundtrip_program": verdicts[i]["program"],
                    "outcome": verdicts[i]["outcome"],
                    "detail": verdicts[i]["detail"][:500],
                    "passed": verdicts[i]["outcome"] == "passed",
                    "bleu": metrics.sentence_bleu(explanations[i], refs[i]),
                    "chrf": metrics.chrf([explanations[i]], [refs[i]]),
                    "bertscore_f1": bert[i],
                    "codebleu": _sample_codebleu(code, p.meta["code"]),
                    "code": code,
                    "reference_code": p.meta["code"],
                }
            )

    def _run_tests(self, todo, raws, sandbox, tick) -> list[dict]:
        src = self.source("instruct")
        by_id = {p.task_id: p for p in src.problems()}
        jobs, programs, codes = [], [], []
        for p, raw in zip(todo, raws, strict=True):
            sp = by_id[p.task_id]
            from codebench.bench.extract import extract_fenced

            codes.append(extract_fenced(raw, "python", sp.entry_point))
            program = src.extract(sp, raw)
            programs.append(program)
            jobs.append(src.job(sp, program))
        own = sandbox is None
        if own:
            from codebench.sandbox import Sandbox

            sandbox = Sandbox(workers=None, timeout=5.0).__enter__()
        try:
            results = sandbox.map(
                jobs, progress=lambda done, total, _r: tick("roundtrip tests", done, total)
            )
        finally:
            if own:
                sandbox.__exit__(None, None, None)
        out = []
        for p, program, code, r in zip(todo, programs, codes, results, strict=True):
            outcome, detail = src.verdict(by_id[p.task_id], program, r)
            out.append(
                {
                    "outcome": str(getattr(outcome, "value", outcome)),
                    "detail": detail or "",
                    "program": program,
                    "code": code,
                }
            )
        return out


def _clean_explanation(text: str) -> str:
    for s in EXPLAIN_STOPS:
        text = text.split(s)[0]
    return text.strip()


def _cfg_dict(cfg: Any) -> dict:
    from dataclasses import asdict, is_dataclass

    return asdict(cfg) if is_dataclass(cfg) else dict(vars(cfg))


def summarize(records: list[dict], *, seed: int = 0) -> dict:
    """results.json metrics from sample records: corpus BLEU/chrF, means with bootstrap CIs."""
    from codebench.passk import bootstrap_ci

    if not records:
        return {"metrics": {}}
    hyps = [r["explanation"] for r in records]
    refs = [r["reference_explanation"] for r in records]

    def mean_ci(key: str, i: int) -> dict:
        vals = [float(r[key]) for r in records]
        lo, hi = bootstrap_ci(vals, seed=seed + i)
        return {"value": sum(vals) / len(vals), "ci_low": lo, "ci_high": hi, "problems": len(vals)}

    codebleu = _corpus_codebleu(records, mean_ci)
    return {
        "metrics": {
            "bertscore_f1": mean_ci("bertscore_f1", 1),
            "bleu": {"value": metrics.bleu(hyps, refs), "problems": len(records)},
            "chrf": {"value": metrics.chrf(hyps, refs), "problems": len(records)},
            "roundtrip_pass@1": mean_ci("passed", 2),
            "codebleu": codebleu,
        }
    }


def _sample_codebleu(code: str | None, reference: str) -> float | None:
    """One sample's CodeBLEU, or None when the reference package is not installed."""
    try:
        return metrics.codebleu([code or " "], [reference])["codebleu"]
    except metrics.MetricUnavailable:
        return None


def _corpus_codebleu(records: list[dict], mean_ci) -> dict:
    """Corpus CodeBLEU over the records (reference package), or why it was skipped."""
    if not all(r.get("reference_code") for r in records):
        if any(r.get("codebleu") is None for r in records):
            return {"skipped": "no reference code or CodeBLEU package for some samples"}
        return mean_ci("codebleu", 3)
    try:
        cb = metrics.codebleu(
            [r["code"] or " " for r in records], [r["reference_code"] for r in records]
        )
    except metrics.MetricUnavailable as e:
        return {"skipped": str(e)}
    return {"value": cb["codebleu"], "problems": len(records)}
