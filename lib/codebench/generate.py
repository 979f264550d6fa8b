"""Generation backends behind one interface: Hugging Face, OpenAI-compatible HTTP, vLLM.

    backend = make_backend("hf", model="tiny", run=ctx.run)
    outs = backend.generate(prompts, GenerationConfig(max_new_tokens=128, stop=["\\ndef "], n=5, temperature=0.8))
    outs[i][j].text, outs[i][j].finish_reason, outs[i][j].n_tokens

Stop-string protocol (the same for every backend): a stop string counts only when it occurs
in the generated text (text in the prompt never stops), wherever it occurs there (inside a
string literal too), and the returned text is cut at the earliest occurrence with the stop
string removed; `finish_reason` is 'stop' (stop string or end-of-sequence), 'length'
(max_new_tokens reached) or 'error' (the request failed after retries; `error` says why).
`n_tokens` counts the generated tokens the text keeps: the fewest tokens covering the text
before the stop, never the end-of-sequence token.

Seeds: HF seeds each padded batch with cfg.seed + batch index (prompts sorted by length),
so the same prompts and config give the same samples; greedy (temperature 0) decodes once
and repeats the result n times. OpenAI-compatible servers get `seed` per request.

Every backend takes `cache=PATH`: completed prompts are appended to that JSONL as they
finish (keyed by backend, prompt and config), so a killed run resumes without repeating
work; failed prompts are not stored and are retried next time.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class GenerationConfig:
    """What to generate. temperature 0 means greedy; top_k 0 means no top-k filter."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    n: int = 1
    stop: list[str] = field(default_factory=list)
    seed: int = 0


@dataclass
class Completion:
    """One sample for one prompt."""

    text: str  # stop string removed; truncated at the first stop
    finish_reason: str  # "stop" | "length" | "error"
    n_tokens: int
    error: str | None = None


Emit = Callable[[int, list[Completion]], None]


def find_stop(text: str, stops: Sequence[str]) -> int:
    """Index of the earliest occurrence of any stop string in `text`, or -1."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else -1


def _progress(progress: Any, total: int) -> Callable[[int], None]:
    """progress: None/False (silent), True (a tqdm bar), an object with .update(k), or a callable(k)."""
    if not progress:
        return lambda k: None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="generate", unit="prompt", mininterval=5)
        return bar.update
    if hasattr(progress, "update"):
        return progress.update
    return progress


class Backend:
    """Base class: result caching/resume and progress; subclasses implement `_generate`."""

    cache_id: str = ""

    def __init__(self, cache: str | os.PathLike | None = None):
        self._cache = None
        if cache is not None:
            from codebench.records import JsonlStore

            self._cache = JsonlStore(cache, lambda r: r["key"])
        self._lock = threading.Lock()

    def generate(
        self, prompts: list[str], cfg: GenerationConfig, progress=None
    ) -> list[list[Completion]]:
        """Completions for every prompt: result[prompt_index][sample_index] (cfg.n samples each)."""
        prompts = list(prompts)
        tick = _progress(progress, len(prompts))
        results: list[list[Completion] | None] = [None] * len(prompts)
        keys = [self._cache_key(p, cfg) for p in prompts] if self._cache is not None else []
        todo = []
        for i in range(len(prompts)):
            if self._cache is not None and self._cache.has(keys[i]):
                results[i] = [Completion(**c) for c in self._cache.records[keys[i]]["completions"]]
            else:
                todo.append(i)
        tick(len(prompts) - len(todo))

        def emit(j: int, comps: list[Completion]) -> None:
            i = todo[j]
            results[i] = comps
            if self._cache is not None and not any(c.finish_reason == "error" for c in comps):
                with self._lock:
                    self._cache.append({"key": keys[i], "completions": [asdict(c) for c in comps]})
            tick(1)

        if todo:
            self._generate([prompts[i] for i in todo], cfg, emit)
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            raise RuntimeError(
                f"{type(self).__name__} returned no result for prompts {missing[:5]}"
            )
        return results  # type: ignore[return-value]

    def _cache_key(self, prompt: str, cfg: GenerationConfig) -> str:
        blob = json.dumps([self.cache_id, prompt, asdict(cfg)], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _generate(self, prompts: list[str], cfg: GenerationConfig, emit: Emit) -> None:
        raise NotImplementedError

    def chat_prompt(self, messages: list[dict]) -> str:
        """Render messages with the tokenizer's chat template (models.FALLBACK_CHAT_TEMPLATE without one)."""
        from codebench.models import apply_chat

        return apply_chat(getattr(self, "tokenizer", None), messages)

    def stream(
        self, prompt: str, cfg: GenerationConfig, cancel: threading.Event | None = None
    ) -> Iterator[str]:
        """Text pieces of one completion as they are generated (default: the whole text at once).

        Setting `cancel` stops the generation early (backends that stream check it each step).
        """
        yield self.generate([prompt], GenerationConfig(**{**asdict(cfg), "n": 1}))[0][0].text

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()


# --------------------------------------------------------------------------- Hugging Face
class HFBackend(Backend):
    """transformers `generate`: batches of prompts sorted by length and left-padded, stop strings
    checked on each row's generated text during generation, n samples via num_return_sequences,
    one seed per batch. On CUDA (continuous_batching None or True) prompts go through
    transformers' continuous batching (`generate_batch`) instead; stop strings are then applied
    after generation, and any failure there falls back to the padded path with a warning.

    model: a spec for `codebench.models.load` ('tiny', a variant, a path, a hub id) or a loaded
    model (then pass `tokenizer`). batch_size: sequences per forward pass (prompts x n).

    Prompts are encoded with `models.encode_prompt` (one BOS, as in training); generation ends
    at any of `models.stop_token_ids` (eos and the chat template's end-of-turn token); ids the
    tokenizer cannot decode are never sampled, on either path.
    """

    TAIL = 3  # prompt tokens decoded in front of the continuation, for tokenizers that drop a leading space

    def __init__(
        self,
        model: Any = "tiny",
        tokenizer: Any = None,
        *,
        run: Any = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        continuous_batching: bool | None = None,
        trust_remote_code: bool = False,
        cache: str | os.PathLike | None = None,
    ):
        super().__init__(cache)
        from codebench import models

        if isinstance(model, str | os.PathLike):
            self.cache_id = f"hf:{model}"
            model, tokenizer = models.load(model, device, dtype, trust_remote_code, run=run)
        elif tokenizer is None:
            raise ValueError("HFBackend: pass `tokenizer` together with a loaded model")
        else:
            self.cache_id = f"hf:{getattr(model, 'name_or_path', type(model).__name__)}"
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = max(1, int(batch_size))
        self.continuous_batching = continuous_batching
        self.pad_id = next(
            t for t in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if t is not None
        )
        # eos of the model and tokenizer, plus the chat template's end-of-turn token
        self.eos_ids = models.stop_token_ids(model, tokenizer)
        self.end_ids = set(self.eos_ids) | {self.pad_id}
        self.vocab_mask = models.extra_vocab_mask(model, tokenizer)
        self.undecodable = models.undecodable_ids(model, tokenizer)
        self._bos = models.adds_bos(tokenizer)

    # ---- text helpers
    def _encode(self, prompt: str) -> list[int]:
        from codebench import models

        ids = models.encode_prompt(self.tokenizer, prompt, self._bos)
        if not ids:  # an empty prompt still needs one position to condition on
            bos = self.tokenizer.bos_token_id
            ids = [bos if bos is not None else (self.eos_ids or [self.pad_id])[0]]
        return list(ids)

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(
            list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
        )

    def continuation(self, tail: Sequence[int], new: Sequence[int]) -> str:
        """Text of `new` tokens as they read after `tail` (keeps a leading space sentencepiece would drop)."""
        if not tail:
            return self._decode(new)
        head = self._decode(tail)
        full = self._decode(list(tail) + list(new))
        return full[len(head) :] if full.startswith(head) else self._decode(new)

    def _finish(
        self, tail: list[int], new: list[int], stops: Sequence[str], max_new: int
    ) -> Completion:
        """Cut a row's tokens at end-of-sequence and its text at the earliest stop string."""
        ended = next((k for k, t in enumerate(new) if t in self.end_ids), None)
        toks = new if ended is None else new[:ended]
        text = self.continuation(tail, toks)
        cut = find_stop(text, stops)
        if cut >= 0:
            lo, hi = 0, len(toks)  # fewest tokens whose text covers the kept part
            while lo < hi:
                mid = (lo + hi) // 2
                if len(self.continuation(tail, toks[:mid])) >= cut:
                    hi = mid
                else:
                    lo = mid + 1
            return Completion(text[:cut], "stop", lo if cut else 0)
        reason = "stop" if ended is not None or len(toks) < max_new else "length"
        return Completion(text, reason, len(toks))

    # ---- generation
    def _gen_config(self, cfg: GenerationConfig, n: int, *, suppress: bool = False):
        """transformers' GenerationConfig for `cfg`; `suppress` puts the undecodable ids in
        `suppress_tokens` (the continuous-batching path, which takes no logits processors: the
        padded path masks them with `models.extra_vocab_mask`)."""
        from transformers import GenerationConfig as HFGenerationConfig

        sample = cfg.temperature > 0
        # Sampling knobs are set only when sampling: greedy with them set makes transformers warn.
        # top_k=0 / top_p=1.0 are explicit "off" values, so the model's own defaults never leak in.
        knobs = (
            {"temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": cfg.top_k}
            if sample
            else {}
        )
        return HFGenerationConfig(
            max_new_tokens=cfg.max_new_tokens,
            do_sample=sample,
            repetition_penalty=cfg.repetition_penalty,
            num_return_sequences=n,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids or None,
            suppress_tokens=(self.undecodable or None) if suppress else None,
            **knobs,
        )

    def _use_continuous(self) -> bool:
        on_cuda = self.model.device.type == "cuda"
        wanted = self.continuous_batching if self.continuous_batching is not None else on_cuda
        return bool(wanted and on_cuda and hasattr(self.model, "generate_batch"))

    def _context_limit(self) -> int | None:
        """The model's trained window in tokens (None when the config does not say)."""
        from codebench.models import context_window

        return context_window(self.model)

    def _fit_context(self, encoded: list[list[int]], max_new: int) -> list[list[int]]:
        """Cut prompts from the left so prompt + max_new_tokens fits the model's window.

        Keeping the end of the prompt keeps the text the model must continue; the count of
        cut prompts is logged, never silent.
        """
        limit = self._context_limit()
        if limit is None:
            return encoded
        keep = max(limit - max_new, limit // 2)
        cut = sum(len(x) > keep for x in encoded)
        if cut:
            log.warning(
                "%d of %d prompts are longer than the model's window allows (%d tokens = %d - %d new); "
                "kept their last %d tokens",
                cut,
                len(encoded),
                keep,
                limit,
                max_new,
                keep,
            )
        return [x[-keep:] if len(x) > keep else x for x in encoded]

    def _generate(self, prompts: list[str], cfg: GenerationConfig, emit: Emit) -> None:
        encoded = self._fit_context([self._encode(p) for p in prompts], cfg.max_new_tokens)
        if self._use_continuous():
            try:
                return self._generate_continuous(encoded, cfg, emit)
            except Exception as e:  # noqa: BLE001 - fall back to the padded path, loudly
                log.warning(
                    "continuous batching failed (%s: %s); using padded batches", type(e).__name__, e
                )
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        per_batch = max(1, self.batch_size // max(1, cfg.n))
        for b, start in enumerate(range(0, len(order), per_batch)):
            idx = order[start : start + per_batch]
            outs = self.generate_ids([encoded[i] for i in idx], cfg, seed=cfg.seed + b)
            for i, comps in zip(idx, outs, strict=True):
                emit(i, comps)

    def _pad_left(self, batch: list[list[int]]):
        import torch

        width = max(len(x) for x in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, x in enumerate(batch):
            ids[r, width - len(x) :] = torch.tensor(x, dtype=torch.long)
            mask[r, width - len(x) :] = 1
        return ids.to(self.model.device), mask.to(self.model.device)

    def _criteria(self, cfg: GenerationConfig, batch: list[list[int]], width: int):
        from transformers import LogitsProcessorList, StoppingCriteriaList

        tails = [x[-self.TAIL :] for x in batch for _ in range(cfg.n)]
        stopping = StoppingCriteriaList(
            [_StopOnText(self, cfg.stop, width, tails, self.end_ids)] if any(cfg.stop) else []
        )
        processors = LogitsProcessorList([self.vocab_mask] if self.vocab_mask is not None else [])
        return stopping, processors

    def generate_ids(
        self, batch: list[list[int]], cfg: GenerationConfig, seed: int = 0
    ) -> list[list[Completion]]:
        """One padded `generate` call for token-id prompts: [prompt][sample] completions."""
        import torch

        if cfg.temperature <= 0 and cfg.n > 1:  # greedy samples are all the same: decode once
            once = self.generate_ids(batch, GenerationConfig(**{**asdict(cfg), "n": 1}), seed)
            return [[c[0]] * cfg.n for c in once]
        ids, mask = self._pad_left(batch)
        stopping, processors = self._criteria(cfg, batch, ids.shape[1])
        devices = [self.model.device] if self.model.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                generation_config=self._gen_config(cfg, cfg.n),
                stopping_criteria=stopping,
                logits_processor=processors,
            )
        new = out[:, ids.shape[1] :].tolist()
        return [
            [
                self._finish(
                    batch[p][-self.TAIL :], new[p * cfg.n + s], cfg.stop, cfg.max_new_tokens
                )
                for s in range(cfg.n)
            ]
            for p in range(len(batch))
        ]

    def _generate_continuous(
        self, encoded: list[list[int]], cfg: GenerationConfig, emit: Emit
    ) -> None:
        """transformers continuous batching (CUDA): paged KV cache, requests scheduled as slots free up."""
        import torch

        torch.manual_seed(cfg.seed)
        outs = self.model.generate_batch(
            inputs=encoded,
            generation_config=self._gen_config(cfg, cfg.n, suppress=True),
            max_new_tokens=cfg.max_new_tokens,
        )
        groups: dict[str, list] = {}
        for rid, res in outs.items():
            groups.setdefault(rid.split("__child#")[0], []).append(res)
        ordered = list(groups.values())
        if len(ordered) != len(encoded):
            raise RuntimeError(
                f"continuous batching returned {len(ordered)} of {len(encoded)} requests"
            )
        for i, results in enumerate(ordered):
            comps = []
            for res in results[: cfg.n]:
                if res.error is not None:
                    comps.append(Completion("", "error", 0, error=str(res.error)))
                else:
                    comps.append(
                        self._finish(
                            encoded[i][-self.TAIL :],
                            list(res.generated_tokens),
                            cfg.stop,
                            cfg.max_new_tokens,
                        )
                    )
            comps += [Completion("", "error", 0, error="no result from continuous batching")] * (
                cfg.n - len(comps)
            )
            emit(i, comps)

    def stream(
        self, prompt: str, cfg: GenerationConfig, cancel: threading.Event | None = None
    ) -> Iterator[str]:
        """Yield text as it is generated (TextIteratorStreamer), stopping at the first stop string,
        or at the next step once `cancel` is set."""
        import torch
        from transformers import TextIteratorStreamer

        batch = self._fit_context([self._encode(prompt)], cfg.max_new_tokens)
        ids, mask = self._pad_left(batch)
        one = GenerationConfig(**{**asdict(cfg), "n": 1})
        stopping, processors = self._criteria(one, batch, ids.shape[1])
        if cancel is not None:
            stopping.append(_Cancelled(cancel))
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(
            input_ids=ids,
            attention_mask=mask,
            generation_config=self._gen_config(one, 1),
            stopping_criteria=stopping,
            logits_processor=processors,
            streamer=streamer,
        )
        torch.manual_seed(cfg.seed)
        worker = threading.Thread(
            target=torch.no_grad()(self.model.generate), kwargs=kwargs, daemon=True
        )
        worker.start()
        hold = (
            max((len(s) for s in cfg.stop if s), default=1) - 1
        )  # could be the start of a stop string
        buf, sent = "", 0
        try:
            for piece in streamer:
                buf += piece
                cut = find_stop(buf, cfg.stop)
                if cut >= 0:
                    if cut > sent:
                        yield buf[sent:cut]
                    return
                safe = len(buf) - hold
                if safe > sent:
                    yield buf[sent:safe]
                    sent = safe
            if len(buf) > sent:
                yield buf[sent:]
        finally:
            worker.join()


class _Cancelled:
    """Stopping criterion: every row is done once `event` is set (a Stop button)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


class _StopOnText:
    """Stopping criterion: a row is done once its *generated* text contains a stop string.

    Unlike transformers' StopStringCriteria it never matches across the prompt boundary, and
    it reads text through the tokenizer's decoder (byte-level and sentencepiece alike). Only
    the last few tokens are decoded each step: a stop string of B bytes spans at most B tokens.
    """

    def __init__(
        self,
        backend: HFBackend,
        stops: Sequence[str],
        width: int,
        tails: list[list[int]],
        end_ids: set[int],
    ):
        self.backend, self.stops, self.width, self.tails, self.end_ids = (
            backend,
            [s for s in stops if s],
            width,
            tails,
            end_ids,
        )
        self.window = max(len(s.encode()) for s in self.stops) + 2
        self.done: list[bool] | None = None

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        if self.done is None:
            self.done = [False] * input_ids.shape[0]
        new = input_ids[:, self.width :]
        for r in range(input_ids.shape[0]):
            if self.done[r]:
                continue
            row = new[r].tolist()
            if row and row[-1] in self.end_ids:
                continue  # finished by end-of-sequence; generate handles it
            if len(row) <= self.window:
                text = self.backend.continuation(self.tails[r], row)
            else:
                text = self.backend.continuation(
                    row[-self.window - 3 : -self.window], row[-self.window :]
                )
            self.done[r] = find_stop(text, self.stops) >= 0
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


# --------------------------------------------------------------------------- OpenAI-compatible HTTP
class RequestFailed(RuntimeError):
    """An HTTP request failed for good (a non-retryable status, or retries exhausted)."""


class OpenAIBackend(Backend):
    """An OpenAI-compatible server (/v1/completions, or /v1/chat/completions with chat=True).

    Prompts run concurrently on a thread pool. 429, 5xx, connection errors and timeouts are
    retried with exponential backoff (honouring Retry-After); a prompt that still fails gets
    `Completion(finish_reason='error', error=...)` for each sample instead of an exception.
    top_k and repetition_penalty are sent only when set (vLLM, TGI and llama.cpp accept them).
    n_tokens comes from `tokenizer` when given, else from the server's usage (split evenly
    over the choices of one request).
    """

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        *,
        api_key: str | None = None,
        chat: bool = False,
        concurrency: int = 8,
        max_retries: int = 5,
        timeout: float = 120.0,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        tokenizer: Any = None,
        extra_body: dict | None = None,
        cache: str | os.PathLike | None = None,
    ):
        super().__init__(cache)
        self.model, self.base_url, self.chat = model, base_url.rstrip("/"), chat
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.concurrency, self.max_retries, self.timeout = max(1, concurrency), max_retries, timeout
        self.backoff, self.max_backoff = backoff, max_backoff
        self.tokenizer, self.extra_body = tokenizer, dict(extra_body or {})
        self.cache_id = f"openai:{self.base_url}:{model}:{'chat' if chat else 'completions'}"

    def _body(
        self, prompt: str, cfg: GenerationConfig, n: int, seed: int, stream: bool = False
    ) -> dict:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": cfg.max_new_tokens,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "n": n,
            "seed": seed,
        }
        if self.chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        if cfg.stop:
            body["stop"] = list(cfg.stop)
        if cfg.top_k:
            body["top_k"] = cfg.top_k
        if cfg.repetition_penalty != 1.0:
            body["repetition_penalty"] = cfg.repetition_penalty
        if stream:
            body["stream"] = True
        return {**body, **self.extra_body}

    def _open(self, body: dict):
        url = self.base_url + ("/chat/completions" if self.chat else "/completions")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode()
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            wait = min(self.max_backoff, self.backoff * 2**attempt) * (1 + 0.25 * random.random())
            try:
                return urllib.request.urlopen(
                    urllib.request.Request(url, data=data, headers=headers, method="POST"),
                    timeout=self.timeout,
                )
            except urllib.error.HTTPError as e:
                detail = e.read()[:300].decode("utf-8", "replace")
                last = f"HTTP {e.code} from {url}: {detail}"
                if e.code != 429 and e.code < 500:
                    raise RequestFailed(last) from None
                retry_after = e.headers.get("Retry-After") if e.headers else None
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    wait = min(self.max_backoff, float(retry_after))
            except (
                urllib.error.URLError,
                http.client.HTTPException,
                ConnectionError,
                TimeoutError,
            ) as e:
                last = f"{type(e).__name__} talking to {url}: {getattr(e, 'reason', e)}"
            if attempt < self.max_retries:
                time.sleep(wait)
        raise RequestFailed(f"{last} (gave up after {self.max_retries + 1} attempts)")

    def _post(self, body: dict) -> dict:
        resp = self._open(body)
        try:
            with resp:
                return json.loads(resp.read())
        except (ValueError, OSError, http.client.HTTPException) as e:
            raise RequestFailed(f"bad response from {self.base_url}: {e}") from None

    def _choices(self, reply: dict, cfg: GenerationConfig) -> list[Completion]:
        choices = sorted(reply.get("choices") or [], key=lambda c: c.get("index", 0))
        usage = (reply.get("usage") or {}).get("completion_tokens")
        out = []
        for c in choices:
            text = c.get("text") if not self.chat else (c.get("message") or {}).get("content")
            text = text or ""
            cut = find_stop(
                text, cfg.stop
            )  # servers strip stops already; this keeps the protocol exact
            reason = "stop" if cut >= 0 or c.get("finish_reason") not in ("length",) else "length"
            text = text[:cut] if cut >= 0 else text
            if self.tokenizer is not None:
                n_tok = len(
                    self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
                )
            else:
                n_tok = int(usage) // max(1, len(choices)) if usage is not None else 0
            out.append(Completion(text, reason, n_tok))
        return out

    def _complete(self, prompt: str, cfg: GenerationConfig) -> list[Completion]:
        comps: list[Completion] = []
        try:
            for _ in range(
                cfg.n
            ):  # servers that cap n return fewer choices: ask again for the rest
                got = self._choices(
                    self._post(self._body(prompt, cfg, cfg.n - len(comps), cfg.seed + len(comps))),
                    cfg,
                )
                if not got:
                    raise RequestFailed(f"response from {self.base_url} has no choices")
                comps += got
                if len(comps) >= cfg.n:
                    return comps[: cfg.n]
            return comps[: cfg.n]
        except RequestFailed as e:
            return [Completion("", "error", 0, error=str(e))] * cfg.n

    def _generate(self, prompts: list[str], cfg: GenerationConfig, emit: Emit) -> None:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self._complete, p, cfg): i for i, p in enumerate(prompts)}
            for fut in as_completed(futures):
                emit(futures[fut], fut.result())

    def stream(self, prompt: str, cfg: GenerationConfig) -> Iterator[str]:
        """Server-sent events (stream=true); stops at the first stop string."""
        resp = self._open(self._body(prompt, cfg, 1, cfg.seed, stream=True))
        buf, sent = "", 0
        hold = max((len(s) for s in cfg.stop if s), default=1) - 1
        with resp:
            for raw in resp:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                choice = (json.loads(data).get("choices") or [{}])[0]
                piece = (
                    (choice.get("delta") or {}).get("content") if self.chat else choice.get("text")
                )
                buf += piece or ""
                cut = find_stop(buf, cfg.stop)
                if cut >= 0:
                    if cut > sent:
                        yield buf[sent:cut]
                    return
                if len(buf) - hold > sent:
                    yield buf[sent : len(buf) - hold]
                    sent = len(buf) - hold
        if len(buf) > sent:
            yield buf[sent:]


# --------------------------------------------------------------------------- vLLM
class VLLMBackend(Backend):
    """vLLM's offline engine (GPU). `model` is a spec resolved by codebench.models (path or hub id)."""

    def __init__(
        self,
        model: str = "tiny",
        *,
        run: Any = None,
        dtype: str = "auto",
        cache: str | os.PathLike | None = None,
        **llm_options: Any,
    ):
        super().__init__(cache)
        try:
            import vllm
        except ImportError:
            raise RuntimeError(
                "vLLM is not installed (pip install 'codebench[vllm]' on a CUDA machine); use make_backend('hf') or 'openai' instead"
            ) from None
        from codebench.models import resolve

        target = resolve(model, run)
        self.cache_id = f"vllm:{target}"
        self._vllm = vllm
        self.llm = vllm.LLM(model=target, dtype=dtype, **llm_options)
        self.tokenizer = self.llm.get_tokenizer()
        from codebench.models import end_of_turn_ids

        self.end_of_turn = end_of_turn_ids(self.tokenizer)

    def _generate(self, prompts: list[str], cfg: GenerationConfig, emit: Emit) -> None:
        params = self._vllm.SamplingParams(
            n=cfg.n,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k if cfg.top_k > 0 else -1,
            repetition_penalty=cfg.repetition_penalty,
            max_tokens=cfg.max_new_tokens,
            stop=list(cfg.stop) or None,
            stop_token_ids=self.end_of_turn or None,  # e.g. <|im_end|> of a base model's ChatML
            seed=cfg.seed,
        )
        from codebench.models import encode_prompt

        # token ids, not text: vLLM would add a BOS in front of a chat prompt whose template
        # already wrote one (DeepSeek-Coder instruct); encode_prompt adds it exactly once
        start = next(
            t
            for t in (self.tokenizer.bos_token_id, self.tokenizer.eos_token_id, 0)
            if t is not None
        )  # an empty prompt still needs one position
        inputs = [
            {"prompt_token_ids": encode_prompt(self.tokenizer, p) or [start]} for p in prompts
        ]
        for i, out in enumerate(self.llm.generate(inputs, params, use_tqdm=False)):
            comps = []
            for o in out.outputs:
                cut = find_stop(o.text, cfg.stop)
                reason = "length" if o.finish_reason == "length" and cut < 0 else "stop"
                comps.append(
                    Completion(o.text[:cut] if cut >= 0 else o.text, reason, len(o.token_ids))
                )
            emit(i, comps)


BACKENDS = {"hf": HFBackend, "openai": OpenAIBackend, "vllm": VLLMBackend}


def make_backend(kind: str = "hf", model: Any = "tiny", **options: Any) -> Backend:
    """Build a backend: 'hf' (transformers), 'openai' (an OpenAI-compatible server), 'vllm'.

    model: for 'hf' and 'vllm' a spec for codebench.models ('tiny', a variant name with
    run=..., a path, a hub id) or, for 'hf', a loaded model with tokenizer=...; for 'openai'
    the served model name (pass base_url=...). Other options go to the backend's constructor.
    """
    if kind not in BACKENDS:
        raise ValueError(f"unknown generation backend {kind!r} (known: {', '.join(BACKENDS)})")
    return BACKENDS[kind](model, **options)
