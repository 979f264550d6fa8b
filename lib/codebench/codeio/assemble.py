"""Assembly of SFT data: chat-format records for fine-tuning.

``sft.jsonl`` (CodeI/O++), one record per training sample:

- ``first-turn``   the first answer verified: ``[user prompt, assistant answer]``;
- ``revised``      the first answer failed and the revision verified:
  ``[user prompt, assistant first answer, user feedback, assistant connector + revision]``;
- ``revised-gold`` both failed and `gold_fallback` is on: the same four messages, the last one
  a connector plus the executed (known-correct) answer. Without `gold_fallback` such samples
  are left out and counted.

With ``revision_format="single-turn"`` the last three messages become one assistant message:
first answer, a connector, the feedback, a connector, the revision.

``sft_plain.jsonl`` (CodeI/O): ``[user prompt, assistant answer]`` with the verified first answer,
or the executed answer (``kind: gold``) when it failed and `gold_fallback` is on. Every record
also has ``prompt``/``response`` fields for trainers that take prompt-completion pairs.
"""

from __future__ import annotations

from codebench.codeio.prompts import answer_block
from codebench.codeio.records import stable_fraction

CHECK_CONNECTORS = (
    "Let me check this answer by running the code.",
    "Wait, let me verify this answer against the code's actual behaviour.",
    "Before finalizing, let me test this answer by executing the code.",
)
RETRY_CONNECTORS = (
    "My first answer was wrong. Let me reconsider.",
    "That answer does not hold up. Let me think again.",
    "I made a mistake above. Let me work through it once more.",
)


def _pick(options: tuple[str, ...], key: str) -> str:
    return options[int(stable_fraction(key, "connector") * len(options))]


def gold_response(prompt: dict) -> str:
    """The executed answer in the requested format."""
    d = prompt["direction"]
    return f"The {d} below is checked by executing the code.\n\n" + answer_block(d, prompt[d])


def _record(prompt: dict, kind: str, messages: list[dict]) -> dict:
    return {
        "id": prompt["id"],
        "fid": prompt["fid"],
        "idx": prompt["idx"],
        "direction": prompt["direction"],
        "kind": kind,
        "messages": messages,
    }


def codeio_pp_record(
    prompt: dict,
    first: dict,
    v1: dict,
    second: dict | None,
    v2: dict | None,
    *,
    gold_fallback: bool = True,
    revision_format: str = "multi-turn",
) -> dict | None:
    """One sft.jsonl record (see the module doc), or None when the sample is left out."""
    user = prompt["messages"]
    if v1["status"] == "success":
        return _record(
            prompt, "first-turn", [*user, {"role": "assistant", "content": first["text"]}]
        )
    if second is None or v2 is None:  # no revision turn was run
        return None
    if v2["status"] == "success":
        kind, final = "revised", second["text"]
    elif gold_fallback:
        kind, final = "revised-gold", gold_response(prompt)
    else:
        return None
    retry = _pick(RETRY_CONNECTORS, prompt["id"]) + "\n\n" + final
    fb = second["feedback"]
    if revision_format == "single-turn":
        body = (
            f"{first['text'].rstrip()}\n\n{_pick(CHECK_CONNECTORS, prompt['id'])}\n{fb}\n\n{retry}"
        )
        return _record(prompt, kind, [*user, {"role": "assistant", "content": body}])
    return _record(
        prompt,
        kind,
        [
            *user,
            {"role": "assistant", "content": first["text"]},
            {"role": "user", "content": fb},
            {"role": "assistant", "content": retry},
        ],
    )


def codeio_plain_record(
    prompt: dict, first: dict, v1: dict, *, gold_fallback: bool = True
) -> dict | None:
    """One sft_plain.jsonl record (see the module doc), or None when left out."""
    if v1["status"] == "success":
        kind, response = "model", first["text"]
    elif gold_fallback:
        kind, response = "gold", gold_response(prompt)
    else:
        return None
    user = prompt["messages"][-1]["content"]
    rec = _record(prompt, kind, [*prompt["messages"], {"role": "assistant", "content": response}])
    rec.update(prompt=user, response=response)
    return rec


def assemble(
    prompts: list[dict],
    first: dict[str, dict],
    v1: dict[str, dict],
    second: dict[str, dict],
    v2: dict[str, dict],
    *,
    gold_fallback: bool = True,
    revision_format: str = "multi-turn",
) -> tuple[list[dict], list[dict], dict]:
    """sft and sft_plain records for the training prompts that have a first answer, and counts."""
    sft, plain = [], []
    counts: dict[str, int] = {}
    for p in prompts:
        if p["split"] != "train" or p["id"] not in first or p["id"] not in v1:
            continue
        r = codeio_pp_record(
            p,
            first[p["id"]],
            v1[p["id"]],
            second.get(p["id"]),
            v2.get(p["id"]),
            gold_fallback=gold_fallback,
            revision_format=revision_format,
        )
        kind = r["kind"] if r else "left-out"
        counts[f"sft:{kind}"] = counts.get(f"sft:{kind}", 0) + 1
        if r:
            sft.append(r)
        q = codeio_plain_record(p, first[p["id"]], v1[p["id"]], gold_fallback=gold_fallback)
        kind = q["kind"] if q else "left-out"
        counts[f"plain:{kind}"] = counts.get(f"plain:{kind}", 0) + 1
        if q:
            plain.append(q)
    return sft, plain, counts
