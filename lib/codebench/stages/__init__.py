"""One module per pipeline notebook: `run(ctx, cfg)` is all a stage notebook calls.

| notebook            | module                     | returns          |
|---------------------|----------------------------|------------------|
| 00_base_model       | `codebench.stages.model`    | `ModelResult`    |
| 01_build_data       | `codebench.stages.data`     | `DataResult`     |
| 02_finetune         | `codebench.stages.finetune` | `FinetuneResult` |
| 03_compress         | `codebench.stages.compress` | `CompressResult` |
| 04_evaluate         | `codebench.stages.evaluate` | `EvaluateResult` |
| 05_report           | `codebench.stages.report`   | `ReportResult`   |

`ctx` is the notebook's `params.StageContext` (run layout, seed, device, data dir, figures
folder) and `cfg` its validated params section, both from `params.stage_config`. A stage
module holds the orchestration (which steps, in what order, what is written where); the
domain packages (`sandbox`, `bench`, `codeio`, `compress`, `train`) hold the algorithms.

This package imports nothing at import time: a notebook's stage key (`pipeline`) follows the
modules its stage module imports, so a module only one stage uses reruns only that stage and
the ones downstream of it.
"""
