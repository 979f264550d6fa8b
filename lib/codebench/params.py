"""Reproduction profiles: load a YAML profile, validate it, hand each stage its section.

A profile (`params/<name>.yaml`) has common keys (name, seed, device, data_dir, stages)
and one section per stage. Every value is typed, unknown keys are rejected, and every
error names the file and the key path. Notebooks call `stage_config` on their own
parameters so "Run All" in JupyterLab validates exactly like a papermill run.

Each stage's section class is owned by that stage's module author; keep fields plain
(str, int, float, bool, lists and dicts of those) because papermill injects them as literals.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

STAGES: tuple[str, ...] = ("model", "data", "finetune", "compress", "evaluate", "report")
COMMON_KEYS: tuple[str, ...] = ("profile", "seed", "device", "data_dir", "run_dir", "figures_dir")


class ProfileError(ValueError):
    """A profile or stage parameter set is invalid. The message names file and key path."""


class Section(BaseModel):
    """Base for every profile section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- 00 model
class TinyModelConfig(Section):
    """The embedded offline model: a byte-level BPE tokenizer and a small Llama trained here."""

    source: str = Field(
        "stdlib",
        description="'stdlib' (this interpreter's standard library), a folder of .py files, or a JSONL with a 'content'/'text' field",
    )
    max_files: int = Field(600, ge=1, description="at most this many source files are read")
    max_chars: int = Field(5_000_000, ge=10_000, description="corpus size cap in characters")
    vocab_size: int = Field(
        2048, ge=300, le=65536, description="BPE vocabulary size including special tokens"
    )
    hidden_size: int = Field(128, ge=16, description="model width")
    intermediate_size: int = Field(384, ge=16, description="MLP width")
    num_layers: int = Field(4, ge=1, description="transformer blocks")
    num_heads: int = Field(4, ge=1, description="attention heads")
    context: int = Field(256, ge=32, description="training sequence length (and max positions)")
    fim_rate: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="share of training chunks rewritten as fill-in-the-middle (PSM)",
    )
    steps: int = Field(400, ge=1, description="optimizer steps")
    batch_size: int = Field(16, ge=1, description="sequences per step")
    lr: float = Field(5e-3, gt=0, description="peak learning rate (cosine decay, linear warm-up)")
    warmup_steps: int = Field(40, ge=0, description="linear warm-up steps")
    eval_every: int = Field(50, ge=1, description="held-out loss every N steps")
    heldout_fraction: float = Field(
        0.05, gt=0, lt=0.5, description="share of files kept for held-out loss"
    )
    family_examples: int = Field(
        0,
        ge=0,
        description="training functions of the built-in pyfamilies smoke benchmark's families (training pairs only, decontaminated) mixed into the corpus, each tokenized as prompt + solution the way evaluation sees them; 0 = stdlib only (the smoke profile uses 80000)",
    )
    threads: int = Field(
        1,
        ge=0,
        description="torch CPU threads; the thread count fixes the order fp32 sums run in, so it decides the trained weights: 1 (default) gives the same model whatever the load and core count (measured on one CPU type: every 1-thread run the same weights file, every 2-thread run another, README); other CPU types may pick other kernels; 0 = the cores not already busy (faster on an idle machine, another model per load)",
    )


class ModelSection(Section):
    """Stage 00_base_model: which base model every later stage starts from."""

    base: str = Field(
        "tiny", description="'tiny', a hub id (e.g. Salesforce/codegen-350M-mono) or a local path"
    )
    revision: str | None = Field(None, description="hub revision (branch, tag or commit)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto = bf16 on GPU, fp32 on CPU"
    )
    trust_remote_code: bool = Field(False, description="allow model code from the hub")
    eval_chars: int = Field(
        50_000,
        ge=1_000,
        description="held-out perplexity is measured on at most this many characters of held-out code",
    )
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig)


# --------------------------------------------------------------------------- 01 data
class DataSection(Section):
    """Stage 01_build_data: the CodeI/O pipeline. Fields owned by codebench.codeio."""

    # sources and unification
    sources: list[str] = Field(
        default_factory=lambda: ["codeio-demo", "codeio-raw"],
        description="'codeio-demo' (unified CodeI/O demo functions with stored I/O), 'codeio-raw' (raw Python files), 'stdlib', a .jsonl of raw code or unified records, or a folder of .py files",
    )
    limit: int = Field(40, ge=1, description="records read from each source")
    transform: Literal["annotations", "model", "annotations+model"] = Field(
        "annotations",
        description="how raw code becomes main_solution: from type annotations (offline), with the prediction model's four-section answer, or annotations first and the model for the rest",
    )
    max_functions_per_file: int = Field(
        1, ge=1, description="annotated functions taken from one raw file"
    )
    # I/O generation (in codebench.sandbox)
    max_pairs: int = Field(
        4,
        ge=1,
        description="I/O pairs kept per function (distinct inputs, distinct outputs preferred)",
    )
    min_pairs: int = Field(2, ge=1, description="functions with fewer successful pairs are dropped")
    call_budget: int = Field(
        10, ge=1, description="distinct candidate inputs run per function (stored inputs first)"
    )
    max_input_chars: int = Field(1024, ge=16, description="canonical-JSON size limit of an input")
    max_output_chars: int = Field(1024, ge=16, description="canonical-JSON size limit of an output")
    call_timeout: float = Field(2.0, gt=0, description="seconds per function call")
    check_determinism: bool = Field(
        True,
        description="run every function twice (other seeds, reverse order, another interpreter) and drop it when outputs differ",
    )
    drop_mutating: bool = Field(
        True, description="drop functions that change their arguments in place"
    )
    workers: int = Field(0, ge=0, description="sandbox workers (0 = all cores)")
    memory_mb: int = Field(1024, ge=64, description="address-space limit of each sandboxed process")
    # prompts, split, decontamination
    directions: list[Literal["output", "input"]] = Field(
        default_factory=lambda: ["output", "input"],
        description="prediction tasks: predict the output from the input, and a feasible input from the output",
    )
    include_code: bool = Field(
        True, description="show the reference code in prompts as a tip (as CodeI/O does)"
    )
    max_code_chars: int = Field(
        4000, ge=100, description="reference code shown in a prompt is cut at this many characters"
    )
    heldout_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="share of functions (by id hash) held out for the I/O-prediction benchmark; never in SFT data",
    )
    decontam_sets: list[str] = Field(
        default_factory=lambda: ["humaneval", "mbpp", "mtpb"],
        description="evaluation sets checked for overlap",
    )
    decontam_n: int = Field(10, ge=3, description="word n-gram length of the overlap check")
    decontam_threshold: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        description="a function whose share of n-grams found in an evaluation set reaches this is removed",
    )
    # prediction and revision
    backend: str = Field(
        "hf",
        description="generation backend kind (codebench.generate.make_backend): hf, openai, vllm; 'none' stops after the prompts",
    )
    model: str = Field(
        "base",
        description="prediction model: a variant of this run ('base'), a local path or a hub id",
    )
    backend_options: dict[str, Any] = Field(
        default_factory=dict,
        description="extra make_backend options (e.g. base_url, api_key_env for openai)",
    )
    max_new_tokens: int = Field(
        96, ge=1, description="tokens per answer; answers cut off here are recorded as truncated"
    )
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy")
    batch_size: int = Field(8, ge=1, description="prompts per generation batch")
    max_predictions: int | None = Field(
        64,
        ge=1,
        description="at most this many training prompts are sent to the model (None = all); smoke-sized",
    )
    revision: bool = Field(
        True, description="CodeI/O++: feedback and a second turn for every non-success"
    )
    # assembly
    gold_fallback: bool = Field(
        True,
        description="where the model never got it right, SFT records end with the executed answer instead of being left out",
    )
    revision_format: Literal["multi-turn", "single-turn"] = Field(
        "multi-turn",
        description="CodeI/O++ records as four chat messages, or one assistant message joined by connector phrases",
    )
    family_sft: int = Field(
        0,
        ge=0,
        description="pyfamilies training functions (training name/family pairs only, decontaminated against both smoke benchmarks) added to the SFT files as prompt-completion records: 60% of families stage 00 never trains on (measured by the pyfamilies-sft benchmark), 40% of its own families (codebench.codeio.families); 0 = CodeI/O records only",
    )


# --------------------------------------------------------------------------- 02 finetune
class GRPOSection(Section):
    """finetune.grpo: GRPO with sandbox execution rewards (trl's GRPOTrainer + LoRA), used when
    finetune.method is grpo. Fields owned by codebench.train.grpo (docs/grpo.md), whose
    `GRPOSettings` is this class."""

    base: str = Field(
        "base",
        description="policy to start from: a run variant ('base', or 'finetuned' = the SFT result this stage trains first), a path or a hub id",
    )
    variant: str = Field(
        "grpo",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="output variant name (models/<variant>, models/<variant>-lora)",
    )
    tasks: str = Field(
        "mbpp-train",
        description="training tasks: pyfamilies-train (the built-in benchmark's training name-family pairs only), pyfamilies-sft-train (the same for the families only the SFT mix teaches, held out by pyfamilies-sft), mbpp-train (MBPP task ids 601-974), or a JSONL of HumanEval-format rows",
    )
    max_tasks: int | None = Field(
        None,
        ge=1,
        description="use at most this many tasks (pyfamilies-train: generate this many; None = 256)",
    )
    task_seed: int = Field(
        1, ge=0, description="seed of the generated tasks (pyfamilies-train; stage 00 mixes seed 0)"
    )
    protocol: Literal["base", "instruct"] = Field(
        "base",
        description="base: the model continues the task prompt; instruct: the prompt goes into a chat message (the model's chat template) and the answer's fenced block is the program",
    )
    steps: int = Field(20, ge=1, description="optimizer steps")
    num_generations: int = Field(4, ge=2, description="completions per prompt (the GRPO group)")
    prompts_per_step: int = Field(2, ge=1, description="prompts per optimizer step")
    max_completion_length: int = Field(64, ge=1, description="tokens per completion")
    temperature: float = Field(1.0, gt=0, description="sampling temperature (GRPO needs > 0)")
    top_p: float = Field(0.95, gt=0, le=1.0, description="nucleus sampling")
    lr: float = Field(1e-4, gt=0, description="learning rate (constant, AdamW)")
    beta: float = Field(0.0, ge=0, description="KL coefficient against the starting policy")
    num_iterations: int = Field(1, ge=1, description="optimisation passes per generation batch")
    reward: Literal["fraction", "binary"] = Field(
        "fraction",
        description="fraction: share of asserts passed (1.0 = all); binary: 1 when every test passes",
    )
    malformed_reward: float = Field(
        -0.5,
        le=0.0,
        description="reward of a completion with no code or code that does not compile (timeouts and crashes get it too)",
    )
    reward_timeout: float = Field(3.0, gt=0, description="sandbox CPU seconds per completion")
    reward_workers: int | None = Field(
        None, ge=1, description="sandbox pool size (None: usable cores + 1)"
    )
    lora_r: int = Field(16, ge=1, description="LoRA rank of the GRPO adapters")
    lora_alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter input")
    target_modules: str | list[str] = Field(
        "all-linear", description="'all-linear' or module names"
    )
    use_vllm: bool = Field(False, description="generate with vLLM (CUDA GPU; trl's use_vllm)")
    vllm_mode: Literal["colocate", "server"] = Field(
        "colocate",
        description="colocate: vLLM inside the training process; server: a separate `trl vllm-serve`",
    )
    vllm_gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1.0, description="share of GPU memory vLLM may take (colocate mode)"
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 on a GPU, fp32 on CPU"
    )
    threads: int = Field(1, ge=0, description="torch CPU threads (0: torch's default)")
    gradient_checkpointing: bool = Field(
        False, description="recompute activations (trl's default is on; off suits small models)"
    )
    decontaminate: bool = Field(True, description="drop tasks overlapping evaluation sets")
    check_references: bool = Field(True, description="drop tasks whose reference fails")
    merge: bool = Field(True, description="also save the merged model at models/<variant>")
    logging_steps: int = Field(1, ge=1, description="trl logging interval (steps)")

    @model_validator(mode="after")
    def _variant_is_new(self) -> GRPOSection:
        if self.variant in ("base", "lora", "finetuned") or self.variant == self.base:
            raise ValueError(
                f"variant {self.variant!r} would overwrite an existing variant: use e.g. 'grpo'"
            )
        return self


class FinetuneSection(Section):
    """Stage 02_finetune: LoRA / QLoRA / full SFT. Fields owned by codebench.train (docs/finetune.md)."""

    method: Literal["lora", "qlora", "full", "grpo"] = Field(
        "lora",
        description="lora: adapters on a frozen base; qlora: adapters on a 4-bit NF4 base (CUDA + bitsandbytes); full: every weight trains; grpo: the LoRA SFT of this section (models/finetuned), then GRPO with sandbox rewards per the `grpo` section (models/grpo; docs/grpo.md)",
    )
    base: str = Field(
        "base",
        description="model to fine-tune: a variant of this run ('base' = 00_base_model's output), a local path or a hub id",
    )
    data: str = Field(
        "sft.jsonl",
        description="training JSONL (chat messages, instruction/output, prompt/response|completion, or text): a file in the run's data/ folder (01_build_data writes sft.jsonl) or a path",
    )
    max_examples: int | None = Field(
        None, ge=1, description="use at most this many records (None = all)"
    )
    template: Literal["auto", "chat", "fallback"] = Field(
        "auto",
        description="auto: the tokenizer's chat template when it has one, else the '### Instruction:/### Response:' fallback",
    )
    max_length: int = Field(
        1536,
        ge=8,
        description="tokens per row; examples whose whole response lies past it are dropped and counted (CodeI/O prompts carry the reference code: ~800 tokens median with the tiny tokenizer)",
    )
    packing: bool = Field(
        True,
        description="pack several examples per row (trl's best-fit-decreasing packing), kept apart by restarting position ids",
    )
    packed_attention: Literal["auto", "varlen", "position_ids"] = Field(
        "auto",
        description="how packed samples are kept apart: varlen (attention per sample, cost of each sample alone), or position_ids (transformers' mask from restarting positions / flash varlen); auto picks the fastest the model supports",
    )
    val_fraction: float = Field(
        0.1, ge=0.0, lt=0.5, description="share of records held out for validation (seeded split)"
    )
    max_val: int | None = Field(
        32, ge=1, description="at most this many validation records (keeps evaluation quick)"
    )
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="dropout on the adapter input")
    target_modules: str | list[str] = Field(
        "all-linear",
        description="'all-linear' (every linear layer but the output head) or module names, e.g. ['q_proj', 'v_proj']",
    )
    allow_qlora_cpu: bool = Field(
        False,
        description="qlora without a CUDA GPU: false stops with a clear error, true warns and trains plain LoRA in fp32",
    )
    max_steps: int | None = Field(
        40, ge=1, description="optimizer steps (None = train `epochs` passes)"
    )
    epochs: float = Field(
        1.0, gt=0, description="passes over the training rows when max_steps is None"
    )
    batch_size: int = Field(
        4, ge=1, description="rows per device per step (a packed row holds several examples)"
    )
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    lr: float = Field(
        1e-3,
        gt=0,
        description="peak learning rate (1e-3 suits the tiny model; ~2e-4 for LoRA on real models)",
    )
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "cosine",
        description="decay after warm-up; checked against the scheduler the trainer builds",
    )
    warmup: float = Field(
        0.1, ge=0.0, description="warm-up steps; a value below 1 is a fraction of the total steps"
    )
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on GPU (fp16 where bf16 is unsupported), fp32 on CPU"
    )
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass (less memory, ~30% slower)"
    )
    logging_steps: int = Field(2, ge=1, description="log training loss and lr every N steps")
    eval_steps: int = Field(20, ge=1, description="validation loss every N steps")
    save_steps: int = Field(20, ge=1, description="checkpoint every N steps")
    save_total_limit: int = Field(2, ge=1, description="checkpoints kept")
    resume: str = Field(
        "auto",
        description="auto: continue from the latest checkpoint of this same configuration; never; or a checkpoint path",
    )
    merge: bool = Field(
        True,
        description="merge the adapters into the base (full precision) and save models/finetuned",
    )
    merge_dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="dtype of the merged model"
    )
    push_to_hub: str | None = Field(
        None, description="hub repo id to push the merged model to (only when HF_TOKEN is set)"
    )
    distributed: Literal["none", "ddp", "zero2", "zero3", "fsdp", "cpu"] = Field(
        "none",
        description="none: train in the notebook's process; else `accelerate launch` with params/accelerate/<name>.yaml (cpu: one CPU process, checks the launch path)",
    )
    num_processes: int | None = Field(
        None, ge=1, description="processes for accelerate launch (None = the config file's value)"
    )
    threads: int = Field(
        1,
        ge=0,
        description="torch CPU threads for training: 1 suits the tiny model (128 wide) and busy machines, where spinning OpenMP threads made it 5x slower; 0 = torch's default (all cores) for larger models on CPU",
    )
    grpo: GRPOSection = Field(
        default_factory=GRPOSection,
        description="GRPO settings, used when method is grpo (docs/grpo.md)",
    )


# --------------------------------------------------------------------------- 03 compress
class CompressSection(Section):
    """Stage 03_compress: quantization and pruning variants and what each costs and saves.
    Fields owned by codebench.compress (docs/compression.md)."""

    source: str = Field(
        "auto",
        description="model to compress: 'auto' (the run's 'finetuned' when present, else 'base'), a variant name of this run, a local path or a hub id",
    )
    variants: list[str] = Field(
        default_factory=lambda: [
            "int8-dynamic",
            "int8-weight",
            "magnitude-50",
            "magnitude-global-50",
            "wanda-50",
            "2:4",
            "mlp-prune-25",
            "nf4",
            "bnb-int8",
            "int4-weight",
        ],
        description="variant specs, saved to models/<name> ('2:4' -> '2of4'): int8-dynamic, int8-weight, int4-weight, nf4, bnb-int8, magnitude-<pct>, magnitude-global-<pct>, wanda-<pct>, [wanda-]2:4, mlp-prune-<pct>, head-prune-<pct>, and '+' chains such as mlp-prune-25+int8-dynamic; CUDA-only ones are skipped on CPU with the reason",
    )
    calibration_sequences: int = Field(
        16,
        ge=1,
        description="calibration windows of training-split code for wanda / mlp-prune / head-prune activation statistics",
    )
    calibration_seq_len: int = Field(128, ge=8, description="tokens per calibration window")
    eval_chars: int = Field(
        20_000,
        ge=1_000,
        description="held-out code (characters) for the perplexity of every variant",
    )
    ppl_context: int = Field(256, ge=16, description="perplexity sliding-window width in tokens")
    ppl_stride: int = Field(
        128, ge=1, description="perplexity window step (every token is scored once)"
    )
    threads: int = Field(
        1,
        ge=0,
        description="torch CPU threads while measuring, fixed so variants compare fairly (1: on a shared machine 2-thread fp32 GEMMs stall in OpenMP barriers whenever another process runs; 0 = all cores)",
    )
    prompt_tokens: int = Field(64, ge=1, description="prompt length for the prefill latency")
    new_tokens: int = Field(16, ge=1, description="decode steps timed per repeat")
    repeats: int = Field(3, ge=1, description="timed repeats after one warm-up (median reported)")
    int8_kernel: Literal["auto", "torchao", "fbgemm"] = Field(
        "auto",
        description="how int8 weights run: auto = PyTorch's fbgemm int8 GEMM for int8-dynamic on CPU, torchao Int8Tensor otherwise",
    )
    quantize_embeddings: bool = Field(
        True, description="int8 variants also quantize the token embedding (and a tied output head)"
    )
    sparse_storage: bool = Field(
        True,
        description="store unstructured / 2:4 pruned weights as bit mask + non-zero values (smaller files; loads back dense)",
    )
    isolate: bool = Field(
        True,
        description="measure each variant in a fresh process (honest peak memory); false = in the notebook's process",
    )
    reuse: bool = Field(
        True,
        description="keep a variant folder built earlier from the same source with the same spec",
    )
    pass_at_1: bool = Field(
        False,
        description="also score pass@1 of the source and every variant through codebench.bench",
    )
    pass_at_1_benchmark: str = Field("humaneval", description="benchmark spec for pass@1")
    pass_at_1_limit: int | None = Field(
        20, ge=1, description="first N problems for pass@1 (None = all)"
    )
    pass_at_1_max_new_tokens: int = Field(
        256, ge=1, description="generation budget per pass@1 problem"
    )

    @field_validator("variants")
    @classmethod
    def _known_variants(cls, v: list[str]) -> list[str]:
        from codebench.compress.variants import SpecError, parse_specs

        try:
            parse_specs(v)
        except SpecError as e:
            raise ValueError(str(e)) from None
        return v


# --------------------------------------------------------------------------- 04 evaluate
class EvaluateSection(Section):
    """Stage 04_evaluate: benchmarks x variants. Fields owned by codebench.bench."""

    variants: list[str] | None = Field(
        None,
        description="model variants of the run to evaluate (base, lora, finetuned, int8-dynamic, ...); null = every variant in runs/<name>/models; missing ones are reported and skipped",
    )
    benchmarks: list[str] = Field(
        default_factory=lambda: ["humaneval", "mbpp"],
        min_length=1,
        description="benchmark specs name[:protocol]: humaneval, humaneval:instruct, mbpp, multiple-{js,cpp,java,sh}, mtpb[:single], fim[:multi-line], pal-{gsm8k,gsm-hard,svamp,mawps}, codeio, custom:path.jsonl (docs/benchmarks.md)",
    )
    n: int = Field(1, ge=1, description="samples per problem (pass@k is reported for every k <= n)")
    temperature: float = Field(
        0.0,
        ge=0.0,
        description="0 = greedy pass@1 (needs n = 1); sampling for pass@k, e.g. 0.2 or 0.8",
    )
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling (ignored when greedy)")
    max_new_tokens: int = Field(
        128,
        ge=1,
        description="generation budget per sample (MTPB: per turn, capped by the problem's own)",
    )
    limit: int | dict[str, int | None] | None = Field(
        10,
        description="first N problems per benchmark (MTPB: problems, each with 5 test cases); null = all; or per benchmark, e.g. {default: 8, pyfamilies: null} (keys: spec, name or 'default'; a benchmark with no entry and no default runs in full)",
    )
    ks: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1, 10, 100],
        min_length=1,
        description="pass@k values to report; the default reports those <= n, and `codebench validate` rejects a k > n written in the profile",
    )
    batch_size: int = Field(8, ge=1, description="prompts per backend call and per records flush")
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="a named evaluation: its outputs go to eval/<variant>@<name>/, beside other settings of the same variant (docs/benchmarks.md); null = eval/<variant>/",
    )
    timeout: float = Field(10.0, gt=0, description="sandbox seconds per program")
    canaries: bool = Field(
        True,
        description="score references (must pass) and wrong answers (must fail) first; refuse to report when off",
    )
    fim_seed: int = Field(0, ge=0, description="seed choosing the masked span of each FIM problem")
    backend: Literal["hf", "openai", "vllm"] = Field(
        "hf", description="generation backend (codebench.generate)"
    )
    backend_options: dict[str, Any] = Field(
        default_factory=dict,
        description="extra options for the backend (e.g. base_url, model, concurrency, batch_size)",
    )

    @field_validator("limit")
    @classmethod
    def _positive_limits(cls, v: Any) -> Any:
        for lim in v.values() if isinstance(v, dict) else [v]:
            if lim is not None and lim < 1:
                raise ValueError(f"a limit must be >= 1 or null, got {lim}")
        return v

    @model_validator(mode="after")
    def _greedy_needs_one_sample(self) -> EvaluateSection:
        if self.temperature == 0 and self.n > 1:
            raise ValueError(
                "temperature 0 (greedy) gives n identical samples: set n: 1, or temperature > 0 for pass@k"
            )
        return self


# --------------------------------------------------------------------------- 05 report
class ReportSection(Section):
    """Stage 05_report: tables and figures over every stage's results. Fields owned by codebench.report."""

    title: str = Field("", description="report heading; empty = 'codebench report: <profile>'")
    primary_metric: str = Field(
        "pass@1", description="metric ranked in the variant table and plotted against model size"
    )
    variants: list[str] | None = Field(
        None,
        description="variants to report, in this order; null = every variant found (base first)",
    )
    benchmarks: list[str] | None = Field(
        None, description="benchmarks to report; null = every benchmark found"
    )


SECTION_MODELS: dict[str, type[Section]] = {
    "model": ModelSection,
    "data": DataSection,
    "finetune": FinetuneSection,
    "compress": CompressSection,
    "evaluate": EvaluateSection,
    "report": ReportSection,
}


class Profile(Section):
    """A whole reproduction profile."""

    name: str = Field(
        ...,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="run folder name: runs/<name>, figures/<name>",
    )
    description: str = ""
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data_dir: str | None = Field(
        None,
        description="benchmark data folder (must exist); null = $CODEBENCH_DATA, else ../shared/data, else the data shipped with codebench (codebench.paths)",
    )
    stages: list[Literal["model", "data", "finetune", "compress", "evaluate", "report"]] | None = (
        Field(None, description="stages to run, in pipeline order; default all")
    )
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    finetune: FinetuneSection = Field(default_factory=FinetuneSection)
    compress: CompressSection = Field(default_factory=CompressSection)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    report: ReportSection = Field(default_factory=ReportSection)

    def enabled_stages(self) -> list[str]:
        """Stages to run, in pipeline order."""
        chosen = set(self.stages) if self.stages is not None else set(STAGES)
        return [s for s in STAGES if s in chosen]


# --------------------------------------------------------------------------- loading
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of silently keeping the last."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise ProfileError(
                f"line {mark.line + 1} column {mark.column + 1}: duplicate key {key!r}"
            )
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def format_validation_error(where: str, err: ValidationError) -> str:
    """One line per problem: `where: key.path: message`."""
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            parent = e["loc"][:-1]
            msg = f"unknown key{_allowed_hint(parent)}"
        elif e["type"] == "missing":
            msg = "required key is missing"
        else:
            got = e.get("input")
            msg = f"{e['msg']} (got {got!r})" if not isinstance(got, dict) else e["msg"]
        lines.append(f"{where}: {path}: {msg}")
    return "\n".join(lines)


def _allowed_hint(parent: tuple) -> str:
    model: Any = Profile
    for part in parent:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return ""
        model = ann
    return " (allowed: " + ", ".join(model.model_fields) + ")"


def load_profile(path: str | os.PathLike) -> Profile:
    """Read and validate a profile; raise ProfileError naming the file and key path."""
    p = Path(path)
    if not p.is_file():
        raise ProfileError(f"{p}: profile not found")
    try:
        raw = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except ProfileError as e:
        raise ProfileError(f"{p}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ProfileError(f"{p}:{where}: malformed YAML: {problem}") from None
    except UnicodeDecodeError as e:
        raise ProfileError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if raw is None:
        raise ProfileError(f"{p}: profile is empty")
    if not isinstance(raw, dict):
        raise ProfileError(f"{p}: top level must be a mapping of keys, got {type(raw).__name__}")
    try:
        return Profile.model_validate(raw)
    except ValidationError as e:
        raise ProfileError(format_validation_error(str(p), e)) from None


# --------------------------------------------------------------------------- relative paths
_SOURCE_NAMES = ("codeio-demo", "codeio-raw", "stdlib")
_MODEL_WORDS = ("tiny", "base", "auto", "lora", "finetuned")


def _abs(value: str, base: Path) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _looks_local(value: str, base: Path) -> bool:
    """A model spec that names a local folder: ./x, ../x, ~/x, or a relative path that exists."""
    return value.startswith(("./", "../", "~")) or (
        not Path(value).is_absolute() and (base / value).exists()
    )


def _bench_abs(spec: str, base: Path) -> str:
    """'custom:rel.jsonl[:protocol]' / 'codeio:rel.jsonl' with the path made absolute."""
    name, _, rest = spec.partition(":")
    if name.strip().lower() not in ("custom", "codeio") or not rest:
        return spec
    path, suffix = rest, ""
    for proto in ("base", "instruct"):
        if rest.endswith(":" + proto):
            path, suffix = rest[: -len(proto) - 1], ":" + proto
    return f"{name}:{_abs(path, base)}{suffix}" if path else spec


def resolve_relative_paths(prof: Profile, base: str | os.PathLike | None = None) -> Profile:
    """A copy of `prof` whose relative file and folder paths are absolute, against `base`
    (default: the current folder, where `codebench` was started).

    Stage notebooks run with `notebooks/` as their current folder, so the runner hands them
    these absolute paths; `codebench validate` checks the same ones. Only values that are
    paths change: data_dir, model.tiny.source, data.sources that are paths, custom:/codeio: benchmark
    files, finetune.resume, finetune.data with a folder part, and model specs that start with
    ./ ../ ~ or exist as a relative path (a hub id such as org/name stays as it is).
    """
    b = Path(base or Path.cwd()).resolve()
    upd: dict[str, Any] = {}
    if prof.data_dir and not Path(prof.data_dir).expanduser().is_absolute():
        upd["data_dir"] = _abs(prof.data_dir, b)

    def model_spec(v: str) -> str:
        return _abs(v, b) if v not in _MODEL_WORDS and _looks_local(v, b) else v

    m = prof.model
    tiny = m.tiny
    if tiny.source != "stdlib":
        tiny = tiny.model_copy(update={"source": _abs(tiny.source, b)})
    upd["model"] = m.model_copy(update={"base": model_spec(m.base), "tiny": tiny})
    d = prof.data
    upd["data"] = d.model_copy(
        update={
            "sources": [
                _abs(s, b)
                if s not in _SOURCE_NAMES
                and ("/" in s or s.endswith(".jsonl") or _looks_local(s, b))
                else s
                for s in d.sources
            ],
            "model": model_spec(d.model),
        }
    )
    f = prof.finetune
    data = f.data
    if "/" in data or data.startswith(("~", ".")):
        data = _abs(data, b)
    upd["finetune"] = f.model_copy(
        update={
            "base": model_spec(f.base),
            "data": data,
            "resume": f.resume if f.resume in ("auto", "never") else _abs(f.resume, b),
        }
    )
    c = prof.compress
    upd["compress"] = c.model_copy(
        update={
            "source": model_spec(c.source),
            "pass_at_1_benchmark": _bench_abs(c.pass_at_1_benchmark, b),
        }
    )
    e = prof.evaluate
    upd["evaluate"] = e.model_copy(
        update={
            "benchmarks": [_bench_abs(x, b) for x in e.benchmarks],
            "variants": None if e.variants is None else [model_spec(v) for v in e.variants],
        }
    )
    return prof.model_copy(update=upd)


# --------------------------------------------------------------------------- stage side
@dataclass
class StageContext:
    """What every stage notebook needs besides its own section."""

    profile: str
    seed: int
    device: str
    data_dir: str | None
    run_dir: Path
    figures_dir: Path

    @property
    def run(self):  # -> codebench.runs.RunLayout (imported lazily to keep params light)
        from codebench.runs import RunLayout

        return RunLayout(self.run_dir, self.figures_dir)


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; 'cuda' without a GPU is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise ProfileError(f"device: expected auto, cpu or cuda, got {device!r}")
    from codebench import models  # torch: only when a stage resolves its device

    try:
        return models.resolve_device(device)
    except ValueError:
        raise ProfileError(
            "device: 'cuda' requested but no CUDA GPU is visible (use device: auto or cpu)"
        ) from None


def stage_config(section: str, namespace: dict[str, Any]) -> tuple[StageContext, Section]:
    """Validate a notebook's parameters: common keys plus its section's fields.

    `namespace` is the notebook's `globals()` after the parameters cell (and papermill's
    injected cell). Returns the stage context and the typed section. Seeds python, numpy
    and torch from `seed`.
    """
    if section not in SECTION_MODELS:
        raise ProfileError(
            f"unknown stage section {section!r} (known: {', '.join(SECTION_MODELS)})"
        )
    model = SECTION_MODELS[section]
    values = {k: namespace[k] for k in model.model_fields if k in namespace}
    try:
        cfg = model.model_validate(values)
    except ValidationError as e:
        raise ProfileError(format_validation_error(f"notebook parameters [{section}]", e)) from None
    missing = [k for k in COMMON_KEYS if k not in namespace]
    if missing:
        raise ProfileError(f"notebook parameters [{section}]: missing common keys {missing}")
    ctx = StageContext(
        profile=str(namespace["profile"]),
        seed=int(namespace["seed"]),
        device=resolve_device(str(namespace["device"])),
        data_dir=namespace["data_dir"],
        run_dir=Path(namespace["run_dir"]).resolve(),
        figures_dir=Path(namespace["figures_dir"]).resolve(),
    )
    seed_everything(ctx.seed)
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    ctx.figures_dir.mkdir(parents=True, exist_ok=True)
    return ctx, cfg


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (if imported) for reproducible stages."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)
