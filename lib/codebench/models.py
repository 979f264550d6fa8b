"""Load any causal code LM and its tokenizer the same way, with every known quirk handled once.

A model spec is 'tiny' (the run's own model, built by 00_base_model), a variant name of a
run ('base', 'lora', 'finetuned', 'int8-dynamic', ...), a local folder, or a hub id.
Everything goes through `AutoModelForCausalLM` / `AutoTokenizer`; the quirks live here:

- no pad token: the eos token pads (attention masks make that safe); without eos a
  `<|pad|>` token is added and the embedding grows to hold it (never shrinks);
- generation pads on the left (`load_tokenizer(padding_side="left")` is the default);
- CodeGen's tokenizer knows 50295 ids while its embedding has 51200 rows: the embedding is
  never resized down and `extra_vocab_mask` keeps generation off the ids the tokenizer
  cannot decode;
- base models without a chat template get the plain-text fallback `FALLBACK_CHAT_TEMPLATE`
  (a Jinja chat template, `use_chat_template`), for training and generation alike;
- FIM tokens are read from the tokenizer's vocabulary (`fim_tokens`);
- a chat template that writes `{{bos_token}}` itself (DeepSeek-Coder instruct) must not get a
  second BOS from encoding: `encode_prompt` adds BOS only where the tokenizer would and the
  text does not already start with it; the fallback template writes `{{bos_token}}` where the
  tokenizer adds BOS, so training and generation see the same ids;
- a template's own end-of-turn token (`<|im_end|>` for ChatML/Qwen, `<|EOT|>` for DeepSeek)
  ends generation like eos does (`end_of_turn_ids`, `stop_token_ids`), so a chat reply never
  runs on into an invented next turn;
- `dtype: auto` is float32 on CPU; `dtype: checkpoint` keeps a bf16 checkpoint in bf16 on a CPU
  with native bf16 (see `resolve_dtype`).
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import os
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

import torch

from codebench.quiet import quiet_peft
from codebench.runs import VARIANT_INFO, RunLayout, read_variant_info

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
MODEL_FILES = ("config.json", "adapter_config.json")


class ModelNotFoundError(FileNotFoundError):
    """A model spec names nothing loadable; the message names the spec and where it looked."""


# --------------------------------------------------------------------------- resolving
def _as_run(run: RunLayout | str | os.PathLike | None) -> RunLayout | None:
    if run is None or isinstance(run, RunLayout):
        return run
    return RunLayout(Path(run), Path(run) / "figures")


def _run_of(folder: Path) -> RunLayout | None:
    """The run a variant folder lives in (runs/<profile>/models/<variant>)."""
    if folder.parent.name == "models":
        return RunLayout(folder.parent.parent, folder.parent.parent / "figures")
    return None


def _is_loadable(folder: Path) -> bool:
    return any((folder / f).is_file() for f in MODEL_FILES)


def _follow_pointer(folder: Path) -> str | None:
    """A variant folder without weights whose info names a `source` (a registered hub/path base)."""
    info = read_variant_info(folder)
    if info and info.get("source") and not _is_loadable(folder):
        return str(info["source"])
    return None


@functools.lru_cache(maxsize=4)
def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the model hub answers (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE mean no)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").lower() in ("1", "true", "yes", "on"):
            return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection(
            (url.hostname or "huggingface.co", url.port or 443), timeout=timeout
        ):
            return True
    except OSError:
        return False


def _hub_cached(repo_id: str, revision: str | None = None) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str)
    except Exception:  # noqa: BLE001 - a malformed id or cache is simply "not cached"
        return False


def _not_found(
    spec: str, run: RunLayout | None, why: str = "the hub is unreachable"
) -> ModelNotFoundError:
    where = f"not a variant of run {run.root}" if run else "no run given to look for variants"
    return ModelNotFoundError(f"model '{spec}' not found: not a local path, {where}, and {why}")


def resolve(spec: str | os.PathLike, run: RunLayout | str | os.PathLike | None = None) -> str:
    """Turn a model spec into a local folder path or a hub id.

    'tiny' -> run.model_dir('base'); a variant present in `run` -> its folder; an existing
    local path -> itself; anything else that looks like a hub id -> the id (checked against
    the local cache and the hub). Variant folders that only point at a `source` (a hub or
    path base registered by 00_base_model) resolve to that source.
    """
    run = _as_run(run)
    s = str(spec)
    if s == "tiny":
        if run is None:
            raise ModelNotFoundError(
                "model 'tiny' needs a run: pass run=<RunLayout or run folder> (it lives in runs/<profile>/models/base)"
            )
        folder = run.model_dir("base")
        if not (folder / VARIANT_INFO).is_file():
            raise ModelNotFoundError(
                f"model 'tiny' not found: {folder} has no model yet; run notebooks/00_base_model.ipynb (or `codebench reproduce`) first"
            )
        target = _follow_pointer(folder)
        return resolve(target, run) if target else str(folder)
    if run is not None and "/" not in s and s in run.variants():
        folder = run.model_dir(s)
        target = _follow_pointer(folder)
        return resolve(target, run) if target else str(folder)
    path = Path(s).expanduser()
    if path.exists():
        if path.is_dir():
            target = _follow_pointer(path)
            return resolve(target, _run_of(path.resolve())) if target else str(path.resolve())
        raise ModelNotFoundError(
            f"model '{s}' is a file, not a model folder (expected config.json and weights inside)"
        )
    if s.startswith((".", "/", "~")) or not HUB_ID.match(s):
        raise _not_found(s, run, "not a valid hub id")
    if not _hub_cached(s) and not _hub_reachable():
        raise _not_found(s, run)
    return s


def _pointer_revision(spec: str | os.PathLike, run: RunLayout | None) -> str | None:
    """The hub revision a registered base pins (models/base info written by stage 00, `codebench.stages.model`)."""
    s = str(spec)
    folder = (
        run.model_dir("base" if s == "tiny" else s) if run is not None and "/" not in s else Path(s)
    )
    info = read_variant_info(folder) if folder.is_dir() else None
    return (info or {}).get("revision") if info and info.get("source") else None


def _hub_kwargs(target: str, revision: str | None) -> dict[str, Any]:
    if Path(target).exists():
        return {}
    kw: dict[str, Any] = {"revision": revision} if revision else {}
    if not _hub_reachable():
        kw["local_files_only"] = True  # cached: skip the network retries that would follow
    return kw


def _wrap_oserror(spec: str, run: RunLayout | None, err: OSError) -> ModelNotFoundError:
    why = (
        "the hub is unreachable"
        if not _hub_reachable()
        else f"the hub has no such model ({str(err).splitlines()[0]})"
    )
    return _not_found(spec, run, why)


# --------------------------------------------------------------------------- tokenizer
def _tokenizer_source(target: str) -> str:
    """Folder (or hub id) holding the tokenizer: variants without one use their parent's."""
    folder = Path(target)
    seen = set()
    while folder.is_dir() and not any((folder / f).is_file() for f in TOKENIZER_FILES):
        info = read_variant_info(folder) or {}
        parent, run = info.get("parent"), _run_of(folder.resolve())
        if not parent or parent in seen:
            raise ModelNotFoundError(
                f"{folder}: no tokenizer files and no parent variant to take them from"
            )
        seen.add(parent)
        folder = Path(resolve(parent, run))
        if not folder.exists():  # parent is a hub id
            return str(folder)
    return str(folder)


def fix_tokenizer(tok, padding_side: str = "left"):
    """Give the tokenizer a pad token and the padding side generation needs."""
    if tok.pad_token is None:
        if tok.eos_token is not None:
            tok.pad_token = tok.eos_token
        else:
            tok.add_special_tokens({"pad_token": "<|pad|>"})
    tok.padding_side = padding_side
    return tok


def load_tokenizer(
    spec: str | os.PathLike,
    padding_side: str = "left",
    *,
    run: RunLayout | str | os.PathLike | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
):
    """AutoTokenizer for a spec, with a pad token and `padding_side` set (left for generation)."""
    from transformers import AutoTokenizer

    run = _as_run(run)
    revision = revision or _pointer_revision(spec, run)
    target = _tokenizer_source(resolve(spec, run))
    try:
        tok = AutoTokenizer.from_pretrained(
            target, trust_remote_code=trust_remote_code, **_hub_kwargs(target, revision)
        )
    except OSError as e:
        raise _wrap_oserror(str(spec), run, e) from None
    return fix_tokenizer(tok, padding_side)


# --------------------------------------------------------------------------- model
@functools.lru_cache(maxsize=1)
def cpu_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def checkpoint_dtype(target: str) -> str | None:
    """The dtype a local model folder's config.json records ('bfloat16', ...), or None."""
    cfg = Path(target) / "config.json"
    try:
        conf = json.loads(cfg.read_text())
    except (OSError, ValueError):
        return None
    value = conf.get("dtype") or conf.get("torch_dtype")
    return value if isinstance(value, str) else None


def resolve_dtype(
    dtype: str | torch.dtype, device: str, checkpoint: str | None = None
) -> torch.dtype:
    """The torch dtype to load in.

    'auto'        bfloat16 on a GPU that supports it (else float16), float32 on CPU;
    'checkpoint'  like 'auto' on a GPU; on CPU the checkpoint's own bfloat16 (`checkpoint`, its
                  config's dtype) where the CPU computes bf16 natively (AVX512-BF16 / AMX:
                  `cpu_native_bf16`), else float32. It avoids upcasting a bf16 checkpoint (twice
                  the memory: 8.3 GB peak loading DeepSeek-Coder-1.3B); docs/protocols.md, "dtype".
    'float32' / 'bfloat16' / 'float16' as named.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in ("auto", "checkpoint"):
        if str(device).startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if dtype == "checkpoint" and checkpoint == "bfloat16" and cpu_native_bf16():
            return torch.bfloat16
        return torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            dtype
        ]
    except KeyError:
        raise ValueError(
            f"dtype: expected auto, checkpoint, float32, bfloat16 or float16, got {dtype!r}"
        ) from None


def _checkpoint_dtype(target: str, revision: str | None) -> str | None:
    """config.json's dtype of a local folder or of a hub model in the local cache."""
    if Path(target).is_dir():
        return checkpoint_dtype(target)
    try:  # the config alone (from the cache, else downloaded first): the same answer every run
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        cached = try_to_load_from_cache(target, "config.json", revision=revision)
        if not isinstance(cached, str):
            cached = hf_hub_download(target, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - unreadable: from_pretrained reports it; fp32 applies
        return None
    return checkpoint_dtype(str(Path(cached).parent))


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; 'cuda[:N]' without a GPU is a
    ValueError; anything else as given. The one home for device resolution."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} requested but no CUDA GPU is visible (use device='cpu' or 'auto')"
        )
    return str(device)


def load_model(
    spec: str | os.PathLike,
    device: str = "cpu",
    dtype: str | torch.dtype = "auto",
    trust_remote_code: bool = False,
    *,
    run: RunLayout | str | os.PathLike | None = None,
    revision: str | None = None,
):
    """Load a causal LM in eval mode, honouring the variant's `codebench_variant.json` loader.

    loader 'hf': AutoModelForCausalLM; 'peft': the adapter in the folder on its parent
    variant; any other value: a module providing `load_variant(path, device)`.
    """
    from transformers import AutoModelForCausalLM

    run = _as_run(run)
    device = resolve_device(device)
    target = resolve(spec, run)
    info = read_variant_info(Path(target)) if Path(target).is_dir() else None
    info = info or {}
    loader = info.get("loader", "hf")
    revision = revision or info.get("revision") or _pointer_revision(spec, run)
    if loader == "peft":
        from peft import PeftModel

        parent = info.get("parent")
        if not parent:
            raise ModelNotFoundError(f"{target}: adapter variant has no 'parent' in {VARIANT_INFO}")
        base = load_model(
            parent, device, dtype, trust_remote_code, run=_run_of(Path(target).resolve()) or run
        )
        with quiet_peft():
            model = PeftModel.from_pretrained(base, target)
    elif loader != "hf":
        try:
            module = importlib.import_module(loader)
        except ImportError as e:
            raise ModelNotFoundError(
                f"{target}: loader module {loader!r} named in {VARIANT_INFO} cannot be imported ({e})"
            ) from None
        loaded = module.load_variant(Path(target), device)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
    else:
        kw = {
            "dtype": resolve_dtype(
                dtype,
                device,
                _checkpoint_dtype(target, revision) if dtype == "checkpoint" else None,
            ),
            "trust_remote_code": trust_remote_code,
            **_hub_kwargs(target, revision),
        }
        try:
            model = AutoModelForCausalLM.from_pretrained(target, **kw)
        except OSError as e:
            raise _wrap_oserror(str(spec), run, e) from None
    if loader in ("hf", "peft"):
        model = model.to(device)
    model.eval()
    return model


def align_model_and_tokenizer(model, tok) -> None:
    """Grow (never shrink) the embedding to cover the tokenizer, and set generation ids."""
    emb = model.get_input_embeddings()
    rows = emb.weight.shape[0] if emb is not None else len(tok)
    if len(tok) > rows:
        model.resize_token_embeddings(len(tok))
    gc = model.generation_config
    gc.pad_token_id = tok.pad_token_id
    if gc.eos_token_id is None and tok.eos_token_id is not None:
        gc.eos_token_id = tok.eos_token_id


def load(
    spec: str | os.PathLike,
    device: str = "cpu",
    dtype: str | torch.dtype = "auto",
    trust_remote_code: bool = False,
    *,
    run: RunLayout | str | os.PathLike | None = None,
    revision: str | None = None,
    padding_side: str = "left",
):
    """(model, tokenizer), loaded the same way for every spec and aligned with each other."""
    tok = load_tokenizer(
        spec, padding_side, run=run, revision=revision, trust_remote_code=trust_remote_code
    )
    model = load_model(spec, device, dtype, trust_remote_code, run=run, revision=revision)
    align_model_and_tokenizer(model, tok)
    return model, tok


def parameter_count(model) -> int:
    """Number of parameters (shared tensors counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def extra_vocab_mask(model, tok):
    """A logits processor that forbids ids the tokenizer cannot decode (CodeGen: 50295..51199).

    Returns None when the embedding has no rows beyond the tokenizer.
    """
    from transformers import LogitsProcessor

    emb = model.get_output_embeddings() or model.get_input_embeddings()
    rows, known = emb.weight.shape[0], len(tok)
    if rows <= known:
        return None

    class _MaskExtraVocab(LogitsProcessor):
        def __call__(self, input_ids, scores):
            scores[:, known:] = float("-inf")
            return scores

    return _MaskExtraVocab()


def undecodable_ids(model, tok) -> list[int]:
    """Embedding rows the tokenizer has no token for (CodeGen 905, DeepSeek-Coder 234, Qwen2.5
    271): the ids `extra_vocab_mask` forbids, as a list for `GenerationConfig.suppress_tokens`
    (the form transformers' continuous batching applies)."""
    emb = model.get_output_embeddings() or model.get_input_embeddings()
    return list(range(len(tok), emb.weight.shape[0]))


# --------------------------------------------------------------------------- encoding and stopping
def adds_bos(tok) -> bool:
    """Whether encoding with special tokens puts BOS in front (Llama/DeepSeek do, GPT-2 BPE not)."""
    bos = getattr(tok, "bos_token_id", None)
    if bos is None:
        return False
    with_special = tok("a", add_special_tokens=True, verbose=False)["input_ids"]
    plain = tok("a", add_special_tokens=False, verbose=False)["input_ids"]
    return bool(with_special) and with_special[0] == bos and plain[:1] != [bos]


def encode_prompt(tok, text: str, bos: bool | None = None) -> list[int]:
    """Token ids of a generation prompt, with exactly the BOS training gives it.

    The text is encoded without special tokens; BOS is put in front when the tokenizer adds one
    (`bos`, else `adds_bos(tok)`) and the text does not already begin with it -- a chat template
    that writes `{{bos_token}}` (DeepSeek-Coder instruct) gets one BOS, not two.
    """
    ids = list(tok(text, add_special_tokens=False, verbose=False)["input_ids"])
    want = adds_bos(tok) if bos is None else bos
    if want and ids[:1] != [tok.bos_token_id]:
        ids.insert(0, tok.bos_token_id)
    return ids


#: end-of-turn markers of well-known chat formats, used when a template cannot be rendered
END_OF_TURN_TOKENS = ("<|im_end|>", "<|EOT|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")
_REPLY_MARK = "CODEBENCHREPLYMARK"


def end_of_turn_tokens(tok) -> list[str]:
    """The special token(s) the tokenizer's chat template writes right after an assistant reply.

    Found by rendering a one-exchange conversation and reading what follows the reply: ChatML
    (Qwen) -> ['<|im_end|>'], DeepSeek-Coder instruct -> ['<|EOT|>'], a template that closes
    turns with eos -> [eos]. Empty without a chat template (the fallback format ends replies
    with eos, which stops generation anyway). A template that cannot render that conversation
    falls back to the well-known markers in END_OF_TURN_TOKENS that it mentions.
    """
    template = getattr(tok, "chat_template", None) if tok is not None else None
    if not template:
        return []
    template = template if isinstance(template, str) else json.dumps(template)  # named templates
    specials = sorted(
        {str(t) for t in getattr(tok, "all_special_tokens", [])}
        | {str(t) for t in (getattr(tok, "added_tokens_encoder", None) or {})},
        key=len,
        reverse=True,
    )
    try:
        text = tok.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _REPLY_MARK}],
            tokenize=False,
        )
    except Exception:  # noqa: BLE001 - any template error: fall back to the known markers
        text = None
    if isinstance(text, str) and _REPLY_MARK in text:
        tail = text.split(_REPLY_MARK, 1)[1].lstrip()
        first = next((t for t in specials if t and tail.startswith(t)), None)
        return [first] if first else []
    vocab = tok.get_vocab()
    return [t for t in END_OF_TURN_TOKENS if t in template and t in vocab]


def end_of_turn_ids(tok) -> list[int]:
    """Ids of `end_of_turn_tokens(tok)`."""
    vocab = tok.get_vocab() if tok is not None else {}
    return [vocab[t] for t in end_of_turn_tokens(tok) if t in vocab]


def stop_token_ids(model, tok) -> list[int]:
    """Every id that ends a generation: the model's generation_config eos ids, the tokenizer's
    eos, and the chat template's end-of-turn token (`<|im_end|>` for Qwen2.5-Coder base, whose
    generation_config names only `<|endoftext|>`)."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [eos] if isinstance(eos, int) else list(eos or [])
    for extra in [getattr(tok, "eos_token_id", None), *end_of_turn_ids(tok)]:
        if extra is not None and extra not in ids:
            ids.append(extra)
    return ids


# --------------------------------------------------------------------------- chat and FIM
# The fallback for base models without a chat template: plain text a base model can continue.
#   [system text + blank line]
#   ### Instruction:\n<user text>\n\n### Response:\n<assistant text><eos>\n\n ...
# and, with add_generation_prompt, a trailing "### Response:\n" for the model to continue.
# It is a Jinja chat template set on the tokenizer (`use_chat_template`), so training (trl's
# SFTTrainer, assistant-only loss from the {% generation %} markers) and generation render it
# with the same `apply_chat_template` call.
FALLBACK_CHAT_TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}{{ m['content'] + '\\n\\n' }}"
    "{%- elif m['role'] == 'user' -%}{{ '### Instruction:\\n' + m['content'] + '\\n\\n' }}"
    "{%- elif m['role'] == 'assistant' -%}{{ '### Response:\\n' }}"
    "{%- generation -%}{{ m['content'] + eos_token }}{%- endgeneration -%}"
    "{%- if not loop.last -%}{{ '\\n\\n' }}{%- endif -%}"
    "{%- else -%}{{ raise_exception('chat message role must be system, user or assistant, got '"
    " + m['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{%- if messages and messages[-1]['role'] == 'assistant' -%}{{ '\\n\\n' }}{%- endif -%}"
    "{{ '### Response:\\n' }}"
    "{%- endif -%}"
)
_BOS = "{{- bos_token -}}"


def fallback_chat_template(tok) -> str:
    """FALLBACK_CHAT_TEMPLATE for `tok`: led by `{{bos_token}}` where the tokenizer adds BOS
    (so the rendered prompt carries exactly the BOS training gives it)."""
    return (_BOS if tok is not None and adds_bos(tok) else "") + FALLBACK_CHAT_TEMPLATE


def is_fallback_template(template: Any) -> bool:
    return isinstance(template, str) and template.removeprefix(_BOS) == FALLBACK_CHAT_TEMPLATE


def has_chat_template(tok) -> bool:
    """Whether the tokenizer carries its own chat template (the fallback does not count)."""
    template = getattr(tok, "chat_template", None)
    return bool(template) and not is_fallback_template(template)


def use_chat_template(tok, template: str = "auto") -> str:
    """Set the chat template training and generation render with; return which one it is.

    'auto': the tokenizer's own template when it has one, else the fallback; 'chat': its own
    (ValueError without one); 'fallback': the fallback even where the tokenizer has its own.
    """
    if template not in ("auto", "chat", "fallback"):
        raise ValueError(f"template must be auto, chat or fallback, got {template!r}")
    own = has_chat_template(tok)
    if template == "chat" and not own:
        raise ValueError(
            "template='chat' but the tokenizer has no chat template (use 'auto' or 'fallback')"
        )
    if template == "fallback" or not own:
        if not getattr(tok, "eos_token", None):
            raise ValueError(
                "the fallback chat template needs an eos token; the tokenizer has none"
            )
        tok.chat_template = fallback_chat_template(tok)
        return "fallback"
    return "chat"


def apply_chat(tok, messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
    """Render chat messages with the tokenizer's template, or with the fallback template."""
    from jinja2 import TemplateError
    from transformers.utils.chat_template_utils import render_jinja_template

    if tok is not None and has_chat_template(tok):
        return tok.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )
    eos = (getattr(tok, "eos_token", None) or "") if tok is not None else ""
    bos = (getattr(tok, "bos_token", None) or "") if tok is not None else ""
    try:
        rendered, _ = render_jinja_template(
            [list(messages)],
            chat_template=fallback_chat_template(tok),
            add_generation_prompt=add_generation_prompt,
            eos_token=eos,
            bos_token=bos,
        )
    except TemplateError as e:  # the fallback's own checks (an unknown role): bad input
        raise ValueError(str(e)) from None
    return rendered[0]


class FimTokens(NamedTuple):
    """Fill-in-the-middle marker strings of a tokenizer (prefix, suffix, middle)."""

    prefix: str
    suffix: str
    middle: str

    def prompt(self, before: str, after: str) -> str:
        """A prefix-suffix-middle (PSM) prompt; the model writes the middle after it."""
        return f"{self.prefix}{before}{self.suffix}{after}{self.middle}"


# Known families: Qwen/tiny, StarCoder/SantaCoder, DeepSeek-Coder (begin=prefix, hole=suffix, end=middle), CodeLlama.
FIM_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
    ("<fim-prefix>", "<fim-suffix>", "<fim-middle>"),
    ("<PRE>", "<SUF>", "<MID>"),
)


def fim_tokens(tok) -> FimTokens | None:
    """The tokenizer's FIM markers, or None when it has none.

    CodeLlama stores its markers as '▁<PRE>' etc.; the text form '<PRE>' is returned (its
    prompt convention is '<PRE> {prefix} <SUF>{suffix} <MID>').
    """
    vocab = set(tok.get_vocab())
    for fam in FIM_FAMILIES:
        if all(t in vocab or f"▁{t}" in vocab for t in fam):
            return FimTokens(*fam)
    return None


# --------------------------------------------------------------------------- perplexity
CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "n_ctx", "seq_length")


def context_window(model) -> int | None:
    """The model's trained window in tokens, from its config (None when the config does not say).
    The one home for this lookup (generation, perplexity and training use it)."""
    cfg = getattr(model, "config", None)
    for name in CONTEXT_FIELDS:
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def model_context(model, tok=None, cap: int = 2048) -> int:
    """The model's maximum positions (`context_window`), capped (and by the tokenizer's limit)."""
    n = context_window(model) or cap
    if tok is not None and 0 < getattr(tok, "model_max_length", 0) < n:
        n = tok.model_max_length
    return int(min(n, cap))


def _windows(ids: list[int], context: int, stride: int) -> list[tuple[list[int], int]]:
    """HF's strided scheme: the first window scores its whole span; each later one ends `stride`
    tokens further on and scores only those new targets, with the rest of the window as left
    context. Every token after the first is scored exactly once (a target needs one token
    before it in its window, so a window adds at most context - 1 targets)."""
    n = len(ids)
    end = min(context, n)
    out = [(ids[:end], end - 1)] if end > 1 else []
    step = min(stride, context - 1)
    while end < n:
        new_end = min(end + step, n)
        out.append((ids[max(0, new_end - context) : new_end], new_end - end))
        end = new_end
    return out


@torch.no_grad()
def perplexity(
    model,
    tokenizer,
    texts: Sequence[str],
    context: int | None = None,
    stride: int | None = None,
    batch_size: int = 4,
) -> dict:
    """Token-level perplexity of `texts` with a sliding window.

    Each text is tokenized whole (with the tokenizer's usual special tokens), cut into
    windows of `context` tokens every `stride` tokens (default context // 2), and every
    token after the first is scored exactly once, with up to `context - stride` tokens of
    left context. Returns {'ppl', 'nll' (mean, nats/token), 'tokens' (scored tokens)}.
    """
    context = context or model_context(model, tokenizer)
    stride = stride or max(1, context // 2)
    if context < 2 or not 0 < stride <= context:
        raise ValueError(
            f"perplexity: need context >= 2 and stride in 1..context ({context}), got stride {stride}"
        )
    windows = []
    for text in texts:
        ids = tokenizer(text, verbose=False)["input_ids"]
        windows.extend(_windows(ids, context, stride))
    windows.sort(key=lambda w: len(w[0]), reverse=True)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size]
        width = len(chunk[0][0])
        x = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(x)
        for r, (ids, _) in enumerate(chunk):
            x[r, : len(ids)] = torch.tensor(ids)
            mask[r, : len(ids)] = 1
        logits = model(input_ids=x.to(model.device), attention_mask=mask.to(model.device)).logits
        for r, (ids, n_score) in enumerate(chunk):
            n = len(ids)
            pred = logits[r, n - n_score - 1 : n - 1].float()
            target = x[r, n - n_score : n].to(pred.device)
            total += torch.nn.functional.cross_entropy(pred, target, reduction="sum").item()
            count += n_score
    model.train(was_training)
    nll = total / count if count else float("nan")
    return {"ppl": math.exp(nll) if count else float("nan"), "nll": nll, "tokens": count}
