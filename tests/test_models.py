"""codebench.models: loading quirks on random-weight models shaped like real code LMs.

The models are built offline from configs shaped like Salesforce/codegen-350M-mono and
deepseek-ai/deepseek-coder-1.3b-base (fewer layers, narrower), saved with save_pretrained
next to a small BPE tokenizer trained here, then loaded through codebench.models exactly
as a hub download would be.
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
import time

import pytest
import torch

from codebench import models
from codebench.runs import RunLayout, write_variant_info

CODE = (
    textwrap.dedent(
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
    * 8
)

DEEPSEEK_SPECIALS = [
    "<｜begin▁of▁sentence｜>",
    "<｜end▁of▁sentence｜>",
    "<｜fim▁hole｜>",
    "<｜fim▁begin｜>",
    "<｜fim▁end｜>",
]


def _bpe(vocab_size: int, specials: list[str]):
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers import models as tmodels

    tok = Tokenizer(tmodels.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([CODE, "print('héllo ✓')\nfor i in range(10):\n    x += i\n"], trainer)
    return tok


@pytest.fixture(scope="module")
def codegen_dir(tmp_path_factory):
    """CodeGen-350M-mono shape (n_embd narrowed, 2 layers): GPT-2 BPE tokenizer smaller than the 51200-row embedding, no pad."""
    from transformers import CodeGenConfig, CodeGenForCausalLM, CodeGenTokenizer

    bpe = json.loads(_bpe(400, ["<|endoftext|>"]).to_str())["model"]
    tok = CodeGenTokenizer(vocab=bpe["vocab"], merges=[tuple(m) for m in bpe["merges"]])
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    cfg = CodeGenConfig(
        vocab_size=51200,
        n_positions=2048,
        n_ctx=2048,
        n_embd=256,
        n_layer=2,
        n_head=4,
        rotary_dim=32,
        bos_token_id=eos,
        eos_token_id=eos,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("codegen")
    CodeGenForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def deepseek_dir(tmp_path_factory):
    """deepseek-coder-1.3b shape (width and depth shrunk): Llama, rope_theta 1e5, linear rope scaling x4, BOS added, no pad."""
    from tokenizers import processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = _bpe(400, DEEPSEEK_SPECIALS)
    bos = DEEPSEEK_SPECIALS[0]
    bpe.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bpe.token_to_id(bos))]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=bos,
        eos_token=DEEPSEEK_SPECIALS[1],
        extra_special_tokens=DEEPSEEK_SPECIALS[2:],
    )
    cfg = LlamaConfig(
        vocab_size=32256,
        hidden_size=128,
        intermediate_size=344,
        num_hidden_layers=2,
        num_attention_heads=16,
        max_position_embeddings=16384,
        rope_theta=100000.0,
        rope_scaling={"type": "linear", "factor": 4.0},
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("deepseek")
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


# --------------------------------------------------------------------------- CodeGen
@pytest.fixture(scope="module")
def codegen(codegen_dir):
    return models.load(codegen_dir)


def test_codegen_pad_and_vocab_mismatch(codegen):
    model, tok = codegen
    assert tok.pad_token == tok.eos_token == "<|endoftext|>"
    assert tok.padding_side == "left"
    rows = model.get_input_embeddings().weight.shape[0]
    assert rows == 51200 > len(tok), "the embedding is never resized down"
    assert tok.pad_token_id < rows
    assert model.generation_config.pad_token_id == tok.pad_token_id
    assert models.extra_vocab_mask(model, tok) is not None


def test_codegen_generates_only_decodable_ids(codegen):
    from codebench.generate import GenerationConfig, HFBackend

    model, tok = codegen
    backend = HFBackend(model, tok, batch_size=4)
    prompts = ["def add(a, b):\n", "class Stack:\n    def push(self, x):\n"]
    enc = [backend._encode(p) for p in prompts]
    for cfg in (
        GenerationConfig(max_new_tokens=8),
        GenerationConfig(max_new_tokens=8, temperature=1.0, n=2),
    ):
        ids, mask = backend._pad_left(enc)
        stopping, processors = backend._criteria(cfg, enc, ids.shape[1])
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            generation_config=backend._gen_config(cfg, cfg.n),
            logits_processor=processors,
        )
        assert int(out[:, ids.shape[1] :].max()) < len(tok)
    comps = backend.generate(prompts, GenerationConfig(max_new_tokens=8))
    assert all(c[0].text and c[0].n_tokens > 0 for c in comps)


def test_codegen_perplexity_finite(codegen):
    model, tok = codegen
    r = models.perplexity(model, tok, [CODE[:600]], context=64, stride=32)
    assert math.isfinite(r["ppl"]) and r["ppl"] > 1
    assert r["tokens"] == len(tok(CODE[:600])["input_ids"]) - 1


# --------------------------------------------------------------------------- DeepSeek-Coder
def test_deepseek_shape_loads_with_quirks(deepseek_dir):
    model, tok = models.load(deepseek_dir)
    rope = model.config.rope_parameters
    assert (
        rope["rope_type"] == "linear" and rope["factor"] == 4.0 and rope["rope_theta"] == 100000.0
    )
    assert tok.pad_token == tok.eos_token  # no pad: eos pads, masked out by attention
    assert tok("x = 1")["input_ids"][0] == tok.bos_token_id
    assert models.fim_tokens(tok) == ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>")
    assert not models.has_chat_template(tok)
    prompt = models.apply_chat(
        tok,
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Add two numbers."},
        ],
    )
    # the fallback template writes the BOS this tokenizer adds, so the ids are what training saw
    body = "Be brief.\n\n### Instruction:\nAdd two numbers.\n\n### Response:\n"
    assert prompt == tok.bos_token + body
    assert models.encode_prompt(tok, prompt).count(tok.bos_token_id) == 1


def test_deepseek_generation_and_perplexity(deepseek_dir):
    from codebench.generate import GenerationConfig, make_backend

    backend = make_backend("hf", str(deepseek_dir), device="cpu")
    outs = backend.generate(
        ["def add(a, b):\n", "x"], GenerationConfig(max_new_tokens=6, n=2, temperature=0.9, seed=1)
    )
    assert [len(o) for o in outs] == [2, 2]
    assert all(c.finish_reason in ("stop", "length") and c.n_tokens <= 6 for o in outs for c in o)
    r = models.perplexity(
        backend.model,
        backend.tokenizer,
        [CODE[:400], CODE[:100]],
        context=48,
        stride=16,
        batch_size=3,
    )
    assert math.isfinite(r["nll"])
    assert r["tokens"] == sum(
        len(backend.tokenizer(t)["input_ids"]) - 1 for t in (CODE[:400], CODE[:100])
    )


# --------------------------------------------------------------------------- perplexity accounting
@pytest.fixture(scope="module")
def small_llama():
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=_bpe(300, ["<|endoftext|>"]), eos_token="<|endoftext|>"
    )
    models.fix_tokenizer(tok)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(cfg).eval(), tok


def test_perplexity_single_window_matches_model_loss(small_llama):
    model, tok = small_llama
    text = CODE[:300]
    ids = torch.tensor([tok(text)["input_ids"]])
    assert ids.shape[1] <= 256
    expected = model(input_ids=ids, labels=ids).loss.item()
    r = models.perplexity(model, tok, [text], context=256)
    assert r["tokens"] == ids.shape[1] - 1
    assert r["nll"] == pytest.approx(expected, rel=1e-5)
    assert r["ppl"] == pytest.approx(math.exp(expected), rel=1e-5)


@pytest.mark.parametrize(("context", "stride"), [(16, 16), (16, 5), (32, 8), (7, 3)])
def test_perplexity_strided_counts_each_token_once(small_llama, context, stride):
    model, tok = small_llama
    texts = [CODE[:500], "a", "", CODE[100:180]]
    r = models.perplexity(model, tok, texts, context=context, stride=stride, batch_size=4)
    assert r["tokens"] == sum(max(0, len(tok(t)["input_ids"]) - 1) for t in texts)
    windows = models._windows(list(range(50)), context, stride)
    scored = [i for w, n in windows for i in w[len(w) - n :]]
    assert scored == list(range(1, 50))
    assert all(len(w) <= context for w, _ in windows)


def test_perplexity_stride_gives_more_context(small_llama):
    model, tok = small_llama
    text = CODE[:800]
    a = models.perplexity(model, tok, [text], context=32, stride=32)
    b = models.perplexity(model, tok, [text], context=32, stride=8)
    assert a["tokens"] == b["tokens"] and a["nll"] != b["nll"]
    with pytest.raises(ValueError, match="stride"):
        models.perplexity(model, tok, [text], context=32, stride=64)


# --------------------------------------------------------------------------- FIM tokens and chat
@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (
            ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"],
            ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
        ),
        (
            ["<fim_prefix>", "<fim_middle>", "<fim_suffix>"],
            ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
        ),
        (
            ["<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>"],
            ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
        ),
        (["▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"], ("<PRE>", "<SUF>", "<MID>")),
        (["<|fim_prefix|>", "<|fim_suffix|>"], None),
        ([], None),
    ],
)
def test_fim_tokens_detected(tokens, expected):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=_bpe(280, ["<|endoftext|>", *tokens]), eos_token="<|endoftext|>"
    )
    found = models.fim_tokens(tok)
    assert (tuple(found) if found else None) == expected
    if found:
        assert found.prompt("a", "b") == f"{expected[0]}a{expected[1]}b{expected[2]}"


def test_chat_template_used_when_present(small_llama):
    _, tok = small_llama
    msgs = [{"role": "user", "content": "hi"}]
    assert models.apply_chat(tok, msgs).endswith("### Response:\n")
    tok2 = type(tok)(tokenizer_object=tok.backend_tokenizer, eos_token="<|endoftext|>")
    tok2.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
    assert models.has_chat_template(tok2)
    assert models.apply_chat(tok2, msgs) == "<user>hi<assistant>"
    assert models.apply_chat(tok2, msgs, add_generation_prompt=False) == "<user>hi"
    with pytest.raises(ValueError, match="role"):
        models.apply_chat(tok, [{"role": "robot", "content": "x"}])


def test_pad_added_when_no_eos_and_embedding_grows(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=_bpe(280, []))
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
    )
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model, tok2 = models.load(tmp_path)
    assert tok2.pad_token == "<|pad|>" and tok2.pad_token_id == cfg.vocab_size
    assert model.get_input_embeddings().weight.shape[0] == len(tok2) == cfg.vocab_size + 1


# --------------------------------------------------------------------------- resolving and errors
def test_missing_hub_model_fails_fast_with_clear_error(tmp_path):
    t = time.perf_counter()
    with pytest.raises(models.ModelNotFoundError) as e:
        models.load_model("no-such-org/no-such-model", run=tmp_path)
    msg = str(e.value)
    assert "model 'no-such-org/no-such-model' not found" in msg
    assert (
        "not a local path" in msg
        and f"not a variant of run {tmp_path}" in msg
        and "hub is unreachable" in msg
    )
    assert time.perf_counter() - t < 10
    with pytest.raises(models.ModelNotFoundError, match="'no-such-org/no-such-model' not found"):
        models.load_tokenizer("no-such-org/no-such-model")


def test_missing_local_path_and_tiny_errors(tmp_path):
    with pytest.raises(models.ModelNotFoundError, match=r"model '\./nope/model' not found"):
        models.resolve("./nope/model")
    with pytest.raises(models.ModelNotFoundError, match="needs a run"):
        models.resolve("tiny")
    with pytest.raises(models.ModelNotFoundError, match="00_base_model"):
        models.resolve("tiny", RunLayout(tmp_path, tmp_path / "fig"))
    (tmp_path / "file.bin").write_text("x")
    with pytest.raises(models.ModelNotFoundError, match="is a file"):
        models.resolve(tmp_path / "file.bin")


def test_variants_resolve_and_load_through_info(tmp_path, codegen_dir, small_llama, monkeypatch):
    run = RunLayout(tmp_path / "run", tmp_path / "fig")
    # a registered (non-tiny) base: only a pointer to its source
    write_variant_info(
        run.model_dir("base"), kind="base", parent=None, loader="hf", source=str(codegen_dir)
    )
    assert models.resolve("base", run) == str(codegen_dir)
    assert models.resolve("tiny", run) == str(codegen_dir)
    assert models.load_tokenizer("base", run=run).pad_token == "<|endoftext|>"
    # a module loader: <module>.load_variant(path, device)
    model, tok = small_llama
    variant = run.model_dir("custom")
    model.save_pretrained(variant)
    write_variant_info(variant, kind="compressed", parent="base", loader="cb_test_loader")
    (tmp_path / "cb_test_loader.py").write_text(
        "from transformers import AutoModelForCausalLM\n"
        "CALLS = []\n"
        "def load_variant(path, device):\n"
        "    CALLS.append((str(path), device))\n"
        "    return AutoModelForCausalLM.from_pretrained(path)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = models.load_model("custom", run=run)
    assert [(str(variant), "cpu")] == sys.modules["cb_test_loader"].CALLS
    assert not loaded.training
    # no tokenizer files in the variant: the parent's tokenizer is used
    parent_tok = models.load_tokenizer(codegen_dir)
    assert models.load_tokenizer("custom", run=run).get_vocab() == parent_tok.get_vocab()
    write_variant_info(
        run.model_dir("broken"), kind="x", parent=None, loader="no_such_loader_module"
    )
    (run.model_dir("broken") / "config.json").write_text("{}")
    with pytest.raises(models.ModelNotFoundError, match="no_such_loader_module"):
        models.load_model("broken", run=run)


def test_peft_adapter_variant(tiny_run):
    from peft import LoraConfig, PeftModel, get_peft_model

    from codebench.quiet import quiet_peft

    base, tok = models.load("base", run=tiny_run)
    with quiet_peft():
        lora = get_peft_model(
            base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        )
    folder = tiny_run.model_dir("lora-test")
    lora.save_pretrained(folder)
    write_variant_info(folder, kind="lora", parent="base", loader="peft")
    model, tok2 = models.load("lora-test", run=tiny_run)
    assert isinstance(model, PeftModel)
    assert tok2.get_vocab() == tok.get_vocab()
    x = tok2("def f(x):\n", return_tensors="pt")
    assert model(**x).logits.shape[-1] == len(tok2)


def test_stage_00_registers_a_path_as_models_base(tmp_path, deepseek_dir):
    from codebench.params import ModelSection, StageContext
    from codebench.stages import model as model_stage

    run = RunLayout(tmp_path / "run", tmp_path / "fig")
    section = ModelSection(
        base=str(deepseek_dir), eval_chars=1_000, tiny={"max_files": 20, "max_chars": 100_000}
    )
    ctx = StageContext("t", 0, "cpu", None, run.root, run.figures)
    result = model_stage.run(ctx, section)
    rec = result.record
    assert result.figures == {"base_loss": None}  # loaded, not trained: no curves
    assert result.lines[0] == f"base model        {deepseek_dir}  ->  {run.model_dir('base')}"
    assert result.lines[-1].startswith("held-out perplexity ") and len(result.lines) == 3
    assert result.samples["sample"].startswith(model_stage.SAMPLE_PROMPT)
    fim = result.samples["fim"]  # deepseek's FIM tokens
    assert fim.startswith(model_stage.FIM_BEFORE + "[") and fim.endswith(
        "]" + model_stage.FIM_AFTER
    )
    info = json.loads((run.model_dir("base") / "codebench_variant.json").read_text())
    assert info["kind"] == "base" and info["loader"] == "hf" and info["source"] == str(deepseek_dir)
    assert models.resolve("base", run) == str(deepseek_dir)
    saved = json.loads(run.result_file("base_model").read_text())
    assert saved["parameters"] == rec.parameters > 0 and saved["embedding_rows"] == 32256
    assert (
        math.isfinite(saved["heldout_perplexity"]["ppl"])
        and saved["heldout_perplexity"]["tokens"] > 100
    )
    model, tok = models.load("base", run=run)
    assert model.config.vocab_size == 32256 and tok.bos_token == DEEPSEEK_SPECIALS[0]


def test_checkpoint_dtype_on_cpu_keeps_bf16_only_with_native_bf16(tmp_path, monkeypatch):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "fp32")
    assert models.checkpoint_dtype(str(tmp_path / "bf16")) == "bfloat16"
    assert isinstance(models.cpu_native_bf16(), bool)
    for native, want in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(models, "cpu_native_bf16", lambda native=native: native)
        assert models.load_model(tmp_path / "bf16", "cpu", "checkpoint").dtype == want
        assert models.load_model(tmp_path / "fp32", "cpu", "checkpoint").dtype == torch.float32
        assert models.load_model(tmp_path / "bf16", "cpu").dtype == torch.float32  # auto
    assert models.resolve_dtype("auto", "cpu", "bfloat16") == torch.float32
    with pytest.raises(ValueError, match="checkpoint"):
        models.resolve_dtype("half", "cpu")


def test_one_dtype_and_device_rule_for_every_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training, compressed-variant loading and model loading resolve dtype and device alike:
    'auto' on a GPU without bf16 is float16 everywhere (compress once chose bf16 blindly)."""
    from codebench import params
    from codebench.compress import io as cio
    from codebench.compress.variants import VariantUnavailable
    from codebench.train.trainer import training_dtype

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    for got in (
        models.resolve_dtype("auto", "cuda"),
        cio._dtype(None, "cuda"),
        cio._dtype("auto", "cuda:0"),
        training_dtype("auto", "cuda"),
    ):
        assert got == torch.float16
    assert training_dtype("auto", "cpu") == cio._dtype(None, "cpu") == torch.float32
    assert training_dtype("bf16", "cpu") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.resolve_device("auto") == params.resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="no CUDA GPU"):
        models.resolve_device("cuda")
    with pytest.raises(VariantUnavailable, match="no CUDA GPU"):
        cio._device("cuda:1")
    with pytest.raises(params.ProfileError, match="no CUDA GPU"):
        params.resolve_device("cuda")


def test_stage_00_summary_lines_of_a_trained_base():
    from codebench.results import BaseModelResults
    from codebench.stages.model import summary_lines

    record = {
        "base": "tiny",
        "model_dir": "/r/models/base",
        "parameters": 1_115_264,
        "tokens_seen": 1_638_400,
        "train_seconds": 100.4,
        "wall_seconds": 160.6,
        "history": {"train_loss": [7.61, 3.0], "heldout_loss": [7.52, 3.4]},
        "final_train_loss": 2.5,
        "final_heldout_loss": 3.1,
        "heldout_perplexity": {"ppl": 22.19, "tokens": 16986},
    }
    assert summary_lines(BaseModelResults.model_validate(record)) == [
        "base model        tiny  ->  /r/models/base",
        "parameters        1,115,264",
        "tokens seen       1,638,400  (100 s training, 161 s in all)",
        "loss              train 7.61 -> 2.50, held-out 7.52 -> 3.10",
        "held-out perplexity 22.19 over 16,986 tokens",
    ]
