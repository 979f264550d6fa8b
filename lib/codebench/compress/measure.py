"""One measurement harness for every variant: bytes on disk, peak memory, latency, perplexity.

Sizes come from the files in the variant folder and memory from the process itself
(/proc/self/status VmHWM, and torch.cuda peak allocation on a GPU), never from
`get_memory_footprint()`, which reports full-precision sizes for torchao and quanto models.
`measure_isolated` runs each measurement in a fresh Python process so one variant's memory
(allocator caches, packed weights) cannot leak into the next one's numbers.

Latency: fixed thread count, one warm-up, median of repeats. Prefill = one forward pass over a
`prompt_tokens` prompt; decode = one forward step with the KV cache, median over
`new_tokens` steps x repeats (greedy). Perplexity: `codebench.models.perplexity`, sliding window.
`paired_decode(_isolated)` times a variant's decode against the reference's in one process,
step by step in alternating order: the ratio it gives survives a noisy machine, where two
processes measured minutes apart can differ by 2x for the same model.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".npz")


@dataclass
class MeasureConfig:
    """What to measure and how (JSON-able: it crosses into the measuring subprocess)."""

    threads: int = 2  # torch CPU threads; fixed so variants compare on equal terms (0 = all cores)
    prompt_tokens: int = 64  # prefill prompt length
    new_tokens: int = 16  # decode steps per repeat
    repeats: int = 3  # timed repeats after one warm-up
    ppl_context: int = 256  # sliding-window width (tokens)
    ppl_stride: int = 128  # window step; every token scored once
    ppl_batch_size: int = 4
    kernel: str = "auto"  # int8 kernel: auto | torchao | fbgemm
    generate_tokens: int = 8  # greedy tokens generated as a smoke check
    perplexity: bool = True
    latency: bool = True


def dir_bytes(path: str | os.PathLike) -> dict:
    """Bytes of the files in a model folder: all of them, and the weight files alone."""
    files = {}
    for f in sorted(Path(path).rglob("*")):
        if f.is_file() and not f.is_symlink():
            files[str(f.relative_to(path))] = f.stat().st_size
    suffixes = WEIGHT_SUFFIXES
    if any(
        n.endswith(".safetensors") for n in files
    ):  # transformers loads these; .bin twins are ignored
        suffixes = (".safetensors",)
    weights = sum(s for n, s in files.items() if n.endswith(suffixes))
    return {"total_bytes": sum(files.values()), "weight_bytes": weights, "files": files}


def model_files_dir(spec: str | os.PathLike) -> Path:
    """The folder holding a model's files: the path itself, or a hub id's local cache snapshot."""
    p = Path(spec)
    if p.is_dir():
        return p
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(spec), local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached: no files to count
        return p


def proc_memory() -> dict:
    """Current and peak resident set size of this process, in bytes (Linux /proc/self/status)."""
    out = {"rss_bytes": None, "peak_rss_bytes": None}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss_bytes" if key == "VmRSS" else "peak_rss_bytes"] = (
                    int(val.split()[0]) * 1024
                )
    except OSError:
        pass
    return out


# --------------------------------------------------------------------------- in-process pieces
def load_for_measure(path: str | os.PathLike, device: str, kernel: str = "auto"):
    """(model, tokenizer): compress variants through `load_variant` (with `kernel`), anything else through `codebench.models`."""
    from codebench import models
    from codebench.compress.io import LOADER, load_variant
    from codebench.runs import read_variant_info

    info = read_variant_info(Path(path)) if Path(path).is_dir() else None
    if info and info.get("loader") == LOADER:
        model = load_variant(path, device, kernel=kernel)
    else:
        model = models.load_model(str(path), device)
    return model, models.load_tokenizer(str(path))


def _prompt_ids(tok, texts: list[str], n: int):
    import torch

    ids = tok("\n".join(texts), verbose=False)["input_ids"] or [tok.eos_token_id or 0]
    while len(ids) < n:
        ids = ids + ids
    return torch.tensor([ids[:n]], dtype=torch.long)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def latency(model, ids, new_tokens: int, repeats: int, device: str) -> dict:
    """Median prefill time and median per-token decode time (greedy, KV cache), in ms."""
    import torch

    ids = ids.to(device)

    def step(x, past=None):
        out = model(input_ids=x, past_key_values=past, use_cache=True)
        return out.past_key_values, out.logits[:, -1:].argmax(-1)

    prefill, decode = [], []
    with torch.inference_mode():
        for r in range(repeats + 1):  # r == 0 is the warm-up
            _sync(device)
            t = time.perf_counter()
            past, tok = step(ids)
            _sync(device)
            if r:
                prefill.append(time.perf_counter() - t)
            for _ in range(new_tokens if r else 2):
                t = time.perf_counter()
                past, tok = step(tok, past)
                _sync(device)
                if r:
                    decode.append(time.perf_counter() - t)
    return {
        "prefill_ms": 1000 * statistics.median(prefill),
        "decode_ms_per_token": 1000 * statistics.median(decode),
        "decode_tokens_per_s": 1.0 / statistics.median(decode),
        "prompt_tokens": int(ids.shape[1]),
        "decode_steps": len(decode),
    }


def generate_sample(model, tok, n: int, device: str) -> str:
    """Greedy `n` tokens after a short code prompt (checks the variant can generate)."""
    import torch

    enc = tok("def add(a, b):\n", return_tensors="pt").to(device)
    with torch.inference_mode():
        out = model.generate(
            **enc, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id
        )
    return tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def _preload() -> None:
    # Import what loading needs before the baseline, so peak-over-baseline is the model's own.
    import transformers.models.auto.modeling_auto  # noqa: F401
    from transformers import AutoModelForCausalLM  # noqa: F401

    import codebench.compress.io  # noqa: F401
    import codebench.compress.quantize  # noqa: F401

    with contextlib.suppress(ImportError):
        import torchao.quantization  # noqa: F401


def measure(
    path: str | os.PathLike,
    device: str = "cpu",
    texts: list[str] | None = None,
    cfg: MeasureConfig | None = None,
) -> dict:
    """Measure one model folder in this process (use `measure_isolated` for honest memory)."""
    import torch

    from codebench import models

    cfg = cfg or MeasureConfig()
    texts = texts or []
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    _preload()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    base = proc_memory()  # after the imports: the baseline is the interpreter and libraries
    t0 = time.perf_counter()
    model, tok = load_for_measure(path, device, cfg.kernel)
    out: dict = {
        "path": str(path),
        "device": device,
        "threads": torch.get_num_threads(),
        "load_s": time.perf_counter() - t0,
    }
    out["kernel"] = getattr(model, "_codebench_kernel", None)
    out.update(dir_bytes(model_files_dir(path)))
    out["rss_after_load_bytes"] = proc_memory()["rss_bytes"]
    out["generated"] = generate_sample(model, tok, cfg.generate_tokens, device)
    if cfg.latency:
        out.update(
            latency(
                model,
                _prompt_ids(tok, texts or ["def f(x):\n    return x\n"], cfg.prompt_tokens),
                cfg.new_tokens,
                cfg.repeats,
                device,
            )
        )
    if cfg.perplexity and texts:
        ppl = models.perplexity(
            model,
            tok,
            texts,
            context=cfg.ppl_context,
            stride=cfg.ppl_stride,
            batch_size=cfg.ppl_batch_size,
        )
        out.update({"perplexity": ppl["ppl"], "nll": ppl["nll"], "ppl_tokens": ppl["tokens"]})
    mem = proc_memory()
    out.update({"baseline_rss_bytes": base["rss_bytes"], "peak_rss_bytes": mem["peak_rss_bytes"]})
    if mem["peak_rss_bytes"] and base["rss_bytes"]:
        out["peak_rss_over_baseline_bytes"] = mem["peak_rss_bytes"] - base["rss_bytes"]
    if device.startswith("cuda"):
        out["gpu_peak_bytes"] = torch.cuda.max_memory_allocated()
    return out


def paired_decode(
    reference: str | os.PathLike,
    variant: str | os.PathLike,
    device: str = "cpu",
    cfg: MeasureConfig | None = None,
    texts: list[str] | None = None,
) -> dict:
    """Decode latency of `variant` against `reference`, timed alternately in one process.

    Both models decode from the same prompt; every step times one token of each, in
    alternating order, so both see the same machine noise (on a shared or throttled machine
    separate processes minutes apart can differ by 2x for the same model). Returns both
    medians and `decode_speedup` = reference median / variant median."""
    import torch

    cfg = cfg or MeasureConfig()
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    _preload()
    ref, tok = load_for_measure(reference, device)
    var, _ = load_for_measure(variant, device, cfg.kernel)
    ids = _prompt_ids(tok, texts or ["def f(x):\n    return x\n"], cfg.prompt_tokens).to(device)
    times: dict[str, list[float]] = {"reference": [], "variant": []}
    models = {"reference": ref, "variant": var}
    with torch.inference_mode():
        for r in range(cfg.repeats + 1):  # r == 0 is the warm-up
            state = {}
            for name, m in models.items():
                out = m(input_ids=ids, use_cache=True)
                state[name] = (out.past_key_values, out.logits[:, -1:].argmax(-1))
            for i in range(cfg.new_tokens if r else 2):
                order = list(models) if i % 2 == 0 else list(models)[::-1]
                for name in order:
                    past, nxt = state[name]
                    _sync(device)
                    t = time.perf_counter()
                    out = models[name](input_ids=nxt, past_key_values=past, use_cache=True)
                    _sync(device)
                    if r:
                        times[name].append(time.perf_counter() - t)
                    state[name] = (out.past_key_values, out.logits[:, -1:].argmax(-1))
        share = (
            _weight_gemm_share(ref, state["reference"], cfg.new_tokens) if device == "cpu" else None
        )
    ref_ms = 1000 * statistics.median(times["reference"])
    var_ms = 1000 * statistics.median(times["variant"])
    return {
        "reference_gemm_share": share,
        "reference_decode_ms": ref_ms,
        "variant_decode_ms": var_ms,
        "decode_speedup": ref_ms / var_ms,
        "steps": len(times["variant"]),
        "threads": torch.get_num_threads(),
        "kernel": getattr(var, "_codebench_kernel", None),
    }


_GEMM_OPS = (
    "aten::mm",
    "aten::addmm",
    "aten::_int_mm",
    "quantized::linear_dynamic",
    "aten::_weight_int8pack_mm",
)


def _weight_gemm_share(model, state, steps: int) -> float:
    """Share of a decode step's operator self-time spent in weight GEMMs (torch.profiler, CPU).

    Everything else (attention, KV-cache updates, norms, rotary embeddings, dispatch) is
    untouched by weight quantization, so 1 / (1 - share) bounds the decode speed-up any
    faster weight kernel can give (Amdahl)."""
    from torch.profiler import ProfilerActivity, profile

    past, nxt = state
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            out = model(input_ids=nxt, past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    gemm = sum(e.self_cpu_time_total for e in events if e.key in _GEMM_OPS)
    return gemm / total if total else 0.0


# --------------------------------------------------------------------------- isolation
def measure_isolated(
    path: str | os.PathLike,
    device: str = "cpu",
    texts: list[str] | None = None,
    cfg: MeasureConfig | None = None,
    timeout: float = 3600,
) -> dict:
    """`measure` in a fresh Python process; failures come back as {'error': ...}, a variant
    the machine cannot run as {'unavailable': reason}, never as an exception."""
    return _isolated({"path": str(path), "device": device, "texts": texts or []}, cfg, timeout)


def paired_decode_isolated(
    reference: str | os.PathLike,
    variant: str | os.PathLike,
    device: str = "cpu",
    cfg: MeasureConfig | None = None,
    texts: list[str] | None = None,
    timeout: float = 3600,
) -> dict:
    """`paired_decode` in a fresh Python process (errors come back as {'error': ...})."""
    req = {
        "path": str(variant),
        "paired_with": str(reference),
        "device": device,
        "texts": texts or [],
    }
    return _isolated(req, cfg, timeout)


def _isolated(request: dict, cfg: MeasureConfig | None, timeout: float) -> dict:
    path = request["path"]
    cfg = cfg or MeasureConfig()
    with tempfile.TemporaryDirectory(prefix="codebench-measure-") as tmp:
        req, res = Path(tmp) / "request.json", Path(tmp) / "result.json"
        req.write_text(json.dumps({**request, "cfg": asdict(cfg)}))
        env = {
            **os.environ,
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "TRANSFORMERS_VERBOSITY": "error",
        }
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "codebench.compress.measure", str(req), str(res)],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
            )
        except subprocess.TimeoutExpired:
            return {"path": str(path), "error": f"measurement timed out after {timeout:.0f} s"}
        if res.is_file():
            return json.loads(res.read_text())
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        return {"path": str(path), "error": f"measuring process exited {proc.returncode}: {tail}"}


def _main(argv: list[str]) -> int:
    import logging
    import traceback

    logging.getLogger("torchao").setLevel(logging.ERROR)
    req = json.loads(Path(argv[0]).read_text())
    try:
        from codebench.compress.variants import VariantUnavailable

        try:
            if req.get("paired_with"):
                out = paired_decode(
                    req["paired_with"],
                    req["path"],
                    req["device"],
                    MeasureConfig(**req["cfg"]),
                    req["texts"],
                )
            else:
                out = measure(req["path"], req["device"], req["texts"], MeasureConfig(**req["cfg"]))
        except VariantUnavailable as e:
            out = {"path": req["path"], "unavailable": str(e)}
    except Exception as e:  # noqa: BLE001 - reported to the parent, which decides
        traceback.print_exc()
        out = {"path": req["path"], "error": f"{type(e).__name__}: {e}"}
    Path(argv[1]).write_text(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
