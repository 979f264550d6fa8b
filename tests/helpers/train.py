"""Tiny offline stand-ins for tests and benchmarks: a byte-level BPE tokenizer and random models.

Nothing here touches the network. The tokenizer has end-of-text and padding tokens, like the
workbench's own tiny model, and no chat template (so the documented fallback template applies).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch

SAMPLE_TEXT = (
    "def add(a, b):\n    return a + b\n\n",
    "### Instruction:\nWrite a function that adds two numbers.\n### Response:\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        self.items.append(x)\n",
    "for i in range(10):\n    print(i * i)\n",
    "Given the input {'n': 5, 'm': 3}, predict the output of the function. The answer is 3.\n",
    "import json\nwith open('data.json') as fh:\n    data = json.load(fh)\n",
)


def build_tokenizer(texts: Iterable[str] = SAMPLE_TEXT, vocab_size: int = 512):
    """Train a byte-level BPE tokenizer on `texts` and wrap it for transformers.

    Special tokens: `<|endoftext|>` (eos and bos) and `<|pad|>`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts) * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        pad_token="<|pad|>",
    )


@functools.lru_cache(maxsize=4)
def tiny_tokenizer(vocab_size: int = 512):
    """A cached `build_tokenizer()` (tests call it many times)."""
    return build_tokenizer(vocab_size=vocab_size)


def random_llama(
    vocab_size: int,
    *,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    intermediate: int = 64,
    max_positions: int = 512,
    attn: str = "sdpa",
    seed: int = 0,
):
    """A random-weight Llama for tests (fp32, eval mode off: caller decides)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
    )
    cfg._attn_implementation = attn
    return LlamaForCausalLM(cfg)


def random_codegen(
    vocab_size: int,
    *,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    max_positions: int = 512,
    seed: int = 0,
):
    """A random-weight CodeGen (fused qkv_proj) for tests."""
    from transformers import CodeGenConfig, CodeGenForCausalLM

    torch.manual_seed(seed)
    cfg = CodeGenConfig(
        vocab_size=vocab_size,
        n_embd=hidden,
        n_layer=layers,
        n_head=heads,
        rotary_dim=4,
        n_positions=max_positions,
        n_ctx=max_positions,
        bos_token_id=0,
        eos_token_id=0,
    )
    return CodeGenForCausalLM(cfg)


def save_tiny_model(folder, kind: str = "llama", *, vocab_size: int = 512, **sizes):
    """Write a random tiny model (llama | codegen) and the tiny tokenizer to `folder`."""
    from pathlib import Path

    tok = tiny_tokenizer(vocab_size)
    model = (random_codegen if kind == "codegen" else random_llama)(len(tok), **sizes)
    folder = Path(folder)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def sft_records(n: int = 40, seed: int = 0) -> list[dict]:
    """Synthetic SFT records in every accepted format, with varied lengths."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        body = "\n".join(f"    x{j} = {a} + {j}" for j in range(rng.randint(1, 6)))
        prompt = (
            f"Write a function f{i} that returns {a} + {b}."
            + " Explain briefly." * rng.randint(0, 3)
        )
        response = f"def f{i}():\n{body}\n    return {a} + {b}\n"
        fmt = i % 4
        if fmt == 0:
            out.append(
                {
                    "messages": [
                        {"role": "user", "content": prompt},
                        {"role": "assistant", "content": response},
                    ]
                }
            )
        elif fmt == 1:
            out.append({"instruction": prompt, "output": response})
        elif fmt == 2:
            out.append({"prompt": prompt, "response": response})
        else:
            out.append({"prompt": prompt, "completion": response})
    return out


def rawcode_sft_records(path, limit: int | None = None) -> list[dict]:
    """SFT-like chat records from CodeI/O raw code (prompt = problem + I/O spec, response = code).

    Stands in for 01_build_data's sft.jsonl where it is not built yet (benchmarks, notebook tests).
    """
    import json
    from pathlib import Path

    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if not all(
            isinstance(r.get(k), str) for k in ("problem_description", "io_requirements", "refcode")
        ):
            continue
        prompt = r["problem_description"].strip() + "\n\n" + r["io_requirements"].strip()
        out.append(
            {
                "messages": [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": r["refcode"]},
                ]
            }
        )
        if limit is not None and len(out) >= limit:
            break
    return out
