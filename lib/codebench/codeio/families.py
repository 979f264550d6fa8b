"""pyfamilies functions in the SFT mix: what fine-tuning on the 01 data can teach the tiny model.

The CodeI/O records teach output/input prediction, which the tiny model cannot do (it answers
few of them, see the funnel), so alone they change no benchmark. `family_records` adds
`family_sft` functions of the built-in smoke benchmark (`codebench.bench.pyfamilies`) as plain
prompt-completion records (`{"prompt", "completion"}`: the signature and docstring, then the
one-line body), the form its base protocol evaluates:

- `SFT_SHARE` of them come from `pyfamilies.SFT_FAMILIES`, families stage 00 never trains on;
  their held-out problems are the `pyfamilies-sft` benchmark, where the base model is near 0
  by construction, so it measures what the SFT stage teaches;
- the rest come from the families stage 00 trained on (rehearsal): without them the LoRA
  forgets them (measured on the default run: pyfamilies 0.367 -> 0.147 with new families
  only, 0.380 with this mix).

Honest by construction and checked:

- the functions come from the *training* (name, family) pairs only
  (`pyfamilies.training_instances`, another seed than stage 00's), never an evaluation pair;
- each is checked against both benchmarks' evaluation problems with the project's word n-gram
  decontamination (`codebench.codeio.decontam`, sets `pyfamilies` and `pyfamilies-sft`, the
  data stage's n and threshold) and for an identical prompt; flagged ones are dropped and
  counted. The code-shape signal is not used here: a family's template is shared with its
  evaluation problems by design (the held-out unit is the unseen name/family pair), as in
  stage 00.
"""

from __future__ import annotations

from codebench.bench import pyfamilies
from codebench.codeio.decontam import Decontaminator

# a different stream of training functions than stage 00's corpus (seed offset)
SEED_OFFSET = 1_000_003
# share of the family records drawn from the families only the SFT mix teaches
SFT_SHARE = 0.6
SETS = (pyfamilies.NAME, pyfamilies.SFT_NAME)


def family_records(count: int, seed: int, n: int, threshold: float) -> tuple[list[dict], dict]:
    """`count` decontaminated family functions as prompt-completion SFT records, and the
    decontamination record."""
    if count <= 0:
        return [], {"requested": 0, "kept": 0, "removed": 0}
    n_new = round(count * SFT_SHARE)
    instances = [
        *pyfamilies.training_instances(n_new, seed + SEED_OFFSET, sft=True),
        *pyfamilies.training_instances(count - n_new, seed + SEED_OFFSET),
    ]
    built = Decontaminator.build(list(SETS), None, n=n, threshold=threshold)
    words = Decontaminator(n=built.n, threshold=built.threshold, index=built.index)
    evals = [*pyfamilies.eval_instances(), *pyfamilies.eval_instances(sft=True)]
    eval_prompts = {p.prompt for p in evals}
    eval_pairs = {(p.name, p.family) for p in evals}
    out, removed, top = [], 0, 0.0
    by_side = {pyfamilies.NAME: 0, pyfamilies.SFT_NAME: 0}
    for inst in instances:
        if (inst.name, inst.family) in eval_pairs:  # cannot happen: training pairs only
            raise AssertionError(f"{inst.task_id}: an evaluation pair in the training functions")
        share, _ = words.check(inst.prompt + inst.solution)
        if share >= words.threshold or inst.prompt in eval_prompts:
            removed += 1
            continue
        top = max(top, share)
        side = inst.task_id.split("-train/")[0]
        by_side[side] += 1
        out.append(
            {
                "id": inst.task_id,
                "fid": inst.task_id,
                "idx": 0,
                "direction": "function",
                "kind": side,
                "family": inst.family,
                "prompt": inst.prompt,
                "completion": inst.solution,
            }
        )
    record = {
        "benchmark": pyfamilies.NAME,
        "benchmarks": list(SETS),
        "requested": count,
        "kept": len(out),
        "kept_by_benchmark": by_side,
        "removed": removed,
        "eval_problems": len(evals),
        "shared_name_family_pairs": 0,
        "max_overlap_kept": round(top, 4),
        "n": built.n,
        "threshold": built.threshold,
        "signal": "word n-grams + exact prompts (families are shared by design)",
        "format": "prompt-completion (the base protocol's prompt and body)",
    }
    return out, record
