"""Output- and input-prediction prompts; values are rendered as JSON, never with `str()`.

The wording follows CodeI/O's templates. Differences: every value is JSON (`true`, `null`,
double quotes; CodeI/O showed Python reprs such as `True`, `None`, `'a'` and tuples), the
answer format asks for a fenced ```json block, and the reference code is included as a tip
by default (`include_code`).
"""

from __future__ import annotations

from codebench.codeio.records import canonical, render, sample_id

OUTPUT_TEMPLATE = """You are given a question that requires some input and output variables as follows:

{problem}

The input and output requirements are as follows:

{io_requirements}

Given the following input:

{value}

Can you predict the output without writing any code? Please reason and put your final answer in the following json format: {{"output": <your output>}}, where <your output> should strictly match the output requirement as specified. Write the final answer in a ```json code block.{code}"""

INPUT_TEMPLATE = """You are given a question that requires some input and output variables as follows:

{problem}

The input and output requirements are as follows:

{io_requirements}

Given the following output:

{value}

Can you predict a feasible input without writing any code? Please reason and put your final answer in the following json format: {{"input": <your input>}}, where <your input> should be a dictionary, even if there is only one input variable, with keys strictly matching the input variables' names as specified. Write the final answer in a ```json code block.{code}"""

CODE_TIP = """

Tip: Here is a reference code snippet for this question. You can refer to this code to guide your reasoning but not copy spans of code directly.

```python
{refcode}
```"""


def prediction_prompt(
    unified: dict, pair: dict, direction: str, include_code: bool = True, max_code_chars: int = 4000
) -> str:
    """The user message asking to predict `direction` ('output' or 'input') for one pair."""
    template = OUTPUT_TEMPLATE if direction == "output" else INPUT_TEMPLATE
    shown = pair["input"] if direction == "output" else pair["output"]
    code = (
        CODE_TIP.format(refcode=unified["refcode"].strip()[:max_code_chars]) if include_code else ""
    )
    return template.format(
        problem=unified["problem"].strip(),
        io_requirements=unified["io_requirements"].strip(),
        value=render(shown),
        code=code,
    )


def prompt_records(
    unified: dict, pairs: list[dict], directions: list[str], split: str, **kw
) -> list[dict]:
    """One prompt record per (pair, direction) with its stable id and expected answer.

    Input prediction shows the output, so two pairs with the same output would give the same
    prompt twice: only the first of them gets an input-prediction prompt.
    """
    out = []
    shown_outputs: set[str] = set()
    for pair in pairs:
        for d in directions:
            if d == "input":
                key = canonical(pair["output"])
                if key in shown_outputs:
                    continue
                shown_outputs.add(key)
            text = prediction_prompt(unified, pair, d, **kw)
            out.append(
                {
                    "id": sample_id(unified["fid"], pair["idx"], d),
                    "fid": unified["fid"],
                    "idx": pair["idx"],
                    "direction": d,
                    "split": split,
                    "messages": [{"role": "user", "content": text}],
                    "input": pair["input"],
                    "output": pair["output"],
                }
            )
    return out


def answer_block(direction: str, value) -> str:
    """A reference answer in the requested format (gold responses, documentation)."""
    return f'```json\n{{"{direction}": {render(value)}}}\n```'
