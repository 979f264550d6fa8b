"""pyfamilies functions in the SFT mix: what fine-tuning on the 01 data can teach the tiny model.

The CodeI/O records teach output/input prediction, which the tiny model cannot do (it answers
few of them, see the funnel), so alone they change no benchmark. `family_records` adds
`family_sft` functions of the built-in smoke benchmark's families (`codebench.bench.pyfamilies`)
as chat records in the benchmark's `instruct` protocol (HumanEval's instruct protocol: the
DeepSeek-Coder instruction around the prompt, the answer a ```python block with the completed
function). The base model was trained on these families as plain code continuations and has
never seen the instruction format, so `pyfamilies:instruct` measures what the SFT stage adds.

Honest by construction and checked:

- the functions come from the *training* (name, family) pairs only
  (`pyfamilies.training_instances`, another seed than stage 00's), never an evaluation pair;
- each is checked against the benchmark's evaluation problems with the project's word n-gram
  decontamination (`codebench.codeio.decontam`, set `pyfamilies`, the data stage's n and
  threshold) and for an identical prompt; flagged ones are dropped and counted. The code-shape
  signal is not used here: a family's template is shared with its evaluation problems by
  design (the held-out unit is the unseen name/family pair), as in stage 00;
- the answer is the signature and the one-line body (no docstring copy), so the record stays
  short and the model learns to write the body, not to echo the prompt.
"""

from __future__ import annotations

from typing import Any

# a different stream of training functions than stage 00's corpus (seed offset)
SEED_OFFSET = 1_000_003


def answer(inst: Any) -> str:
    """The instruct answer for one family function: its signature and body in a code block."""
    signature = inst.prompt.splitlines()[0]
    return f"```python\n{signature}\n{inst.solution}```"


def family_records(count: int, seed: int, n: int, threshold: float) -> tuple[list[dict], dict]:
    """`count` decontaminated family functions as SFT records (sft.jsonl and sft_plain.jsonl
    formats at once: `messages` plus `prompt`/`response`), and the decontamination record."""
    from codebench.bench import pyfamilies
    from codebench.bench.humaneval import INSTRUCT_TEMPLATE
    from codebench.codeio.decontam import Decontaminator

    if count <= 0:
        return [], {"requested": 0, "kept": 0, "removed": 0}
    instances = pyfamilies.training_instances(count, seed + SEED_OFFSET)
    built = Decontaminator.build(["pyfamilies"], None, n=n, threshold=threshold)
    words = Decontaminator(n=built.n, threshold=built.threshold, index=built.index)
    evals = pyfamilies.eval_instances()
    eval_prompts = {p.prompt for p in evals}
    eval_pairs = {(p.name, p.family) for p in evals}
    out, removed, top = [], 0, 0.0
    for inst in instances:
        if (inst.name, inst.family) in eval_pairs:  # cannot happen: training pairs only
            raise AssertionError(f"{inst.task_id}: an evaluation pair in the training functions")
        share, _ = words.check(inst.prompt + inst.solution)
        if share >= words.threshold or inst.prompt in eval_prompts:
            removed += 1
            continue
        top = max(top, share)
        user = INSTRUCT_TEMPLATE.format(prompt=inst.prompt.strip())
        reply = answer(inst)
        out.append(
            {
                "id": inst.task_id,
                "fid": inst.task_id,
                "idx": 0,
                "direction": "function",
                "kind": "pyfamilies",
                "family": inst.family,
                "messages": [
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": reply},
                ],
                "prompt": user,
                "response": reply,
            }
        )
    record = {
        "benchmark": pyfamilies.NAME,
        "requested": count,
        "kept": len(out),
        "removed": removed,
        "eval_problems": len(evals),
        "shared_name_family_pairs": 0,
        "max_overlap_kept": round(top, 4),
        "n": built.n,
        "threshold": built.threshold,
        "signal": "word n-grams + exact prompts (families are shared by design)",
    }
    return out, record
