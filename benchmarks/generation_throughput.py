"""Generation throughput: batched HF generation vs one prompt at a time, same prompts, one run.

CPU (default): the tiny model (`--model PATH|spec`, else runs/smoke/models/base when it
exists, else a quick tiny model trained into a temp folder), greedy decoding, tokens/s of
codebench.generate.HFBackend with batch_size=B against batch_size=1, printed as a ratio.

    python benchmarks/generation_throughput.py [--model PATH] [--prompts 32] [--batch-size 16]

GPU (`--cuda`): a random-weight model shaped like deepseek-coder-1.3b (24 layers, hidden 2048,
bf16) and three ways: one at a time, padded static batches, transformers' continuous batching.

Tokens counted are the tokens each completion keeps (up to end-of-sequence), so work a padded
batch spends on rows that already finished does not count as throughput.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def code_prompts(n: int, seed_chars: int = 240) -> list[str]:
    """Openings of standard-library files (cut at a line end), varied lengths like real prompts."""
    from codebench.corpus import load_corpus

    docs = load_corpus(
        "stdlib", max_files=max(4 * n, 40), max_chars=4_000_000, heldout_fraction=0.3
    )
    out = []
    for i, d in enumerate(d for d in docs.heldout + docs.train if len(d.text) > 2 * seed_chars):
        if len(out) == n:
            break
        size = seed_chars // 2 + (i * 37) % seed_chars  # 120..360 characters
        cut = d.text.rfind("\n", 0, size)
        out.append(d.text[: cut + 1 if cut > 0 else size])
    return out


def timed(backend, prompts, cfg) -> tuple[float, int, list]:
    t = time.perf_counter()
    outs = backend.generate(prompts, cfg)
    dt = time.perf_counter() - t
    return dt, sum(o[0].n_tokens for o in outs), [o[0].text for o in outs]


def tiny_model(args) -> str:
    from codebench.paths import REPO_ROOT

    if args.model:
        return args.model
    smoke = REPO_ROOT / "runs" / "smoke" / "models" / "base"
    if (smoke / "config.json").is_file():
        return str(smoke)
    from codebench import tiny
    from codebench.params import TinyModelConfig
    from codebench.runs import RunLayout

    root = Path(tempfile.mkdtemp(prefix="cb-bench-"))
    print(f"[setup] no --model and no runs/smoke model: training a quick tiny model in {root}")
    run = RunLayout(root, root / "figures")
    tiny.build(TinyModelConfig(steps=60, max_chars=400_000), run, eval_chars=2_000, log=None)
    return str(run.model_dir("base"))


def cpu(args) -> None:
    import torch

    from codebench.generate import GenerationConfig, HFBackend
    from codebench.tiny import auto_threads

    torch.set_num_threads(args.threads or auto_threads())
    spec = tiny_model(args)
    one = HFBackend(spec, device="cpu", batch_size=1)
    batched = HFBackend(one.model, one.tokenizer, batch_size=args.batch_size)
    prompts = code_prompts(args.prompts)
    cfg = GenerationConfig(max_new_tokens=args.max_new_tokens)
    one.generate(prompts[:2], GenerationConfig(max_new_tokens=4))  # warm-up
    print(
        f"model {spec}: {sum(p.numel() for p in one.model.parameters()):,} params; {len(prompts)} prompts, greedy, max_new_tokens={args.max_new_tokens}, torch threads={torch.get_num_threads()}"
    )
    t1, n1, texts1 = timed(one, prompts, cfg)
    tb, nb, textsb = timed(batched, prompts, cfg)
    r1, rb = n1 / t1, nb / tb
    print(f"one-at-a-time        : {r1:8.1f} tokens/s  ({n1} tokens in {t1:.1f} s)")
    print(
        f"batched (batch {args.batch_size:>3})  : {rb:8.1f} tokens/s  ({nb} tokens in {tb:.1f} s)"
    )
    print(f"ratio batched / one-at-a-time: {rb / r1:.2f}x")
    print(
        f"identical greedy outputs: {sum(a == b for a, b in zip(texts1, textsb, strict=True))}/{len(prompts)}"
    )


def cuda(args) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from codebench import tiny
    from codebench.corpus import load_corpus
    from codebench.generate import GenerationConfig, HFBackend

    if not torch.cuda.is_available():
        sys.exit("--cuda: no CUDA GPU visible")
    docs = load_corpus("stdlib", max_files=200, max_chars=1_000_000)
    tok = tiny.train_tokenizer([d.text for d in docs.train], 8192, context=16384)
    cfg = LlamaConfig(  # deepseek-ai/deepseek-coder-1.3b-base
        vocab_size=32256, hidden_size=2048, intermediate_size=5504, num_hidden_layers=24, num_attention_heads=16,
        max_position_embeddings=16384, rope_theta=100000.0, rope_scaling={"type": "linear", "factor": 4.0},
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(device="cuda", dtype=torch.bfloat16).eval()
    prompts = code_prompts(args.prompts)
    gen = GenerationConfig(max_new_tokens=args.max_new_tokens)
    print(
        f"random-weight deepseek-coder-1.3b shape: {sum(p.numel() for p in model.parameters()):,} params, bf16, {torch.cuda.get_device_name()}"
    )
    print(f"{len(prompts)} prompts, greedy, max_new_tokens={args.max_new_tokens}")
    one = HFBackend(model, tok, batch_size=1, continuous_batching=False)
    one.generate(prompts[:2], GenerationConfig(max_new_tokens=8))
    subset = prompts[: args.single_prompts]
    t1, n1, _ = timed(one, subset, gen)
    r1 = n1 / t1
    print(
        f"one-at-a-time ({len(subset)} prompts) : {r1:9.1f} tokens/s  ({n1} tokens in {t1:.1f} s)"
    )
    static = HFBackend(model, tok, batch_size=args.batch_size, continuous_batching=False)
    ts, ns, _ = timed(static, prompts, gen)
    print(
        f"static batches of {args.batch_size:<4}   : {ns / ts:9.1f} tokens/s  ({ns} tokens in {ts:.1f} s)  ratio {ns / ts / r1:.2f}x"
    )
    cb = HFBackend(model, tok, continuous_batching=True)
    cb.generate(prompts[:2], GenerationConfig(max_new_tokens=8))
    tc, nc, _ = timed(cb, prompts, gen)
    print(
        f"continuous batching      : {nc / tc:9.1f} tokens/s  ({nc} tokens in {tc:.1f} s)  ratio {nc / tc / r1:.2f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--model",
        help="model spec or path (CPU mode); default runs/smoke/models/base or a quick tiny model",
    )
    ap.add_argument(
        "--prompts", type=int, default=None, help="number of prompts (default 32 CPU, 128 CUDA)"
    )
    ap.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="sequences per forward pass (default 16 CPU, 64 CUDA)",
    )
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default 64 CPU, 256 CUDA")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (default: the idle cores, see codebench.tiny.auto_threads)",
    )
    ap.add_argument(
        "--single-prompts", type=int, default=16, help="CUDA: prompts timed one at a time"
    )
    ap.add_argument(
        "--cuda",
        action="store_true",
        help="GPU mode: deepseek-coder-1.3b-shaped random model, static vs continuous batching",
    )
    args = ap.parse_args()
    defaults = (128, 64, 256) if args.cuda else (32, 16, 64)
    args.prompts = args.prompts or defaults[0]
    args.batch_size = args.batch_size or defaults[1]
    args.max_new_tokens = args.max_new_tokens or defaults[2]
    (cuda if args.cuda else cpu)(args)


if __name__ == "__main__":
    main()
