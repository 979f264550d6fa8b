"""Fine-tuning throughput: packed rows vs padded batches, same data, same steps, one run.

Both layouts are what trl's SFTTrainer feeds the model: `pack_dataset(..., "bfd")` rows through
the padding-free `DataCollatorForLanguageModeling`, or one example per row through the padded one.

Counts *real* tokens (no padding) per second of LoRA training steps (forward, backward,
AdamW step). Packed rows hold several examples kept apart by restarting position ids;
padded batches hold one example per row, padded to the longest in the batch (the usual
dynamic-padding collator, DeepSeek-Coder's). Steps alternate between the two layouts so a
busy machine slows both alike. Prints the packed/padded ratio.

CPU (default): the workbench's tiny model (runs/smoke/models/base when built, else a random
model of the same shape) on SFT-like records built from data_dir/codeio/rawcode_1k_parsed.jsonl
(prompt = problem + I/O spec, response = reference code: responses of very different
lengths, like real SFT data), or `--data runs/smoke/data/sft.jsonl` (01's output; with the
smoke profile its examples are nearly all the same length, dominated by the prompt template,
so packing has little padding to remove there).

--cuda: a random-weight model shaped like deepseek-coder-1.3b (Llama, hidden 2048, 24 layers,
16 heads, intermediate 5504, vocab 32256) in bf16; also reports MFU by the 6*N rule against
the GPU's dense bf16 peak (for LoRA the real work is nearer 4*N: frozen weights get no
weight gradients; both are printed).

    python benchmarks/finetune_throughput.py [--steps 10] [--batch 8] [--max-length 2048]
    python benchmarks/finetune_throughput.py --cuda [--method full] [--peak-tflops 989]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch
from datasets import Dataset
from trl.data_utils import pack_dataset
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from codebench.paths import REPO_ROOT, data_dir
from codebench.train import data as D
from codebench.train.attention import packed_attention, resolve_packed_attention
from codebench.train.lora import lora_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.train import build_tokenizer, random_llama, rawcode_sft_records  # noqa: E402

PEAK_BF16_TFLOPS = {
    "H100": 989.0,
    "H200": 989.0,
    "GH200": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10": 125.0,
    "L4": 121.0,
}


def load_records(path: str | None) -> tuple[list[dict], str]:
    """SFT records: `path` (e.g. 01's runs/<profile>/data/sft.jsonl), else SFT-like records
    built from CodeI/O raw code (prompt = problem + I/O spec, response = reference code)."""
    if path:
        return [{"messages": e.messages} for e in D.load_examples(path)], str(path)
    raw = data_dir() / "codeio" / "rawcode_1k_parsed.jsonl"
    return rawcode_sft_records(raw), f"{raw} (prompt = problem + I/O spec, response = refcode)"


def cpu_model(records: list[dict], base: str | None):
    """The tiny model (built by stage 00) or a random one of the same shape with a BPE on the data."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(base) if base else REPO_ROOT / "runs" / "smoke" / "models" / "base"
    if (folder / "config.json").is_file():
        return (
            AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32),
            AutoTokenizer.from_pretrained(folder),
            str(folder),
        )
    texts = [m["content"] for r in records[:400] for m in r["messages"]]
    tok = build_tokenizer(texts, vocab_size=2048)
    model = random_llama(
        len(tok), hidden=128, layers=4, heads=4, intermediate=384, max_positions=2048
    )
    return model, tok, "random tiny-shaped Llama (128 wide, 4 layers, 2048 BPE)"


def cuda_model(layers: int, vocab: int, device: str = "cuda"):
    """Random deepseek-coder-1.3b-shaped Llama in bf16 on the GPU."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        hidden_size=2048,
        num_hidden_layers=layers,
        num_attention_heads=16,
        num_key_value_heads=16,
        intermediate_size=5504,
        vocab_size=vocab,
        max_position_embeddings=16384,
        rope_theta=100000.0,
    )
    import importlib.util

    flash = device == "cuda" and importlib.util.find_spec("flash_attn") is not None
    cfg._attn_implementation = "flash_attention_2" if flash else "sdpa"
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).to(device=device, dtype=torch.bfloat16)


def layouts(examples: list[D.Tokenized], max_length: int, batch: int, steps: int, seed: int):
    """Batches of packed rows and of single examples (seeded order), `steps` of each."""
    rng = random.Random(seed)
    padded = [{"input_ids": t.input_ids, "labels": t.labels} for t in examples]
    rows = pack_dataset(Dataset.from_list(padded), max_length, "bfd").to_list()
    rng.shuffle(padded)
    rng.shuffle(rows)
    need = batch * (steps + 1)
    rows = (rows * (need // len(rows) + 1))[:need]  # small data, long rows: reuse rows
    padded = (padded * (need // len(padded) + 1))[:need]
    cut = lambda xs: [xs[i * batch : (i + 1) * batch] for i in range(steps + 1)]  # noqa: E731
    return cut(rows), cut(padded)


def run(
    model, batches: dict, collators: dict, attention: dict, device: str, lr: float = 1e-4
) -> dict:
    """Alternate steps of each layout; the first step of each is warm-up and not timed."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    stats = {k: {"tokens": 0, "slots": 0, "seconds": 0.0} for k in batches}
    model.train()
    for step in range(len(next(iter(batches.values())))):
        for name, bs in batches.items():
            rows = bs[step]
            batch = {
                k: v.to(device) if torch.is_tensor(v) else v
                for k, v in collators[name](rows).items()
            }
            if device == "cuda":
                torch.cuda.synchronize()
            with packed_attention(model, attention[name]):
                t0 = time.perf_counter()
                loss = model(**batch, use_cache=False).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.synchronize()
            if step:
                s = stats[name]
                s["seconds"] += time.perf_counter() - t0
                s["tokens"] += sum(len(r["input_ids"]) for r in rows)
                s["slots"] += batch["input_ids"].numel()
    for s in stats.values():
        s["tokens_per_s"] = s["tokens"] / s["seconds"]
        s["fill"] = s["tokens"] / s["slots"]
    return stats


def peak_tflops(override: float | None) -> float | None:
    if override:
        return override
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--steps", type=int, default=None, help="timed steps per layout (default 10 CPU, 20 GPU)"
    )
    ap.add_argument("--batch", type=int, default=8, help="rows per step")
    ap.add_argument(
        "--max-length", type=int, default=None, help="row length (default 2048 CPU, 4096 GPU)"
    )
    ap.add_argument(
        "--data",
        default=None,
        help="SFT JSONL, e.g. runs/smoke/data/sft.jsonl (default: SFT-like records from CodeI/O raw code)",
    )
    ap.add_argument(
        "--base",
        default=None,
        help="CPU model folder (default runs/smoke/models/base, else random tiny-shaped)",
    )
    ap.add_argument("--method", choices=["lora", "full"], default="lora")
    ap.add_argument(
        "--packed-attention",
        choices=["auto", "varlen", "position_ids"],
        default="auto",
        help="how packed samples are kept apart (auto: varlen on sdpa, position ids with flash-attention)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = all cores)")
    ap.add_argument(
        "--cuda",
        action="store_true",
        help="deepseek-coder-1.3b-shaped random model on the GPU, with MFU",
    )
    ap.add_argument(
        "--layers", type=int, default=24, help="--cuda model depth (24 = deepseek-coder-1.3b)"
    )
    ap.add_argument(
        "--device", default="cuda", help="--cuda model device (cpu only to check the code path)"
    )
    ap.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="dense bf16 peak of the GPU (auto for H100/H200/A100/...)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cuda and args.device == "cuda" and not torch.cuda.is_available():
        print("--cuda needs a CUDA GPU; none is visible", file=sys.stderr)
        return 2
    steps = args.steps or (20 if args.cuda else 10)
    max_length = args.max_length or (4096 if args.cuda else 2048)
    records, source = load_records(args.data)
    if args.cuda:
        from transformers import AutoTokenizer

        tok_src = args.base or str(REPO_ROOT / "runs" / "smoke" / "models" / "base")
        tok = (
            AutoTokenizer.from_pretrained(tok_src)
            if Path(tok_src, "tokenizer_config.json").is_file()
            else None
        )
        if tok is None:
            tok = build_tokenizer(
                [m["content"] for r in records[:400] for m in r["messages"]], vocab_size=2048
            )
        model, desc, device = (
            cuda_model(args.layers, 32256, args.device),
            f"random deepseek-coder-1.3b-shaped Llama ({args.layers} layers, bf16)",
            args.device,
        )
    else:
        model, tok, desc = cpu_model(records, args.base)
        device = "cpu"
    examples = [D.record_to_example(r, f"record {i}") for i, r in enumerate(records)]
    D.training_template(tok, "auto")
    _, toks, stats = D.tokenize_examples(examples, tok, max_length, warn=False)
    n_params = sum(p.numel() for p in model.parameters())
    if args.method == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(16, 32, 0.0))
    model.config.use_cache = False
    packed, padded = layouts(toks, max_length, args.batch, steps, args.seed)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    mode = resolve_packed_attention(model, args.packed_attention)
    res = run(
        model,
        {"packed": packed, "padded": padded},
        {
            "packed": DataCollatorForLanguageModeling(pad, padding_free=True),
            "padded": DataCollatorForLanguageModeling(pad),
        },
        {"packed": mode, "padded": "none"},
        device,
    )
    lengths = sorted(stats.lengths)
    print(
        f"data: {source}: {len(toks)} examples, median {lengths[len(lengths) // 2]} tokens, "
        f"{stats.n_truncated} truncated / {stats.n_dropped} dropped at max_length {max_length}"
    )
    print(
        f"model: {desc}, {n_params / 1e6:.1f}M parameters, {args.method}, {device}, "
        f"threads {torch.get_num_threads()}, packed attention {mode}"
    )
    print(
        f"{steps} timed steps x {args.batch} rows per layout (alternating), warm-up step excluded"
    )
    for name, s in res.items():
        line = (
            f"{name:>7}: {s['tokens']:>7} real tokens in {s['seconds']:7.2f}s = {s['tokens_per_s']:9.1f} tokens/s "
            f"(rows {s['fill']:.0%} filled)"
        )
        if args.cuda:
            peak = peak_tflops(args.peak_tflops)
            flops6 = 6 * n_params * s["tokens_per_s"]
            s["tflops_6N"] = flops6 / 1e12
            line += f", {s['tflops_6N']:.1f} TFLOP/s by 6N"
            if peak:
                s["mfu_6N"] = flops6 / (peak * 1e12)
                s["mfu_4N"] = 4 * n_params * s["tokens_per_s"] / (peak * 1e12)
                line += (
                    f", MFU {s['mfu_6N']:.1%} (6N) / {s['mfu_4N']:.1%} (4N) of {peak:.0f} TFLOP/s"
                )
        print(line)
    ratio = res["packed"]["tokens_per_s"] / res["padded"]["tokens_per_s"]
    print(f"packed / padded throughput: {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"ratio": ratio, "layouts": res, "source": source, "model": desc}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
