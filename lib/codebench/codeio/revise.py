"""CodeI/O++ revision: execution feedback for every non-success, then a second turn.

The feedback says what the execution showed, in CodeI/O's words where it has them
("[Mismatch] Your output is not correct! ..."), with the values as JSON, and asks again for
the answer in the required format. The second turn's prompt is the conversation so far:
user prompt, the model's first answer, the feedback.
"""

from __future__ import annotations

from codebench.codeio.records import render

RETRY = (
    "Please reason step by step again and give your final answer in the json format "
    '{{"{key}": <your {key}>}} inside a ```json code block.'
)


def feedback(prompt: dict, verified: dict, call_timeout: float = 2.0) -> str:
    """The feedback message for a non-successful first turn."""
    status, d = verified["status"], prompt["direction"]
    answer = verified.get("answer")
    if status == "wrong" and d == "output":
        head = (
            f"[Mismatch] Your output is not correct! Given the input {render(prompt['input'])}, "
            f"your predicted output is {render(answer)} which is wrong!"
        )
    elif status == "wrong" and "actual_output" in verified:
        head = (
            f"[Mismatch] Your input is not feasible! Given the output {render(prompt['output'])}, "
            f"your predicted input is {render(answer)}, which actually gets a wrong output as "
            f"{render(verified['actual_output'])}"
        )
    elif status == "wrong":
        head = f"[Mismatch] Your input is not feasible! {verified.get('reason') or ''}".strip()
    elif status == "exception":
        head = f"[Error] Running the code on your predicted input {render(answer)} raised an exception: {verified.get('reason')}"
    elif status == "timeout":
        head = f"[Timeout] Running the code on your predicted input {render(answer)} did not finish within {call_timeout:g} seconds."
    elif status == "truncated":
        head = "[Truncated] Your answer was cut off before it reached a final answer."
    else:
        head = "[Missing] No final answer in the required json format was found in your response."
    return head + "\n" + RETRY.format(key=d)


def revision_messages(
    prompt: dict, first: dict, verified: dict, call_timeout: float = 2.0
) -> list[dict]:
    """The second turn's conversation: prompt, first answer, feedback."""
    return [
        *prompt["messages"],
        {"role": "assistant", "content": first.get("text", "")},
        {"role": "user", "content": feedback(prompt, verified, call_timeout)},
    ]


def revision_items(
    prompts: dict[str, dict],
    predictions: dict[str, dict],
    verified: list[dict],
    call_timeout: float = 2.0,
) -> list[dict]:
    """Second-turn items (id, fid, idx, direction, messages, feedback) for every non-success."""
    out = []
    for v in verified:
        if v["status"] == "success":
            continue
        p = prompts[v["id"]]
        msgs = revision_messages(p, predictions[v["id"]], v, call_timeout)
        out.append(
            {
                "id": v["id"],
                "fid": p["fid"],
                "idx": p["idx"],
                "direction": p["direction"],
                "messages": msgs,
                "feedback": msgs[-1]["content"],
            }
        )
    return out
