"""Shared pytest fixtures and marker handling.

Fixtures:
- `tiny_run`: a RunLayout in a session temp folder whose models/base holds a tiny model
  trained here for a few steps (built once per session, ~10 s on 2 cores).
- `tiny_model_dir`: that model folder (load it with `codebench.models.load(path)`).
- `tiny_test_config`: the TinyModelConfig fields that fixture trains with (a dict).
- `data_dir`: the benchmark data folder (`codebench.paths.data_dir()`); skips when absent.

Threads: torch uses one thread per test process unless CODEBENCH_TEST_THREADS says otherwise.
Markers: tests marked `gpu` are skipped without CUDA; tests marked `slow` are skipped unless
a marker expression is given (`make test-slow` passes -m "slow or not slow").
Tests never use the network: the model hub is switched to offline mode here.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One torch/OpenMP thread per test process (and the notebook kernels it starts): tests share
# a few cores, and oversubscribed OpenMP threads spin-wait, making small models 10x slower.
# Set CODEBENCH_TEST_THREADS to use more.
os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("CODEBENCH_TEST_THREADS", "1"))

import pytest  # noqa: E402

# A model trained just long enough to produce non-random text: seconds, not minutes.
TEST_TINY = {
    "source": "stdlib",
    "max_files": 30,
    "max_chars": 300_000,
    "vocab_size": 512,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_layers": 2,
    "num_heads": 2,
    "context": 64,
    "fim_rate": 0.5,
    "steps": 60,
    "batch_size": 8,
    "lr": 1e-2,
    "warmup_steps": 6,
    "eval_every": 20,
    "heldout_fraction": 0.1,
    "threads": 1,
}


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_slow = pytest.mark.skip(reason="slow: run with `make test-slow` or -m slow")
    explicit = bool(config.getoption("markexpr", default=""))
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if gpu_items and not _cuda_available():
        for item in gpu_items:
            item.add_marker(skip_gpu)
    for item in items:
        if "slow" in item.keywords and not explicit:
            item.add_marker(skip_slow)


@pytest.fixture
def tiny_test_config() -> dict:
    """The test-size TinyModelConfig fields (a fresh copy), e.g. for notebook parameters."""
    return dict(TEST_TINY)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    """A run folder with a freshly trained tiny model in models/base (session-scoped)."""
    from codebench import tiny
    from codebench.params import TinyModelConfig
    from codebench.runs import RunLayout

    root = tmp_path_factory.mktemp("tiny_run")
    run = RunLayout(root / "run", root / "figures")
    run.root.mkdir(parents=True)
    tiny.build(TinyModelConfig(**TEST_TINY), run, seed=0, eval_chars=5_000, log=None)
    return run


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_run):
    """Path of the session's tiny model folder (runs/<x>/models/base layout)."""
    return tiny_run.model_dir("base")


@pytest.fixture(scope="session")
def data_dir():
    """The benchmark data folder; the test is skipped when none is configured."""
    from codebench.paths import DataDirError
    from codebench.paths import data_dir as find

    try:
        return find()
    except DataDirError as e:
        pytest.skip(str(e))
