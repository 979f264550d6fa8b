"""codebench.codeio: CodeI/O data building (raw code -> checked I/O-prediction SFT data).

    from codebench.codeio import pipeline
    summary = pipeline.build(cfg, run.data, data_dir=..., backend=backend, model_id=model_id,
                             result_file=run.result_file("build_data"))

(stage 01_build_data, `codebench.stages.data.run`, picks the prediction backend and calls it).

Stages (one small module each): sources -> transform/annotate (unify) -> decontam ->
iogen/execute (sandboxed I/O generation) -> prompts -> predict -> verify -> revise ->
assemble. Every record carries content-hash ids (records). File formats, rules and the
measured demo-data numbers: docs/codeio.md.
"""

from codebench.codeio.records import (
    DIRECTIONS,
    DROP_REASONS,
    STATUSES,
    NotPlain,
    canonical,
    function_id,
    parse_sample_id,
    sample_id,
    to_plain,
)
from codebench.codeio.verify import extract_answer, values_match, verify_heldout

__all__ = [
    "DIRECTIONS",
    "DROP_REASONS",
    "STATUSES",
    "NotPlain",
    "canonical",
    "extract_answer",
    "function_id",
    "parse_sample_id",
    "sample_id",
    "to_plain",
    "values_match",
    "verify_heldout",
]
