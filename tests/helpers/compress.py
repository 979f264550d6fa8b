"""Random-weight models built from configs, for compress tests and benchmarks (no network).

`save_random_model(path, arch)` writes a loadable model folder (weights, config, a small
byte-level BPE tokenizer, codebench_variant.json) in well under a second for tiny shapes;
`codegen_350m_config()` is the shape of Salesforce/codegen-350M for speed measurements.
"""

from __future__ import annotations

from pathlib import Path

import torch

from helpers.train import build_tokenizer

CODE = (
    "def add(a, b):\n    return a + b\n\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        self.items.append(x)\n",
    "for i in range(10):\n    print(i * i)\n",
    "import json\nwith open('data.json') as fh:\n    data = json.load(fh)\n",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
)


def tiny_tokenizer(vocab_size: int = 320):
    """A byte-level BPE tokenizer with end-of-text and padding tokens, trained on CODE."""
    return build_tokenizer(CODE, vocab_size)


def llama_config(
    vocab_size: int = 320,
    hidden: int = 64,
    inter: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int | None = None,
    tied: bool = True,
):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        max_position_embeddings=256,
        tie_word_embeddings=tied,
        eos_token_id=0,
        bos_token_id=0,
        pad_token_id=1,
    )


def codegen_config(
    vocab_size: int = 320,
    n_embd: int = 64,
    layers: int = 2,
    heads: int = 4,
    rotary_dim: int = 8,
    positions: int = 256,
):
    from transformers import CodeGenConfig

    return CodeGenConfig(
        vocab_size=vocab_size,
        n_embd=n_embd,
        n_layer=layers,
        n_head=heads,
        rotary_dim=rotary_dim,
        n_positions=positions,
        n_ctx=positions,
        eos_token_id=0,
        bos_token_id=0,
        pad_token_id=1,
    )


def codegen_350m_config(vocab_size: int = 51200):
    """The shape of Salesforce/codegen-350M-*: 20 layers, 1024 wide, 16 heads, rotary_dim 32."""
    return codegen_config(
        vocab_size=vocab_size, n_embd=1024, layers=20, heads=16, rotary_dim=32, positions=2048
    )


def random_model(config, seed: int = 0):
    """A randomly initialised causal LM for `config`, in eval mode."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).eval()


def save_random_model(path: str | Path, arch: str = "llama", seed: int = 0, **sizes) -> Path:
    """Write a random `arch` ('llama' | 'codegen') model, its tokenizer and variant info to `path`."""
    from codebench.runs import write_variant_info

    config = (
        llama_config(**sizes)
        if arch == "llama"
        else codegen_config(**sizes)
        if arch == "codegen"
        else None
    )
    if config is None:
        raise ValueError(f"arch must be 'llama' or 'codegen', got {arch!r}")
    tok = tiny_tokenizer(min(config.vocab_size, 320))
    model = random_model(config, seed)
    path = Path(path)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    write_variant_info(path, kind="base", parent=None, loader="hf")
    return path
