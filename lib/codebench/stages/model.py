"""Stage 00_base_model: the model every later stage starts from, in `models/base`.

`base: tiny` trains the embedded offline model (`codebench.tiny.build`); a hub id or a local
path is loaded, measured and registered (`register_base`). Either way the stage writes
`results/base_model.json`, draws the training curves when it trained, and samples the model
once (plain and, when the tokenizer has the tokens, fill-in-the-middle).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from codebench import results
from codebench.params import ModelSection, StageContext
from codebench.runs import RunLayout

SAMPLE_PROMPT = 'def read_config(path):\n    """Read a JSON config file."""\n'
FIM_BEFORE, FIM_AFTER = "def area(width, height):\n    ", "\n    return result\n"


@dataclass
class ModelResult:
    """What stage 00 produced: the results/base_model.json record, the training-curve figure
    (None when the base was loaded, not trained), summary lines and the generated samples
    (prompt + completion; 'fim' only when the tokenizer has FIM tokens)."""

    record: results.BaseModelResults
    figures: dict[str, Path | None]
    lines: list[str]
    samples: dict[str, str] = field(default_factory=dict)


def run(ctx: StageContext, cfg: ModelSection) -> ModelResult:
    """What 00_base_model.ipynb runs."""
    import transformers

    from codebench import tiny
    from codebench.plots import base as base_plots

    transformers.logging.disable_progress_bar()
    if cfg.base == "tiny":
        written = tiny.build(
            cfg.tiny, ctx.run, seed=ctx.seed, device=ctx.device, eval_chars=cfg.eval_chars
        )
    else:
        written = register_base(cfg, ctx.run, seed=ctx.seed, device=ctx.device)
    record = results.BaseModelResults.model_validate(written)
    figures = {
        "base_loss": base_plots.training_curves(record, ctx.figures_dir)
        if record.history is not None
        else None
    }
    return ModelResult(record, figures, summary_lines(record), samples(ctx))


def summary_lines(record: results.BaseModelResults) -> list[str]:
    """The base model in a few lines: folder, parameters, training, held-out perplexity."""
    ppl = record.heldout_perplexity
    lines = [
        f"base model        {record.base}  ->  {record.model_dir}",
        f"parameters        {record.parameters:,}",
    ]
    h = record.history
    if record.tokens_seen is not None and h is not None:
        lines += [
            f"tokens seen       {record.tokens_seen:,}  ({record.train_seconds:.0f} s training, {record.wall_seconds:.0f} s in all)",
            f"loss              train {h['train_loss'][0]:.2f} -> {record.final_train_loss:.2f}, held-out {h['heldout_loss'][0]:.2f} -> {record.final_heldout_loss:.2f}",
        ]
    lines.append(f"held-out perplexity {ppl.ppl:.2f} over {ppl.tokens:,} tokens")
    return lines


def samples(ctx: StageContext) -> dict[str, str]:
    """One sampled completion (temperature 0.7) and, when the tokenizer has FIM tokens, one
    greedy fill-in-the-middle; each with its prompt, the middle in brackets."""
    from codebench import models
    from codebench.generate import GenerationConfig, make_backend

    backend = make_backend("hf", "base", run=ctx.run, device=ctx.device)
    sampled = GenerationConfig(
        max_new_tokens=64,
        temperature=0.7,
        top_p=0.95,
        seed=ctx.seed,
        stop=["\ndef ", "\nclass ", "\n\n\n"],
    )
    out = {"sample": SAMPLE_PROMPT + backend.generate([SAMPLE_PROMPT], sampled)[0][0].text}
    fim = models.fim_tokens(backend.tokenizer)
    if fim:
        greedy = GenerationConfig(max_new_tokens=24, stop=["\n\n"])
        middle = backend.generate([fim.prompt(FIM_BEFORE, FIM_AFTER)], greedy)[0][0].text
        out["fim"] = FIM_BEFORE + "[" + middle + "]" + FIM_AFTER
    return out


def register_base(
    section,
    run: RunLayout,
    *,
    seed: int = 0,
    device: str = "cpu",
    eval_chars: int | None = None,
    log=print,
) -> dict:
    """Stage 00 for a hub id or local path: load it, measure it, point models/base at it.

    Writes run.model_dir('base')/codebench_variant.json (kind 'base', loader 'hf', source =
    the spec) so `resolve('base', run)` and `load_model('base', run=run)` reach it like any variant,
    and run.result_file('base_model') with the parameter count and held-out perplexity on
    the standard library's held-out split.
    """
    from codebench import models
    from codebench.corpus import heldout_texts, load_corpus
    from codebench.records import write_dir_atomic
    from codebench.runs import provenance, write_variant_info

    t0 = time.perf_counter()
    spec = section.base
    source = str(Path(spec).expanduser().resolve()) if Path(spec).expanduser().exists() else spec
    model, tok = models.load(
        source, device, section.dtype, section.trust_remote_code, revision=section.revision
    )
    corpus = load_corpus(
        "stdlib",
        max_files=section.tiny.max_files,
        max_chars=section.tiny.max_chars,
        heldout_fraction=section.tiny.heldout_fraction,
    )
    ppl = models.perplexity(
        model, tok, heldout_texts(corpus, eval_chars or section.eval_chars), batch_size=2
    )
    dest = write_dir_atomic(
        run.model_dir("base"),
        lambda tmp: write_variant_info(
            tmp, kind="base", parent=None, loader="hf", source=source, revision=section.revision
        ),
    )
    record = {
        "base": spec,
        "source": source,
        "model_dir": str(dest),
        "parameters": models.parameter_count(model),
        "vocab_size": len(tok),
        "embedding_rows": model.get_input_embeddings().weight.shape[0],
        "heldout_perplexity": ppl,
        "corpus": corpus.stats(),
        "has_chat_template": models.has_chat_template(tok),
        "fim_tokens": list(models.fim_tokens(tok) or []) or None,
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "device": device,
        "config": json.loads(section.model_dump_json()),
        "provenance": provenance(seed),
    }
    record = results.write_stage(run, results.BaseModelResults, record)
    if log:
        log(
            f"base {spec}: {record['parameters']:,} parameters, held-out perplexity {ppl['ppl']:.2f} over {ppl['tokens']} tokens"
        )
    return record
