"""Family quirks, tested per family on small stand-ins of real code LMs.

Each stand-in is built here, offline, from the family's real config class (small width and
depth, real vocabulary size and module names) and a tokenizer carrying the family's real
special tokens at their real ids, its real `bos`/`eos`/`pad` and its published chat template
(tests/fixtures/families/families.json, copied from the models' tokenizer_config.json):

  codegen-mono             Salesforce/codegen-350M-mono: 50295 tokens, 51200 rows, fused qkv_proj
  deepseek-coder-base      deepseek-ai/deepseek-coder-1.3b-base: Llama, BOS added, own FIM markers
  deepseek-coder-instruct  ... -instruct: template writes {{bos_token}}, turns end with <|EOT|>
  qwen2.5-coder-base       Qwen/Qwen2.5-Coder-1.5B: ChatML template, generation eos <|endoftext|>
  starcoder2               bigcode/starcoder2-3b: c_fc/c_proj MLP, tied embeddings

Every family goes through load, FIM prompt, chat prompt (one BOS), end-of-turn stopping,
LoRA targets, int8, merge (tied embeddings kept tied) and a HumanEval subset.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from codebench import models
from codebench.generate import GenerationConfig, HFBackend

FIXTURE = Path(__file__).parent / "fixtures" / "families" / "families.json"
SPEC = {k: v for k, v in json.loads(FIXTURE.read_text(encoding="utf-8")).items() if k[0] != "_"}
FAMILIES = list(SPEC)
CHAT_FAMILIES = [f for f in FAMILIES if SPEC[f]["chat_template"]]
TIED = ("qwen2.5-coder-base", "starcoder2")

CODE = textwrap.dedent(
    '''
    def add(a, b):
        """Return the sum."""
        return a + b


    class Stack:
        def __init__(self):
            self.items = []

        def push(self, x):
            self.items.append(x)
    '''
)
TEXTS = [CODE * 4, "### Instruction:\nhi\n### Response:\nuser assistant system\n", "héllo ✓\n"]

FIM = {
    "deepseek-coder-base": ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
    "deepseek-coder-instruct": ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
    "qwen2.5-coder-base": ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    "starcoder2": ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    "codegen-mono": None,
}
LORA = {
    "codegen-mono": {"qkv_proj", "out_proj", "fc_in", "fc_out"},
    "deepseek-coder-base": {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    },
    "deepseek-coder-instruct": {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    },
    "qwen2.5-coder-base": {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    },
    "starcoder2": {"q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj"},
}


# --------------------------------------------------------------------------- building stand-ins
def _tokenizer(spec: dict):
    """Byte-level BPE trained on a little code, padded with filler entries so every special
    token sits at its real id, and the vocabulary has the real length."""
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors, trainers
    from tokenizers import models as tmodels
    from transformers import PreTrainedTokenizerFast

    first = spec["first_special_id"]
    specials = spec["special_tokens"]
    base = Tokenizer(tmodels.BPE())
    base.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials if first == 0 else [],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    base.train_from_iterator(TEXTS, trainer)
    state = json.loads(base.to_str())["model"]
    vocab = dict(state["vocab"])
    target = first if first > 0 else spec["tokenizer_len"]
    for i in range(len(vocab), target):
        vocab[f"filler{i}"] = i  # never produced by the merges: only pads the id space
    tok = Tokenizer(tmodels.BPE(vocab=vocab, merges=[tuple(m) for m in state["merges"]]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # in order from first_special_id (StarCoder2's, trained in at 0.., are already in place)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    if spec.get("whitespace_tokens"):  # CodeGen: runs of spaces and tabs as added tokens
        runs = [" " * k for k in range(32, 1, -1)] + ["\t" * k for k in range(9, 2, -1)]
        tok.add_tokens([AddedToken(r, normalized=False) for r in runs[: spec["whitespace_tokens"]]])
    bos = spec["bos_token"]
    if bos and spec["source"].startswith("deepseek"):  # LlamaTokenizerFast adds BOS
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A",
            pair=f"{bos} $A {bos} $B",
            special_tokens=[(bos, tok.token_to_id(bos))],
        )
    kw = {k: spec[k] for k in ("bos_token", "eos_token", "pad_token") if spec[k]}
    out = PreTrainedTokenizerFast(tokenizer_object=tok, **kw)
    if spec["chat_template"]:
        out.chat_template = spec["chat_template"]
    return out


def _config(name: str, tok):
    from transformers import CodeGenConfig, LlamaConfig, Qwen2Config, Starcoder2Config

    spec = SPEC[name]
    rows = spec["vocab_rows"]
    eos, bos = tok.convert_tokens_to_ids(spec["eos_token"]), tok.bos_token_id
    if name == "codegen-mono":
        return CodeGenConfig(
            vocab_size=rows, n_positions=2048, n_ctx=2048, n_embd=64, n_layer=2, n_head=4,
            rotary_dim=8, bos_token_id=eos, eos_token_id=eos, tie_word_embeddings=False,
        )  # fmt: skip
    if name.startswith("deepseek"):
        return LlamaConfig(
            vocab_size=rows, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=16384, rope_theta=100000.0,
            rope_scaling={"type": "linear", "factor": 4.0}, bos_token_id=bos, eos_token_id=eos,
            tie_word_embeddings=False,
        )  # fmt: skip
    if name.startswith("qwen"):
        return Qwen2Config(
            vocab_size=rows, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32768,
            rope_theta=1000000.0, bos_token_id=eos, eos_token_id=eos, tie_word_embeddings=True,
        )  # fmt: skip
    return Starcoder2Config(
        vocab_size=rows, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16384,
        bos_token_id=0, eos_token_id=0, use_bias=True, tie_word_embeddings=True,
    )  # fmt: skip


def build_family(name: str, dest: Path) -> Path:
    from transformers import AutoModelForCausalLM

    tok = _tokenizer(SPEC[name])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_config(name, tok))
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """{family: model folder}, built once per module, lazily per family."""
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = build_family(name, tmp_path_factory.mktemp(name.replace(".", "")))
        return built[name]

    return get


@pytest.fixture(scope="module")
def loaded(family):
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = models.load(family(name), "cpu")
        return cache[name]

    return get


# --------------------------------------------------------------------------- load
@pytest.mark.parametrize("name", FAMILIES)
def test_load_keeps_real_ids_and_masks_undecodable_rows(name, loaded):
    spec = SPEC[name]
    model, tok = loaded(name)
    assert len(tok) == spec["tokenizer_len"]
    assert model.get_input_embeddings().weight.shape[0] == spec["vocab_rows"]  # never shrunk
    for i, t in enumerate(spec["special_tokens"]):
        assert tok.convert_tokens_to_ids(t) == spec["first_special_id"] + i
    assert tok.pad_token_id is not None and tok.padding_side == "left"
    extra = models.undecodable_ids(model, tok)
    assert len(extra) == {"codegen-mono": 905, "qwen2.5-coder-base": 271, "starcoder2": 0}.get(
        name, 234
    )
    mask = models.extra_vocab_mask(model, tok)
    assert (mask is None) == (not extra)


# --------------------------------------------------------------------------- FIM
@pytest.mark.parametrize("name", FAMILIES)
def test_fim_prompt_uses_the_family_markers(name, loaded):
    _, tok = loaded(name)
    fim = models.fim_tokens(tok)
    if FIM[name] is None:
        assert fim is None
        return
    assert tuple(fim) == FIM[name]
    prompt = fim.prompt("def f(x):\n    return ", "\n")
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    marker_ids = [tok.convert_tokens_to_ids(t) for t in FIM[name]]
    assert [
        i for i in ids if i in marker_ids
    ] == marker_ids  # each marker is one token, in PSM order


# --------------------------------------------------------------------------- chat prompt: one BOS
MESSAGES = [{"role": "user", "content": "Write add(a, b)."}]


@pytest.mark.parametrize("name", FAMILIES)
def test_chat_prompt_has_exactly_the_bos_training_gives(name, loaded):
    from codebench.train.data import Example, render_prompt, tokenize_example

    model, tok = loaded(name)
    backend = HFBackend(model, tok, device="cpu")
    prompt = backend.chat_prompt(MESSAGES)
    assert prompt == render_prompt(MESSAGES, tok)  # generation renders what training renders
    prompt = backend.chat_prompt(MESSAGES)  # with the training template now set on `tok`
    assert prompt == render_prompt(MESSAGES, tok)
    ids = backend._encode(prompt)
    bos = tok.bos_token_id
    expected_bos = 1 if name.startswith("deepseek") else 0
    if bos is not None:
        assert ids.count(bos) == expected_bos and (ids[0] == bos) == bool(expected_bos)
    # the prompt's tokens are exactly the loss-free head of the training sequence
    example = Example(MESSAGES + [{"role": "assistant", "content": "return a + b"}], "t:1", "chat")
    tokenized = tokenize_example(example, tok)
    assert tokenized.input_ids[: len(ids)] == ids


def test_deepseek_instruct_double_bos_regression(loaded):
    """The template writes {{bos_token}}; plain encoding would add a second one."""
    model, tok = loaded("deepseek-coder-instruct")
    prompt = models.apply_chat(tok, MESSAGES)
    assert prompt.startswith(tok.bos_token)
    assert tok(prompt)["input_ids"][:2] == [tok.bos_token_id] * 2  # the bug this guards against
    ids = HFBackend(model, tok, device="cpu")._encode(prompt)
    assert ids[0] == tok.bos_token_id == 32013 and ids[1] != tok.bos_token_id
    assert ids.count(tok.bos_token_id) == 1


# --------------------------------------------------------------------------- end of turn
class _Script:
    """A logits processor that makes the model emit `script` token by token (then eos)."""

    def __init__(self, script: list[int], start: int, after: int):
        self.script, self.start, self.after = script, start, after

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.start
        want = self.script[step] if step < len(self.script) else self.after
        scores[:] = float("-inf")
        scores[:, want] = 0.0
        return scores


@pytest.mark.parametrize("name", CHAT_FAMILIES)
def test_end_of_turn_token_stops_generation_and_never_leaks(name, loaded):
    model, tok = loaded(name)
    eot = {"qwen2.5-coder-base": "<|im_end|>", "deepseek-coder-instruct": "<|EOT|>"}[name]
    assert models.end_of_turn_tokens(tok) == [eot]
    backend = HFBackend(model, tok, device="cpu")
    assert tok.convert_tokens_to_ids(eot) in backend.eos_ids
    reply = tok("return a + b", add_special_tokens=False)["input_ids"]
    invented = tok("<|im_start|>user\nnext question", add_special_tokens=False)["input_ids"]
    script = reply + [tok.convert_tokens_to_ids(eot)] + invented
    prompt = backend.chat_prompt(MESSAGES)
    width = len(backend._encode(prompt))
    filler = tok("x", add_special_tokens=False)["input_ids"][0]
    backend.vocab_mask = _Script(script, width, filler)  # the processor hook generate uses
    out = backend.generate([prompt], GenerationConfig(max_new_tokens=len(script) + 5))[0][0]
    assert out.text == "return a + b"
    assert "next question" not in out.text and eot not in out.text
    assert out.finish_reason == "stop" and out.n_tokens == len(reply)


def test_qwen_base_generation_config_names_only_endoftext(loaded):
    """Why the fix is needed: the checkpoint's own eos is <|endoftext|>, not <|im_end|>."""
    model, tok = loaded("qwen2.5-coder-base")
    assert model.generation_config.eos_token_id == 151643
    assert models.stop_token_ids(model, tok) == [151643, 151645]


# --------------------------------------------------------------------------- CUDA path's mask
@pytest.mark.parametrize("name", ["codegen-mono", "deepseek-coder-base", "qwen2.5-coder-base"])
def test_continuous_batching_config_masks_undecodable_ids(name, loaded):
    """The CUDA path (generate_batch) takes no logits processors; it builds them from the
    GenerationConfig, so the undecodable ids go in as suppress_tokens. Checked here on CPU
    with the very processor list transformers builds from that config."""
    model, tok = loaded(name)
    backend = HFBackend(model, tok, device="cpu")
    gcfg = backend._gen_config(GenerationConfig(temperature=0.7), 1, suppress=True)
    extra = models.undecodable_ids(model, tok)
    assert list(gcfg.suppress_tokens) == extra
    procs = model._get_logits_processor(gcfg)
    scores = procs(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, len(tok) + len(extra)))
    assert torch.isinf(scores[0, len(tok) :]).all() and torch.isfinite(scores[0, : len(tok)]).all()
    assert backend._gen_config(GenerationConfig(), 1).suppress_tokens is None  # padded path


# --------------------------------------------------------------------------- LoRA, int8, merge
@pytest.mark.parametrize("name", FAMILIES)
def test_lora_targets_every_linear_but_the_head(name, family):
    from peft import get_peft_model

    from codebench.train.lora import lora_config

    model, _ = models.load(family(name), "cpu")
    peft_model = get_peft_model(model, lora_config(r=4, alpha=8, dropout=0.0))
    adapted = {n.split(".")[-1] for n, m in peft_model.named_modules() if hasattr(m, "lora_A")}
    assert adapted == LORA[name]
    out = peft_model(input_ids=torch.tensor([[1, 2, 3]]))
    assert torch.isfinite(out.logits).all()


@pytest.mark.parametrize("name", FAMILIES)
def test_int8_variant_is_smaller_and_generates(name, family, tmp_path):
    from codebench.compress.io import save_int8

    model, tok = models.load(family(name), "cpu")
    dest = save_int8(
        model, tok, tmp_path / "int8", mode="dynamic", kind="int8-dynamic", parent="base"
    )
    size = sum(f.stat().st_size for f in dest.glob("*.safetensors"))
    full = sum(f.stat().st_size for f in Path(family(name)).glob("*.safetensors"))
    assert full / size > 3.0
    q, qtok = models.load(dest, "cpu")
    out = HFBackend(q, qtok, device="cpu").generate(
        ["def add(a, b):\n"], GenerationConfig(max_new_tokens=4)
    )[0][0]
    assert out.finish_reason in ("stop", "length")


@pytest.mark.parametrize("name", FAMILIES)
def test_merge_keeps_tied_embeddings_tied(name, family, tmp_path):
    from peft import get_peft_model

    from codebench.train.lora import lora_config
    from codebench.train.merge import merge_adapter

    model, tok = models.load(family(name), "cpu")
    peft_model = get_peft_model(model, lora_config(r=4, alpha=8, dropout=0.0))
    torch.manual_seed(1)
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.05)  # a non-trivial adapter
    x = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        want = peft_model(input_ids=x).logits
    peft_model.save_pretrained(tmp_path / "adapter")
    merged_dir = merge_adapter(
        str(family(name)), tmp_path / "adapter", tmp_path / "merged", tokenizer=tok
    )
    merged, _ = models.load(merged_dir, "cpu")
    with torch.no_grad():
        got = merged(input_ids=x).logits
    assert torch.allclose(got, want, atol=1e-4)
    tied = bool(merged.config.tie_word_embeddings)
    assert tied == (name in TIED)
    if tied:
        assert (
            merged.get_output_embeddings().weight.data_ptr()
            == merged.get_input_embeddings().weight.data_ptr()
        )


# --------------------------------------------------------------------------- StarCoder2 pruning
def test_starcoder2_mlp_and_head_prune_reload(family, tmp_path):
    from transformers import AutoModelForCausalLM

    from codebench.compress.structured import prune_attention_heads, prune_mlp_channels

    model, tok = models.load(family("starcoder2"), "cpu")
    rep = prune_mlp_channels(model, 0.25)
    assert rep["config_key"] == "intermediate_size" and (rep["before"], rep["after"]) == (256, 192)
    heads = prune_attention_heads(model, 0.5)
    assert heads["heads_after"] == 2
    model.save_pretrained(tmp_path / "pruned")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "pruned")
    assert again.model.layers[0].mlp.c_fc.out_features == 192
    x = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        assert torch.allclose(again(input_ids=x).logits, model(input_ids=x).logits, atol=1e-5)


# --------------------------------------------------------------------------- evaluation
@pytest.fixture(scope="module")
def sandbox():
    from codebench.sandbox import Sandbox

    with Sandbox(timeout=10.0) as sb:
        yield sb


@pytest.mark.parametrize("name", FAMILIES)
def test_humaneval_subset_runs_with_canaries(name, loaded, sandbox, tmp_path):
    from codebench import bench
    from codebench.bench.runner import EvalConfig

    model, tok = loaded(name)
    spec = "humaneval:instruct" if name in CHAT_FAMILIES else "humaneval"
    res = bench.evaluate(
        HFBackend(model, tok, device="cpu"),
        spec,
        tmp_path,
        model=name,
        config=EvalConfig(limit=2, max_new_tokens=8),
        sandbox=sandbox,
        progress=False,
        log=lambda *_: None,
    )
    assert res["status"] == "ok" and res["canary"]["ok"] and res["samples"] == 2
    assert 0.0 <= res["metrics"]["pass@1"]["value"] <= 1.0


@pytest.mark.gpu
def test_continuous_batching_on_cuda_never_samples_undecodable_ids(family):
    """On the GPU path itself: CodeGen's 905 extra rows are never sampled (random weights give
    them about 2 % of the mass, so 1024 unmasked samples would hit them almost surely)."""
    backend = HFBackend(str(family("codegen-mono")), device="cuda", dtype="float32")
    seen: list[int] = []
    original = backend.model.generate_batch

    def spy(*a, **k):
        outs = original(*a, **k)
        for res in outs.values():
            seen.extend(res.generated_tokens)
        return outs

    backend.model.generate_batch = spy
    cfg = GenerationConfig(max_new_tokens=64, temperature=1.0, top_p=1.0, n=4)
    backend.generate(["def add(a, b):\n", "class Stack:\n", "import os\n", "x = "], cfg)
    assert len(seen) > 200, "continuous batching was not used"
    assert max(seen) < len(backend.tokenizer)


def test_end_of_turn_lookup_fallbacks(loaded):
    import copy

    _, tok = loaded("qwen2.5-coder-base")
    tok = copy.deepcopy(tok)
    tok.chat_template = "{{ raise_exception('user first') }}<|im_end|>"  # cannot render
    assert models.end_of_turn_tokens(tok) == ["<|im_end|>"]  # the known marker it mentions
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}\n\n{% endfor %}"
    assert models.end_of_turn_tokens(tok) == []  # replies closed by plain text: nothing to add
    tok.chat_template = None
    assert models.end_of_turn_tokens(tok) == [] and models.end_of_turn_ids(tok) == []
