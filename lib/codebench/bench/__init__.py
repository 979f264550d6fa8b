"""codebench.bench: benchmarks, prompt protocols, completion extraction, pass@k, canaries.

Quick start::

    from codebench import bench
    from codebench.generate import make_backend

    backend = make_backend("hf", model=...)
    res = bench.evaluate(backend, "humaneval", "runs/x/eval/base/humaneval", model="base",
                         config=bench.EvalConfig(n=1, temperature=0.0, limit=10))
    res["metrics"]["pass@1"]            # {'value', 'ci_low', 'ci_high', 'k', 'problems'}
    bench.rescore("runs/x/eval/base/humaneval")   # scores again from samples.jsonl only

Benchmarks (`bench.names()`; spec strings `name[:protocol]`):
humaneval[:base|instruct], multiple-{js,cpp,java,sh}[:base|instruct], mbpp[:base|instruct],
mtpb[:multi|single], fim[:single-line|multi-line], pal-{gsm8k,gsm-hard,svamp,mawps}[:base|instruct],
leetcode[:instruct|base] (DeepSeek-Coder's LeetCode contest set),
codeio[:path] (held-out I/O prediction), custom:path.jsonl[:base|instruct].
See docs/benchmarks.md for each protocol, its extraction and its tests.

Stage 04's loop over variants and its tables (`evaluate_variants`, `results_table`) live in
`codebench.bench.suite`, imported on its own: it needs pandas, which scoring does not
(`codebench score` starts without it).
"""

from codebench.bench.canary import CanaryError, run_canaries
from codebench.bench.extract import extract_fenced, fenced_blocks, truncate_at_stops
from codebench.bench.registry import get_task, names, parse_spec
from codebench.bench.runner import EvalConfig, evaluate, rescore, score
from codebench.bench.tasks import BenchError, Problem, Task, default_timeout
from codebench.passk import bootstrap_ci, pass_at_k, summarize

__all__ = [
    "BenchError",
    "CanaryError",
    "EvalConfig",
    "Problem",
    "Task",
    "bootstrap_ci",
    "default_timeout",
    "evaluate",
    "extract_fenced",
    "fenced_blocks",
    "get_task",
    "names",
    "parse_spec",
    "pass_at_k",
    "rescore",
    "run_canaries",
    "score",
    "summarize",
    "truncate_at_stops",
]
