"""The embedded tiny code model: a byte-level BPE tokenizer and a small Llama trained here.

`model.base: tiny` makes every stage runnable offline. `build()` reads local Python sources
(`codebench.corpus`), trains a byte-level BPE tokenizer with end-of-text, padding and
fill-in-the-middle tokens, trains a small Llama-architecture causal LM from scratch (fp32,
AdamW, cosine schedule with linear warm-up) on packed sequences with FIM examples mixed in,
and saves both with `save_pretrained` into `run.model_dir('base')`, so every later stage
loads it exactly like a hub model. The model is weak; it exists so the workbench runs
without a GPU or a network.

Mixed into the corpus: `family_examples` training functions of the built-in smoke benchmark
`pyfamilies` (`codebench.bench.pyfamilies`), drawn from its training (name, family) pairs
only, after the project's n-gram decontamination against its evaluation problems. Each is
tokenized as prompt and solution separately, the way evaluation sees them (tokenized whole,
BPE merges across the prompt/solution boundary that a prompt never ends with, and the model
answers every prompt with end-of-text).

Resume: every `eval_every` steps the training state (weights, optimizer, data order, loss
curves) is written to `<run>/checkpoints/base-<key>.pt` (temp name, then rename); a rerun of
the same configuration after a kill continues from there and ends with the same model as an
uninterrupted run (same thread count). Checkpoints are removed once the model is saved.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from codebench.corpus import Corpus, Document, heldout_texts, load_corpus
from codebench.params import TinyModelConfig

EOS, PAD = "<|endoftext|>", "<|pad|>"
FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX = "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"
SPECIAL_TOKENS = (EOS, PAD, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX)
TOKENIZER_TRAIN_CHARS = (
    2_000_000  # BPE merges settle long before this; keeps tokenizer training ~seconds
)
HELDOUT_EVAL_ROWS = 16  # packed held-out rows scored at every evaluation
DECONTAM_N, DECONTAM_THRESHOLD = 10, 0.1  # as the data stage's defaults (params.DataSection)


# --------------------------------------------------------------------------- tokenizer
def train_tokenizer(texts: Sequence[str], vocab_size: int, *, context: int = 1024):
    """Train a byte-level BPE tokenizer (lossless on any UTF-8) and wrap it for transformers.

    Special tokens get ids 0-4 in SPECIAL_TOKENS order; eos = bos = <|endoftext|>, pad = <|pad|>.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def sample() -> Any:
        budget = TOKENIZER_TRAIN_CHARS
        for t in texts:
            if budget <= 0:
                return
            yield t[:budget]
            budget -= len(t)

    bpe.train_from_iterator(sample(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens=[FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX],
        model_max_length=context,
        clean_up_tokenization_spaces=False,
    )


# --------------------------------------------------------------------------- examples
def fim_example(text: str, rng: random.Random) -> str:
    """Rewrite `text` as a PSM fill-in-the-middle example with two random character cut points.

    `<|fim_prefix|>pre<|fim_suffix|>suf<|fim_middle|>mid<|endoftext|>`
    """
    a, b = sorted(rng.randint(0, len(text)) for _ in range(2))
    pre, mid, suf = text[:a], text[a:b], text[b:]
    return f"{FIM_PREFIX}{pre}{FIM_SUFFIX}{suf}{FIM_MIDDLE}{mid}{EOS}"


def build_examples(
    docs: Sequence[Document], chunk_chars: int, fim_rate: float, rng: random.Random
) -> list[str]:
    """Training texts: documents cut into pieces of about one context window, a `fim_rate`
    share of the pieces rewritten as FIM examples, runs of plain pieces joined back together.

    Pieces are cut at fixed character offsets, not at line ends: if every piece (and every
    FIM suffix) ended with a newline, the model would learn that end-of-text and
    <|fim_middle|> follow a bare newline, and stop at once on any prompt ending with one.
    Each example ends with <|endoftext|>; the list is shuffled.
    """
    out = []
    for doc in docs:
        plain: list[str] = []
        for start in range(0, len(doc.text), chunk_chars):
            piece = doc.text[start : start + chunk_chars]
            if rng.random() < fim_rate:
                if plain:
                    out.append("".join(plain) + EOS)
                    plain = []
                out.append(fim_example(piece, rng))
            else:
                plain.append(piece)
        if plain:
            out.append("".join(plain) + EOS)
    rng.shuffle(out)
    return out


def pack(token_lists: Sequence[Sequence[int]], context: int) -> torch.Tensor:
    """Concatenate token lists and cut them into rows of `context` tokens (the tail is dropped)."""
    flat = [t for ids in token_lists for t in ids]
    rows = len(flat) // context
    if rows == 0:
        raise ValueError(
            f"corpus too small: {len(flat)} tokens, fewer than one context of {context}"
        )
    return torch.tensor(flat[: rows * context], dtype=torch.long).view(rows, context)


def encode(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of many texts (no special tokens added; the texts carry their own)."""
    return [
        e.ids
        for e in tokenizer.backend_tokenizer.encode_batch(list(texts), add_special_tokens=False)
    ]


# --------------------------------------------------------------------------- model
def make_model(cfg: TinyModelConfig, tokenizer, seed: int = 0):
    """A randomly initialised Llama causal LM shaped by `cfg` (tied input/output embeddings)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if cfg.hidden_size % cfg.num_heads:
        raise ValueError(
            f"tiny.hidden_size ({cfg.hidden_size}) must be divisible by tiny.num_heads ({cfg.num_heads})"
        )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.context,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def lr_at(step: int, cfg: TinyModelConfig) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to 10% of it."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _optimizer(model, lr: float) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)


@torch.no_grad()
def heldout_loss(model, rows: torch.Tensor, batch_size: int) -> float:
    """Mean next-token loss over packed held-out rows."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        x = rows[i : i + batch_size].to(model.device)
        out = model(input_ids=x, labels=x)
        n = x.numel() - x.size(0)
        total += out.loss.item() * n
        count += n
    model.train()
    return total / max(count, 1)


def train(
    model,
    data: torch.Tensor,
    heldout: torch.Tensor,
    cfg: TinyModelConfig,
    *,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
    checkpoint: Path | None = None,
) -> dict:
    """Train `model` on packed rows; return loss curves (train every step, held-out every eval_every).

    checkpoint: a file for the training state, written every eval_every steps (atomically);
    when it exists, training continues from it (the caller keys it by configuration).
    """
    device = model.device
    opt = _optimizer(model, cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=gen)
    cursor, first = 0, 0
    history: dict[str, list] = {
        "step": [],
        "train_loss": [],
        "lr": [],
        "eval_step": [],
        "heldout_loss": [],
    }
    state = load_checkpoint(checkpoint, log) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        order, cursor, first, history = (
            state["order"],
            state["cursor"],
            state["step"],
            state["history"],
        )
        if log:
            log(f"resumed from {checkpoint} at step {first}/{cfg.steps}")
    model.train()
    start = time.perf_counter()
    for step in range(first, cfg.steps):
        if cursor + cfg.batch_size > len(order):  # next epoch, fresh order
            order, cursor = torch.randperm(len(data), generator=gen), 0
        idx = order[cursor : cursor + cfg.batch_size]
        cursor += cfg.batch_size
        x = data[idx].to(device)
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history["step"].append(step + 1)
        history["train_loss"].append(round(loss.item(), 5))
        history["lr"].append(lr)
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps or step == 0:
            hl = heldout_loss(model, heldout, cfg.batch_size)
            history["eval_step"].append(step + 1)
            history["heldout_loss"].append(round(hl, 5))
            if log:
                log(
                    f"step {step + 1:>5}/{cfg.steps}  train loss {loss.item():.3f}  held-out loss {hl:.3f}  lr {lr:.2e}  {time.perf_counter() - start:.0f}s"
                )
            if checkpoint is not None and step + 1 < cfg.steps:
                save_checkpoint(
                    checkpoint,
                    {
                        "step": step + 1,
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "generator": gen.get_state(),
                        "order": order,
                        "cursor": cursor,
                        "history": history,
                    },
                )
    model.eval()
    return history


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temp file beside `path`, then rename: a kill leaves the old one or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, log: Callable[[str], None] | None = print) -> dict | None:
    """The training state saved at `path`, or None (absent, or unreadable: then it is ignored)."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # a save killed before its rename
        stale.unlink(missing_ok=True)
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - a damaged checkpoint means starting over, not failing
        if log:
            log(f"checkpoint {path} unreadable ({type(e).__name__}: {e}); training from step 0")
        return None


def checkpoint_path(
    run, cfg: TinyModelConfig, seed: int, device: str, data: torch.Tensor | None = None
) -> Path:
    """Where stage 00 keeps its training state: keyed by configuration, seed, device, code and
    the packed training rows (so a changed corpus never resumes from another's state)."""
    import hashlib
    import json

    here = Path(__file__).parent
    code = b"".join(
        (here / p).read_bytes() for p in ("tiny.py", "corpus.py", "bench/pyfamilies.py")
    )
    key = json.dumps(
        {
            "cfg": cfg.model_dump(exclude={"threads"}),
            "seed": seed,
            "device": str(device),
            "code": hashlib.sha256(code).hexdigest(),
            "data": None if data is None else hashlib.sha256(data.numpy().tobytes()).hexdigest(),
        },
        sort_keys=True,
    )
    return (
        Path(run.root) / "checkpoints" / f"base-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"
    )


# --------------------------------------------------------------------------- saving
def save_atomic(model, tokenizer, dest: Path, variant_info: dict) -> None:
    """save_pretrained into a temp folder beside `dest`, then swap it in with renames.

    A run killed mid-save leaves the previous model (or nothing), never a half-written one.
    """
    from codebench.records import write_dir_atomic
    from codebench.runs import write_variant_info

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_variant_info(tmp, **variant_info)

    write_dir_atomic(dest, write)


# --------------------------------------------------------------------------- stage
def busy_cores(sample_s: float = 0.5) -> float:
    """CPUs busy right now: the non-idle share of /proc/stat's CPU time over `sample_s`
    seconds, times the core count. The 1-minute load average lags by a minute: right after
    `make setup`'s pip install it still reads ~1 on an idle machine. Falls back to the load
    average where /proc/stat is missing."""

    def read() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
        return sum(v), idle

    try:
        t0, i0 = read()
        time.sleep(sample_s)
        t1, i1 = read()
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0
    total = max(1, t1 - t0)
    return (1 - (i1 - i0) / total) * (os.cpu_count() or 1)


def auto_threads() -> int:
    """CPU threads worth using now: the cores not busy at this moment, at least 1.

    On a shared machine more torch threads than idle cores make every op spin-wait: a small
    model then trains 10-20x slower with 2 threads than with 1.
    """
    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    busy = round(busy_cores())
    return max(1, min(cores, cores - busy))


def family_instances(corpus: Corpus, count: int, seed: int) -> tuple[list, dict]:
    """`count` pyfamilies training functions, decontaminated against the benchmark's problems.

    The project's n-gram check (`codebench.codeio.decontam`, set 'pyfamilies', the data
    stage's default n and threshold) runs over every family instance and every corpus
    document; flagged instances are removed. Returns (instances kept, decontamination record).
    """
    from codebench.bench import pyfamilies
    from codebench.codeio.decontam import Decontaminator

    instances = pyfamilies.training_instances(count, seed) if count else []
    dc = Decontaminator.build(["pyfamilies"], None, n=DECONTAM_N, threshold=DECONTAM_THRESHOLD)
    # Family instances share their family's template with the evaluation problems by design
    # (the held-out unit is the unseen name-family pair), so the name-blind code-shape signal
    # would flag nearly all of them (1,466 of 2,000); the instances are checked with word
    # n-grams (names and constants count) and exact prompts, corpus documents with every signal.
    words = Decontaminator(n=dc.n, threshold=dc.threshold, index=dc.index)
    evals = pyfamilies.eval_instances()
    eval_pairs = {(p.name, p.family) for p in evals}
    eval_prompts = {p.prompt for p in evals}
    kept, removed, top = [], 0, 0.0
    for inst in instances:
        share, _ = words.check(inst.prompt + inst.solution)
        bad = share >= words.threshold
        if bad or inst.prompt in eval_prompts:
            removed += 1
        else:
            kept.append(inst)
            top = max(top, share)
    docs_flagged = [d.id for d in corpus.train if dc.is_contaminated(d.text)[0]]
    record = {
        "benchmark": pyfamilies.NAME,
        "eval_problems": len(evals),
        "family_instances": len(instances),
        "removed": removed,
        "kept": len(kept),
        "shared_name_family_pairs": sum((i.name, i.family) in eval_pairs for i in kept),
        "identical_prompts": sum(i.prompt in eval_prompts for i in kept),
        "max_overlap_kept": round(top, 4),
        "corpus_documents_flagged": docs_flagged,
        "n": DECONTAM_N,
        "threshold": DECONTAM_THRESHOLD,
        "instance_signal": "word n-grams + exact prompts (families are shared by design)",
    }
    return kept, record


def encode_split(tokenizer, prompts: Sequence[str], solutions: Sequence[str]) -> list[list[int]]:
    """Prompt and solution (+ end-of-text) tokenized separately and joined: the token boundary
    falls where a prompt ends at evaluation time."""
    heads = encode(tokenizer, prompts)
    tails = encode(tokenizer, [s + EOS for s in solutions])
    return [h + t for h, t in zip(heads, tails, strict=True)]


def prepare_data(
    corpus: Corpus, tokenizer, cfg: TinyModelConfig, seed: int, families: Sequence = ()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed train rows (with FIM examples and the family functions, shuffled together) and
    packed held-out rows (plain code)."""
    sample = "".join(d.text for d in corpus.train[:20])[:200_000]
    chars_per_token = len(sample) / max(1, len(encode(tokenizer, [sample])[0]))
    chunk_chars = max(64, int(cfg.context * chars_per_token * 0.9))
    rng = random.Random(seed)
    token_lists = encode(tokenizer, build_examples(corpus.train, chunk_chars, cfg.fim_rate, rng))
    if families:
        token_lists += encode_split(
            tokenizer, [f.prompt for f in families], [f.solution for f in families]
        )
        rng.shuffle(token_lists)
    train_rows = pack(token_lists, cfg.context)
    held_texts = [d.text + EOS for d in corpus.heldout]
    held_ids = encode(tokenizer, held_texts)
    if sum(map(len, held_ids)) < cfg.context:  # a tiny held-out split: one short row
        flat = [t for ids in held_ids for t in ids]
        held_rows = torch.tensor([flat or [tokenizer.eos_token_id]], dtype=torch.long)
    else:
        held_rows = pack(held_ids, cfg.context)[:HELDOUT_EVAL_ROWS]
    return train_rows, held_rows


def build(
    cfg: TinyModelConfig,
    run,
    *,
    seed: int = 0,
    device: str = "cpu",
    eval_chars: int = 50_000,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Train the tiny model and tokenizer, save them to run.model_dir('base'), record results.

    Returns the record also written to run.result_file('base_model'): parameter count,
    tokens seen, loss curves, held-out perplexity, wall time, config and provenance.
    """
    from codebench import models, results
    from codebench.runs import provenance

    t0 = time.perf_counter()
    threads = cfg.threads or auto_threads()
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        corpus = load_corpus(
            cfg.source,
            max_files=cfg.max_files,
            max_chars=cfg.max_chars,
            heldout_fraction=cfg.heldout_fraction,
        )
        families, decontam = family_instances(corpus, cfg.family_examples, seed)
        tokenizer = train_tokenizer(
            [d.text for d in corpus.train], cfg.vocab_size, context=cfg.context
        )
        train_rows, held_rows = prepare_data(corpus, tokenizer, cfg, seed, families)
        if log:
            stats = corpus.stats()
            log(
                f"corpus {cfg.source}: {stats['train_files']} train files ({stats['train_chars']:,} chars), {stats['heldout_files']} held-out; {len(train_rows)} packed rows of {cfg.context} tokens"
            )
            log(
                f"pyfamilies: {len(families)} training functions mixed in ({decontam['removed']} removed by decontamination against the {decontam['eval_problems']} evaluation problems)"
            )
        model = make_model(cfg, tokenizer, seed).to(device)
        if log:
            log(
                f"model: {sum(p.numel() for p in model.parameters()):,} parameters, {cfg.steps} steps of {cfg.batch_size}x{cfg.context} tokens on {device} ({threads} torch threads)"
            )
        t_train = time.perf_counter()
        ckpt = checkpoint_path(run, cfg, seed, device, train_rows)
        history = train(model, train_rows, held_rows, cfg, seed=seed, log=log, checkpoint=ckpt)
        train_s = time.perf_counter() - t_train
        ppl = models.perplexity(
            model,
            tokenizer,
            heldout_texts(corpus, eval_chars),
            context=cfg.context,
            batch_size=cfg.batch_size,
        )
        dest = run.model_dir("base")
        save_atomic(
            model.to("cpu"),
            tokenizer,
            dest,
            {"kind": "base", "parent": None, "loader": "hf", "builder": "codebench.tiny"},
        )
        for stale in ckpt.parent.glob("base-*.pt"):  # this one, and any of earlier configurations
            stale.unlink(missing_ok=True)
    finally:
        torch.set_num_threads(prev_threads)
    record = {
        "base": "tiny",
        "model_dir": str(dest),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "tokens_seen": cfg.steps * cfg.batch_size * cfg.context,
        "train_rows": len(train_rows),
        "corpus": corpus.stats(),
        "family_examples": len(families),
        "decontamination": decontam,
        "history": history,
        "final_train_loss": history["train_loss"][-1],
        "final_heldout_loss": history["heldout_loss"][-1],
        "heldout_perplexity": ppl,
        "train_seconds": round(train_s, 2),
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "threads": threads,
        "device": device,
        "config": cfg.model_dump(),
        "provenance": provenance(seed),
    }
    return results.write_stage(run, results.BaseModelResults, record)
