"""codebench.tiny and codebench.corpus: the embedded offline model and its corpus."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from codebench import corpus, models, tiny
from codebench.params import TinyModelConfig
from codebench.records import RecordError
from codebench.runs import read_variant_info

REPO = Path(__file__).resolve().parents[1]
TRICKY = "def f(x):\n\treturn x  # ünïcødé ✓ 日本語 🐍\r\n    s = '\\x00\\n'\u00a0\u200b\n\n\n"


# --------------------------------------------------------------------------- tokenizer
def test_tokenizer_specials_and_exact_round_trip(tiny_model_dir):
    tok = models.load_tokenizer(tiny_model_dir)
    assert [tok.convert_tokens_to_ids(t) for t in tiny.SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert (tok.eos_token, tok.bos_token, tok.pad_token) == (tiny.EOS, tiny.EOS, tiny.PAD)
    assert models.fim_tokens(tok) == (tiny.FIM_PREFIX, tiny.FIM_SUFFIX, tiny.FIM_MIDDLE)
    for text in (TRICKY, "", " leading space", "x" * 300, "\x00\x01\x7f", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢"):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    ids = tok(f"{tiny.FIM_PREFIX}a{tiny.FIM_SUFFIX}b{tiny.FIM_MIDDLE}")["input_ids"]
    assert ids[0] == 2 and 4 in ids and ids[-1] == 3  # special tokens stay single ids


def test_train_tokenizer_vocab_size():
    tok = tiny.train_tokenizer(["def f(x):\n    return x\n" * 50, TRICKY], 320, context=64)
    assert len(tok) <= 320 and tok.model_max_length == 64
    assert tok.decode(tok(TRICKY)["input_ids"]) == TRICKY


# --------------------------------------------------------------------------- examples
def test_fim_example_layout():
    rng = random.Random(0)
    text = "def add(a, b):\n    return a + b\n"
    for _ in range(50):
        ex = tiny.fim_example(text, rng)
        assert ex.startswith(tiny.FIM_PREFIX) and ex.endswith(tiny.EOS)
        body = ex[len(tiny.FIM_PREFIX) : -len(tiny.EOS)]
        pre, rest = body.split(tiny.FIM_SUFFIX)
        suf, mid = rest.split(tiny.FIM_MIDDLE)
        assert pre + mid + suf == text
    docs = [corpus.Document(str(i), f"# file {i}\n" + text * 3) for i in range(40)]
    plain = tiny.build_examples(docs, 40, 0.0, random.Random(0))
    assert sorted(plain) == sorted(d.text + tiny.EOS for d in docs)  # whole documents
    fim = tiny.build_examples(docs, 40, 1.0, random.Random(0))
    assert all(e.startswith(tiny.FIM_PREFIX) and e.endswith(tiny.EOS) for e in fim)
    assert len(fim) == sum(-(-len(d.text) // 40) for d in docs)  # one per 40-char piece
    mixed = tiny.build_examples(docs, 40, 0.5, random.Random(0))
    n_fim = sum(e.startswith(tiny.FIM_PREFIX) for e in mixed)
    assert 0.3 < n_fim / len(fim) < 0.7
    # pieces end at fixed offsets, so plain examples rarely end in a newline before EOS
    assert sum(e.endswith("\n" + tiny.EOS) for e in mixed) <= len(docs)


def test_pack():
    rows = tiny.pack([[1, 2, 3], [4, 5], [6, 7, 8, 9]], 4)
    assert rows.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    with pytest.raises(ValueError, match="corpus too small"):
        tiny.pack([[1]], 4)


def test_lr_schedule():
    cfg = TinyModelConfig(steps=100, warmup_steps=10, lr=1e-3)
    lrs = [tiny.lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[-1] == pytest.approx(1e-4, rel=0.05)


# --------------------------------------------------------------------------- corpus
def test_stdlib_corpus_split_is_stable_and_capped():
    a = corpus.load_corpus("stdlib", max_files=40, max_chars=200_000, heldout_fraction=0.2)
    b = corpus.load_corpus("stdlib", max_files=40, max_chars=200_000, heldout_fraction=0.2)
    assert [d.id for d in a.train] == [d.id for d in b.train] and a.heldout == b.heldout
    assert len(a.train) + len(a.heldout) <= 40
    assert sum(len(d.text) for d in a.train + a.heldout) <= 200_000
    assert not {d.id for d in a.train} & {d.id for d in a.heldout}
    ids = [d.id for d in a.train + a.heldout]
    assert not any(p.startswith(("test/", "site-packages/")) or "/tests/" in p for p in ids)
    assert all(corpus.is_heldout(d.id, 0.2) for d in a.heldout)


def test_folder_and_jsonl_sources(tmp_path):
    pkg = tmp_path / "src"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__pycache__").mkdir()
    for i in range(6):
        (pkg / f"m{i}.py").write_text(f"def f{i}():\n    return {i}\n")
    (pkg / "sub" / "deep.py").write_text("x = 1\n")
    (pkg / "__pycache__" / "junk.py").write_text("ignored = True\n")
    (pkg / "latin.py").write_bytes(b"s = '\xe9'\n")
    c = corpus.load_corpus(str(pkg), heldout_fraction=0.3)
    ids = sorted(d.id for d in c.train + c.heldout)
    assert "sub/deep.py" in ids and not any("__pycache__" in i for i in ids)
    assert c.heldout and c.skipped and "latin.py" in c.skipped[0]
    jl = tmp_path / "code.jsonl"
    jl.write_text(
        "\n".join(json.dumps({"task_id": f"t{i}", "content": f"print({i})\n"}) for i in range(10))
        + "\n"
    )
    c = corpus.load_corpus(str(jl), heldout_fraction=0.2)
    assert {d.id for d in c.train + c.heldout} == {f"t{i}" for i in range(10)}


def test_corpus_errors_name_the_path(tmp_path):
    with pytest.raises(corpus.CorpusError, match=str(tmp_path / "missing")):
        corpus.load_corpus(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(corpus.CorpusError, match="no .py files"):
        corpus.load_corpus(str(tmp_path / "empty"))
    jl = tmp_path / "bad.jsonl"
    jl.write_text('{"content": "x = 1"}\n{"nope": 1}\n')
    with pytest.raises(corpus.CorpusError, match=r"bad.jsonl: record 2: no text field"):
        corpus.load_corpus(str(jl))
    jl.write_text('{"content": "x = 1"}\n{broken\n')
    with pytest.raises(RecordError, match=r"bad.jsonl:2"):
        corpus.load_corpus(str(jl))


# --------------------------------------------------------------------------- training and saving
def test_build_records_and_loss_drops(tiny_run):
    rec = json.loads(tiny_run.result_file("base_model").read_text())
    h = rec["history"]
    assert len(h["train_loss"]) == rec["config"]["steps"] == 60
    assert h["train_loss"][-1] < h["train_loss"][0] - 1.0
    assert h["heldout_loss"][-1] < h["heldout_loss"][0] - 1.0
    assert rec["parameters"] > 0 and rec["tokens_seen"] == 60 * 8 * 64
    assert 1 < rec["heldout_perplexity"]["ppl"] < 512 and rec["heldout_perplexity"]["tokens"] > 100
    assert rec["provenance"]["packages"]["transformers"]
    assert read_variant_info(tiny_run.model_dir("base")) == {
        "kind": "base",
        "parent": None,
        "loader": "hf",
        "builder": "codebench.tiny",
    }


def test_saved_model_reloads_and_generates(tiny_run, tiny_model_dir):
    model, tok = models.load("tiny", run=tiny_run)
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    assert model.config.tie_word_embeddings and len(tok) == model.config.vocab_size
    model2, _ = models.load(tiny_model_dir)  # a plain path loads the same way
    x = tok(["def f(x):\n", "import"], return_tensors="pt", padding=True)
    out = model.generate(**x, max_new_tokens=5, do_sample=False)
    assert out.shape == (2, x.input_ids.shape[1] + 5)
    assert torch.equal(model(**x).logits, model2(**x).logits)


def test_save_is_atomic(tmp_path, tiny_run):
    model, tok = models.load("tiny", run=tiny_run)
    dest = tmp_path / "models" / "base"
    tiny.save_atomic(model, tok, dest, {"kind": "base", "parent": None, "loader": "hf"})
    before = sorted(p.name for p in dest.iterdir())

    class Boom(RuntimeError):
        pass

    def explode(*a, **k):
        raise Boom

    tok.save_pretrained, saved = explode, tok.save_pretrained
    try:
        with pytest.raises(Boom):
            tiny.save_atomic(model, tok, dest, {"kind": "base", "parent": None, "loader": "hf"})
    finally:
        tok.save_pretrained = saved
    assert sorted(p.name for p in dest.iterdir()) == before
    assert [p.name for p in dest.parent.iterdir()] == ["base"]  # no temp folders left behind
    models.load(dest)


# --------------------------------------------------------------------------- notebook
def test_notebook_00_runs_headless(tmp_path, tiny_test_config):
    import papermill as pm

    run_dir, fig_dir = tmp_path / "run", tmp_path / "figures"
    out = tmp_path / "00_out.ipynb"
    pm.execute_notebook(
        str(REPO / "notebooks" / "00_base_model.ipynb"),
        str(out),
        kernel_name="codebench",
        cwd=str(REPO / "notebooks"),
        parameters={
            "profile": "nbtest",
            "device": "cpu",
            "run_dir": str(run_dir),
            "figures_dir": str(fig_dir),
            "eval_chars": 5_000,
            "tiny": tiny_test_config,
        },
        progress_bar=False,
    )
    rec = json.loads((run_dir / "results" / "base_model.json").read_text())
    assert rec["config"] == TinyModelConfig(**tiny_test_config).model_dump()
    assert (fig_dir / "base_loss.png").stat().st_size > 5_000
    assert read_variant_info(run_dir / "models" / "base")["kind"] == "base"
    text = "".join(
        "".join(o.get("text", ""))
        for c in json.loads(out.read_text())["cells"]
        for o in c.get("outputs", [])
    )
    assert "held-out perplexity" in text and "sample" in text


# --------------------------------------------------------------------------- pyfamilies mix and resume
def _check_decontamination(rec: dict) -> None:
    d = rec["decontamination"]
    assert rec["family_examples"] == d["kept"] == d["family_instances"] - d["removed"] > 0
    assert d["shared_name_family_pairs"] == 0 and d["identical_prompts"] == 0
    assert d["max_overlap_kept"] < d["threshold"] and d["corpus_documents_flagged"] == []


def test_prompt_and_solution_tokenized_apart(tiny_run):
    tok = models.load_tokenizer(tiny_run.model_dir("base"))
    ids = tiny.encode_split(tok, ["def f(x):\n"], ["    return x\n"])[0]
    head = tok("def f(x):\n", add_special_tokens=False)["input_ids"]
    assert ids[: len(head)] == head and ids[-1] == tok.eos_token_id
    assert tok.decode(ids) == "def f(x):\n    return x\n" + tiny.EOS


def _build(root, cfg, **kw):
    from codebench.runs import RunLayout

    run = RunLayout(root / "run", root / "fig")
    run.root.mkdir(parents=True, exist_ok=True)
    return run, tiny.build(cfg, run, seed=0, eval_chars=2_000, log=None, **kw)


def test_killed_training_resumes_to_the_same_model(tmp_path, tiny_test_config, monkeypatch):
    cfg = TinyModelConfig(
        **{**tiny_test_config, "steps": 50, "eval_every": 20, "family_examples": 300}
    )
    ref_run, ref = _build(tmp_path / "ref", cfg)
    _check_decontamination(ref)  # family functions mixed in, decontaminated
    assert not list((ref_run.root / "checkpoints").glob("*"))  # removed once the model is saved

    real_lr = tiny.lr_at

    def crash_at_45(step, c):
        if step == 45:
            raise KeyboardInterrupt  # a kill between two checkpoints
        return real_lr(step, c)

    monkeypatch.setattr(tiny, "lr_at", crash_at_45)
    run_dir = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        _build(run_dir, cfg)
    ckpts = list((run_dir / "run" / "checkpoints").glob("base-*.pt"))
    assert len(ckpts) == 1 and torch.load(ckpts[0], weights_only=False)["step"] == 40
    (ckpts[0].parent / f".{ckpts[0].name}.tmp-x").write_bytes(b"torn")  # a save killed mid-write
    monkeypatch.setattr(tiny, "lr_at", real_lr)
    run, rec = _build(run_dir, cfg)
    assert rec["history"] == ref["history"] and len(rec["history"]["step"]) == 50
    a, _ = models.load(ref_run.model_dir("base"))
    b, _ = models.load(run.model_dir("base"))
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    assert not list((run.root / "checkpoints").iterdir())  # checkpoint and stale temp file gone


def test_unreadable_checkpoint_is_ignored(tmp_path):
    path = tmp_path / "base-x.pt"
    path.write_bytes(b"not a checkpoint")
    seen: list[str] = []
    assert tiny.load_checkpoint(path, seen.append) is None
    assert "unreadable" in seen[0] and str(path) in seen[0]
    tiny.save_checkpoint(path, {"step": 3})
    assert tiny.load_checkpoint(path) == {"step": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["base-x.pt"]


def test_busy_cores_sees_a_spinning_process_at_once() -> None:
    """auto_threads reads the CPUs busy now (/proc/stat), not the lagging load average."""
    import os
    import subprocess
    import sys
    import time

    cores = os.cpu_count() or 1
    assert 0.0 <= tiny.busy_cores(0.2) <= cores + 0.01
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert tiny.busy_cores(0.5) >= 0.6
        assert 1 <= tiny.auto_threads() <= cores
    finally:
        spin.kill()
        spin.wait()


def test_stage_00_trains_with_a_fixed_thread_count_by_default(
    tmp_path, tiny_test_config, monkeypatch
):
    """The thread count decides the weights (the order fp32 sums run in), so stage 00 does not
    size it to the idle cores unless asked (`threads: 0`): the default and both smoke profiles
    train with one thread whatever the load."""
    from codebench.params import load_profile

    root = Path(__file__).resolve().parent.parent / "params"
    assert TinyModelConfig().threads == 1
    for name in ("smoke.yaml", "grpo-smoke.yaml"):
        assert load_profile(root / name).model.tiny.threads == 1, name

    def busy() -> int:
        raise AssertionError("auto_threads called for a fixed thread count")

    monkeypatch.setattr(tiny, "auto_threads", busy)
    fields = {k: v for k, v in tiny_test_config.items() if k != "threads"}
    fields |= {"steps": 4, "eval_every": 2}
    _, rec = _build(tmp_path / "fixed", TinyModelConfig(**fields))
    assert rec["threads"] == 1
    monkeypatch.setattr(tiny, "auto_threads", lambda: 2)  # threads: 0 -> the idle cores
    _, rec = _build(tmp_path / "auto", TinyModelConfig(**fields, threads=0))
    assert rec["threads"] == 2
