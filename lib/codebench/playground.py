"""The interactive playground behind notebooks/playground.ipynb (ipywidgets).

Pick a model variant of a run, a mode (complete, chat, fill-in-the-middle, explain,
multi-turn), set the sampling controls, see the exact prompt the model receives, watch the
tokens stream in (`Backend.stream`), and run the generated code against a HumanEval or MBPP
problem's tests in the sandbox.

The wiring that demos get wrong lives in pure, tested functions:

- `Controls` holds every control's value; `generation_config(controls)` maps each control to
  the `GenerationConfig` field of the same meaning (one line per field, tested field by
  field in tests/test_playground.py);
- `render_prompt(mode, ...)` builds the model input for each mode;
- `Playground` only reads widgets into a `Controls` and calls those functions.

Headless runs (papermill, nbclient) have no widget front end: `frontend_connected()` tells,
and the notebook prints a note instead of building the interface.
"""

from __future__ import annotations

import atexit
import codecs
import html
import inspect
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from codebench.bench.explain import explain_messages

MODES: tuple[str, ...] = ("complete", "chat", "fim", "explain", "multi-turn")
MODE_LABELS = {
    "complete": "complete",
    "chat": "chat (instruct)",
    "fim": "fill-in-the-middle",
    "explain": "explain code",
    "multi-turn": "multi-turn chat",
}
BENCHMARKS: tuple[str, ...] = ("humaneval", "mbpp")


# --------------------------------------------------------------------------- pure wiring


@dataclass
class Controls:
    """Values of the sampling controls, named exactly like the GenerationConfig fields.

    `stop` is the stop-sequence box's text: one stop string per line, with backslash
    escapes (`\\n`, `\\t`) so a stop can start with a newline (`\\ndef`).
    """

    temperature: float = 0.2
    top_p: float = 0.95
    top_k: int = 0
    max_new_tokens: int = 128
    repetition_penalty: float = 1.0
    stop: str = ""
    seed: int = 0


def parse_stops(text: str) -> list[str]:
    """One stop string per non-empty line; backslash escapes decoded (`\\ndef` -> newline + def)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            s = codecs.decode(line, "unicode_escape") if "\\" in line else line
        except UnicodeDecodeError as e:
            raise ValueError(f"stop sequence {line!r}: bad escape ({e.reason})") from None
        if s and s not in out:
            out.append(s)
    return out


def generation_config(controls: Controls | Mapping[str, Any]):
    """The GenerationConfig for these control values: each control sets its own field, once."""
    from codebench.generate import GenerationConfig

    c = controls if isinstance(controls, Controls) else Controls(**dict(controls))
    return GenerationConfig(
        temperature=float(c.temperature),
        top_p=float(c.top_p),
        top_k=int(c.top_k),
        max_new_tokens=int(c.max_new_tokens),
        repetition_penalty=float(c.repetition_penalty),
        stop=parse_stops(c.stop),
        seed=int(c.seed),
        n=1,
    )


def render_prompt(
    mode: str,
    text: str,
    *,
    chat: Callable[[list[dict]], str] | None = None,
    fim=None,
    suffix: str = "",
    history: list[dict] | None = None,
) -> str:
    """The exact model input for `mode`.

    complete: `text` as is; chat / explain / multi-turn: chat messages rendered by `chat`
    (the backend's `chat_prompt`: the tokenizer's template or the documented fallback);
    fim: a prefix-suffix-middle prompt from `fim` (`models.FimTokens`) with `text` before
    the hole and `suffix` after it.
    """
    if mode == "complete":
        return text
    if mode == "fim":
        if fim is None:
            raise ValueError("this model's tokenizer has no fill-in-the-middle tokens")
        return fim.prompt(text, suffix)
    if chat is None:
        raise ValueError(f"mode {mode!r} needs a chat renderer")
    if mode == "chat":
        return chat([{"role": "user", "content": text}])
    if mode == "explain":
        return chat(explain_messages(text))
    if mode == "multi-turn":
        return chat([*(history or []), {"role": "user", "content": text}])
    raise ValueError(f"unknown mode {mode!r} (modes: {', '.join(MODES)})")


def frontend_connected() -> bool:
    """Whether this kernel serves an interactive Jupyter front end (JupyterLab, Notebook 7).

    Two signals: a Jupyter server starts its kernels with `JPY_SESSION_NAME` (the notebook's
    path) in their environment, and a widget manager that has synced opens the
    `jupyter.widget.control` comm. Headless runners (papermill, nbclient) give neither.
    """
    try:
        import ipywidgets
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    if ip is None or getattr(ip, "kernel", None) is None:
        return False
    if getattr(ipywidgets.Widget, "_control_comm", None) is not None:
        return True
    return bool(os.environ.get("JPY_SESSION_NAME"))


def is_interactive(setting: bool | str | None = "auto") -> bool:
    """Resolve the notebook's `interactive` parameter: True, False, or 'auto' (detect)."""
    if isinstance(setting, bool):
        return setting
    if setting in (None, "auto", ""):
        return frontend_connected()
    return str(setting).lower() in ("1", "true", "yes", "on")


# --------------------------------------------------------------------------- backends


def run_variants(run_dir: str | os.PathLike | None) -> list[str]:
    """Model variants of a run folder, base first; [] when the folder has none."""
    from codebench.runs import RunLayout

    if run_dir is None:
        return []
    found = RunLayout(Path(run_dir), Path(run_dir)).variants()
    head = [v for v in ("base", "finetuned", "lora") if v in found]
    return head + [v for v in found if v not in head]


NO_RUN = (
    "no trained model in {run}: run `make reproduce` in the project root first "
    "(it trains the tiny model into runs/smoke/models), then run this notebook again"
)


def default_backend_factory(
    run_dir: str | os.PathLike | None, device: str = "cpu"
) -> Callable[[str], Any]:
    """variant name -> an HF backend for the run's models/<variant> (cached per variant).

    Names resolve through the run (`models.resolve(..., run=...)`), so 'tiny' means the run's
    base model; with no model in the run the error says which command makes one.
    """
    cache: dict[str, Any] = {}

    def make(variant: str):
        if variant not in cache:
            from codebench.generate import make_backend
            from codebench.runs import RunLayout

            run = RunLayout(Path(run_dir), Path(run_dir)) if run_dir else None
            if run is None or not run.variants():
                raise FileNotFoundError(NO_RUN.format(run=Path(run_dir or "runs/smoke").resolve()))
            folder = run.model_dir(variant)
            spec = str(folder) if folder.is_dir() else variant
            cache[variant] = make_backend("hf", model=spec, device=device, run=run)
        return cache[variant]

    return make


def generation_threads() -> int:
    """Torch threads for one generation: the idle cores now (`tiny.auto_threads`), at least 1.

    More threads than idle cores make a small model crawl on a busy machine (every op
    spin-waits): 24 tokens took 22.6 s with every thread against 0.58 s with one.
    """
    from codebench.tiny import auto_threads

    return auto_threads()


def backend_tokenizer(backend: Any):
    """The backend's tokenizer (HFBackend keeps it as `.tokenizer` or `.tok`), or None."""
    return getattr(backend, "tokenizer", None) or getattr(backend, "tok", None)


# --------------------------------------------------------------------------- problems


class ProblemRunner:
    """HumanEval/MBPP problems and their tests, through the bench tasks and the sandbox."""

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        sandbox_factory: Callable[[], Any] | None = None,
    ):
        self.data_dir = data_dir
        self._tasks: dict[tuple[str, str], Any] = {}
        self._sandbox_factory = sandbox_factory
        self._sandbox = None

    def task(self, bench: str, protocol: str = "base"):
        from codebench.bench.registry import get_task

        key = (bench, protocol)
        if key not in self._tasks:
            self._tasks[key] = get_task(f"{bench}:{protocol}", data_dir=self.data_dir)
        return self._tasks[key]

    def task_ids(self, bench: str, limit: int | None = None) -> list[str]:
        return [p.task_id for p in self.task(bench).problems(limit)]

    def problem(self, bench: str, task_id: str, protocol: str = "base"):
        for p in self.task(bench, protocol).problems():
            if p.task_id == task_id:
                return p
        raise KeyError(f"{bench}: no problem {task_id!r}")

    def prompt_text(self, bench: str, task_id: str, mode: str) -> str:
        """What the prompt box shows for a problem: the base prompt, or the instruct message."""
        if mode in ("chat", "multi-turn"):
            task = self.task(bench, "instruct")
            msgs = task.messages(self.problem(bench, task_id, "instruct"))
            return next(m["content"] for m in reversed(msgs) if m["role"] == "user")
        if mode == "explain":
            p = self.problem(bench, task_id)
            return (
                p.prompt + (p.reference or "")
                if bench == "humaneval"
                else (p.meta.get("code") or p.reference or p.prompt)
            )
        return self.problem(bench, task_id).prompt

    def run_tests(self, bench: str, task_id: str, raw_output: str, mode: str) -> dict:
        """Extract the program from the model output and run the problem's tests in the sandbox."""
        protocol = "instruct" if mode in ("chat", "multi-turn") else "base"
        task = self.task(bench, protocol)
        problem = self.problem(bench, task_id, protocol)
        program = task.extract(problem, raw_output)
        result = self.sandbox().map([task.job(problem, program)])[0]
        outcome, detail = task.verdict(problem, program, result)
        return {
            "outcome": str(outcome),
            "detail": detail,
            "program": program,
            "duration_s": getattr(result, "duration_s", None),
        }

    def sandbox(self):
        if self._sandbox is None:
            if self._sandbox_factory is not None:
                self._sandbox = self._sandbox_factory()
            else:
                from codebench.sandbox import Sandbox

                self._sandbox = Sandbox(workers=1, timeout=5.0)
                self._sandbox.__enter__()
                atexit.register(self.close)
        return self._sandbox

    def close(self) -> None:
        if self._sandbox is not None and hasattr(self._sandbox, "__exit__"):
            self._sandbox.__exit__(None, None, None)
        self._sandbox = None


# --------------------------------------------------------------------------- the widget UI


class Playground:
    """The widget interface. `pg.widget` is the root box; every control is an attribute.

    `backend_factory(variant)` returns a generation backend (default: HF on the run's model
    folders); `problems` runs tests (default: bench tasks + sandbox). Both are injectable so
    tests drive the real widgets with fakes.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike | None = None,
        *,
        variants: list[str] | None = None,
        device: str = "cpu",
        data_dir: str | os.PathLike | None = None,
        backend_factory: Callable[[str], Any] | None = None,
        problems: ProblemRunner | None = None,
        defaults: Controls | None = None,
        problem_limit: int | None = None,
    ) -> None:
        import ipywidgets as W

        self.run_dir = run_dir
        self.backend_factory = backend_factory or default_backend_factory(run_dir, device)
        self.problems = problems or ProblemRunner(data_dir)
        self.problem_limit = problem_limit
        self.history: list[dict] = []
        self.last_output = ""
        self.last_prompt = ""
        self.last_config = None
        self.last_verdict: dict | None = None
        self.generations = 0
        self.tokens_per_s: float | None = None
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._worker: threading.Thread | None = None
        self._loaded: set[str] = set()
        d = defaults or Controls()
        found = variants if variants is not None else run_variants(run_dir)
        self.missing_run = not found
        variants = found or ["(none: run `make reproduce` first)"]
        wide = W.Layout(width="98%")
        label = {"description_width": "110px"}

        self.variant = W.Dropdown(options=variants, value=variants[0], description="model")
        self.mode = W.ToggleButtons(
            options=[(MODE_LABELS[m], m) for m in MODES], value="complete", description="mode"
        )
        self.prompt = W.Textarea(
            value="def fibonacci(n):\n",
            description="prompt",
            layout=W.Layout(width="98%", height="140px"),
        )
        self.suffix = W.Textarea(
            value="",
            description="suffix",
            placeholder="code after the hole (fill-in-the-middle)",
            layout=W.Layout(width="98%", height="80px", display="none"),
        )
        # sampling controls: one widget per GenerationConfig field
        self.temperature = W.FloatSlider(
            style=label,
            value=d.temperature,
            min=0.0,
            max=2.0,
            step=0.05,
            description="temperature",
            readout_format=".2f",
        )
        self.top_p = W.FloatSlider(
            style=label,
            value=d.top_p,
            min=0.05,
            max=1.0,
            step=0.05,
            description="top-p",
            readout_format=".2f",
        )
        self.top_k = W.IntSlider(
            style=label, value=d.top_k, min=0, max=200, step=1, description="top-k"
        )
        self.max_new_tokens = W.IntSlider(
            style=label,
            value=d.max_new_tokens,
            min=1,
            max=1024,
            step=1,
            description="max new tokens",
        )
        self.repetition_penalty = W.FloatSlider(
            style=label,
            value=d.repetition_penalty,
            min=1.0,
            max=2.0,
            step=0.05,
            description="rep. penalty",
            readout_format=".2f",
        )
        self.stop = W.Textarea(
            value=d.stop,
            description="stop",
            placeholder="one per line; \\n for newline, e.g. \\ndef",
            layout=W.Layout(width="98%", height="60px"),
        )
        self.seed = W.IntText(value=d.seed, description="seed", style=label)
        self.generate_button = W.Button(description="Generate", button_style="primary", icon="play")
        self.stop_button = W.Button(
            description="Stop", icon="stop", button_style="warning", disabled=True
        )
        self.clear_button = W.Button(description="Clear history", icon="trash")
        self.rendered = W.HTML(description="", layout=wide)
        self.output = W.Textarea(
            value="",
            description="output",
            disabled=False,
            layout=W.Layout(width="98%", height="180px"),
        )
        self.status = W.HTML(value="")
        self.transcript = W.HTML(value="", layout=wide)
        # problems and tests
        self.bench = W.Dropdown(
            options=list(BENCHMARKS), value=BENCHMARKS[0], description="benchmark"
        )
        self.problem = W.Dropdown(options=[], description="problem")
        self.load_button = W.Button(description="Load problem", icon="download")
        self.test_button = W.Button(description="Run tests", icon="check", button_style="success")
        self.verdict = W.HTML(value="")

        for w in (
            self.mode,
            self.prompt,
            self.suffix,
            self.variant,
            *self.control_widgets().values(),
        ):
            w.observe(self._on_change, names="value")
        self.mode.observe(self._on_mode, names="value")
        self.bench.observe(self._on_bench, names="value")
        self.generate_button.on_click(lambda _: self.start_generate())
        self.stop_button.on_click(lambda _: self.on_stop())
        self.clear_button.on_click(lambda _: self.clear_history())
        self.load_button.on_click(lambda _: self.on_load_problem())
        self.test_button.on_click(lambda _: self.on_run_tests())

        controls = W.VBox(
            [
                W.HBox([self.temperature, self.top_p]),
                W.HBox([self.top_k, self.max_new_tokens]),
                W.HBox([self.repetition_penalty, self.seed]),
                self.stop,
            ]
        )
        problem_box = W.VBox(
            [W.HBox([self.bench, self.problem, self.load_button, self.test_button]), self.verdict]
        )
        self.widget = W.VBox(
            [
                W.HBox([self.variant]),
                self.mode,
                self.prompt,
                self.suffix,
                W.Accordion(children=[controls], titles=("sampling",), selected_index=0),
                W.HBox([self.generate_button, self.stop_button, self.clear_button, self.status]),
                W.HTML("<b>rendered prompt</b> (exactly what the model receives)"),
                self.rendered,
                self.output,
                self.transcript,
                W.HTML("<b>tests</b> (HumanEval / MBPP, run in the sandbox)"),
                problem_box,
            ]
        )
        self._refresh_problems()
        self._refresh_rendered()
        if self.missing_run:
            self.status.value = _err(NO_RUN.format(run=Path(run_dir or "runs/smoke").resolve()))

    # ------------------------------------------------------------------ reading controls
    def control_widgets(self) -> dict[str, Any]:
        """Control name (= Controls / GenerationConfig field) -> its widget."""
        return {f.name: getattr(self, f.name) for f in fields(Controls)}

    def controls(self) -> Controls:
        return Controls(**{name: w.value for name, w in self.control_widgets().items()})

    def config(self):
        return generation_config(self.controls())

    def backend(self):
        return self.backend_factory(self.variant.value)

    def current_prompt(self, backend: Any | None = None) -> str:
        """The rendered model input for the current mode and text."""
        mode = self.mode.value
        if mode == "complete":
            return self.prompt.value
        b = backend or self.backend()
        fim = None
        if mode == "fim":
            from codebench.models import fim_tokens

            tok = backend_tokenizer(b)
            fim = fim_tokens(tok) if tok is not None else None
        return render_prompt(
            mode,
            self.prompt.value,
            chat=b.chat_prompt,
            fim=fim,
            suffix=self.suffix.value,
            history=self.history,
        )

    # ------------------------------------------------------------------ actions
    def on_generate(self) -> str:
        """Render the prompt, stream the completion into the output box, return it.

        Shows 'loading model ...' while a variant loads the first time and tokens/s while it
        generates; `on_stop` (the Stop button) ends the generation at the next token.
        """
        with self._lock:
            self._cancel.clear()
            if self.missing_run:
                self.status.value = _err(
                    NO_RUN.format(run=Path(self.run_dir or "runs/smoke").resolve())
                )
                return ""
            try:
                cfg = self.config()
                variant = self.variant.value
                if variant not in self._loaded:
                    self.status.value = f"<i>loading model {html.escape(str(variant))} ...</i>"
                backend = self.backend()
                self._loaded.add(variant)
                prompt = self.current_prompt(backend)
            except Exception as e:  # bad stop escape, no FIM tokens, model not loadable
                self._error(e)
                return ""
            self.last_prompt, self.last_config = prompt, cfg
            self.rendered.value = _pre(prompt)
            self.output.value = ""
            threads = _set_threads()
            self.status.value = f"<i>generating ... ({threads} threads)</i>"
            chunks: list[str] = []
            count = _token_counter(backend)
            t0 = last = time.perf_counter()
            try:
                for piece in _stream(backend, prompt, cfg, self._cancel):
                    chunks.append(piece)
                    self.output.value = "".join(chunks)
                    now = time.perf_counter()
                    if now - last > 0.25:
                        last = now
                        n = count(self.output.value)
                        self.status.value = (
                            f"<i>generating ... {n} tokens, {n / (now - t0):.1f} tokens/s</i>"
                        )
            except Exception as e:
                self._error(e)
                return ""
            text = "".join(chunks)
            seconds = time.perf_counter() - t0
            n = count(text)
            self.tokens_per_s = n / seconds if seconds > 0 else None
            self.last_output = text
            if self.mode.value == "multi-turn":
                self.history += [
                    {"role": "user", "content": self.prompt.value},
                    {"role": "assistant", "content": text},
                ]
                self.transcript.value = _transcript(self.history)
            self.generations += 1
            stopped = " (stopped)" if self._cancel.is_set() else ""
            rate = f", {self.tokens_per_s:.1f} tokens/s" if self.tokens_per_s else ""
            self.status.value = (
                f"done (#{self.generations}){stopped}: {len(text)} characters, {n} tokens "
                f"in {seconds:.1f} s{rate}"
            )
            return text

    def start_generate(self) -> threading.Thread:
        """Generate in a background thread (the kernel stays free for the Stop button)."""

        def work() -> None:
            try:
                self.on_generate()
            finally:
                self.generate_button.disabled = False
                self.stop_button.disabled = True

        self.generate_button.disabled = True
        self.stop_button.disabled = False
        self._worker = threading.Thread(target=work, daemon=True, name="playground-generate")
        self._worker.start()
        return self._worker

    def on_stop(self) -> None:
        """Stop the running generation at the next token (what was generated stays)."""
        self._cancel.set()
        self.status.value = "<i>stopping ...</i>"

    def clear_history(self) -> None:
        self.history = []
        self.transcript.value = ""
        self._refresh_rendered()

    def on_load_problem(self) -> None:
        if not self.problem.value:
            return
        try:
            self.prompt.value = self.problems.prompt_text(
                self.bench.value, self.problem.value, self.mode.value
            )
        except Exception as e:
            self._error(e)

    def on_run_tests(self) -> dict | None:
        """Run the last output against the selected problem's tests; show the verdict."""
        if not self.problem.value:
            self.verdict.value = "<i>pick a problem first</i>"
            return None
        self.verdict.value = "<i>running tests in the sandbox ...</i>"
        try:
            v = self.problems.run_tests(
                self.bench.value,
                self.problem.value,
                self.last_output or self.output.value,
                self.mode.value,
            )
        except Exception as e:
            self.verdict.value = f"<span style='color:#b00'>could not run tests: {html.escape(f'{type(e).__name__}: {e}')}</span>"
            return None
        self.last_verdict = v
        color = "#080" if v["outcome"] == "passed" else "#b00"
        detail = (
            f"<pre>{html.escape(str(v.get('detail') or '')[:2000])}</pre>"
            if v.get("detail")
            else ""
        )
        self.verdict.value = (
            f"<b style='color:{color}'>{html.escape(v['outcome'])}</b> {self.problem.value}{detail}"
        )
        return v

    # ------------------------------------------------------------------ callbacks
    def _on_change(self, _change: dict) -> None:
        self._refresh_rendered()

    def _on_mode(self, change: dict) -> None:
        self.suffix.layout.display = "" if change["new"] == "fim" else "none"
        self.prompt.description = (
            "before"
            if change["new"] == "fim"
            else ("code" if change["new"] == "explain" else "prompt")
        )

    def _on_bench(self, _change: dict) -> None:
        self._refresh_problems()

    def _refresh_problems(self) -> None:
        try:
            ids = self.problems.task_ids(self.bench.value, self.problem_limit)
        except Exception as e:  # no data folder: the rest of the playground still works
            ids = []
            self.verdict.value = f"<i>{html.escape(self.bench.value)} problems unavailable: {html.escape(str(e))}</i>"
        self.problem.options = ids
        self.problem.value = ids[0] if ids else None

    def _refresh_rendered(self) -> None:
        """Show the prompt the current settings would send (without loading a model for 'complete')."""
        try:
            prompt = self.current_prompt() if self.mode.value != "complete" else self.prompt.value
            cfg = self.config()
        except Exception as e:
            self.rendered.value = (
                f"<span style='color:#b00'>{html.escape(f'{type(e).__name__}: {e}')}</span>"
            )
            return
        summary = ", ".join(f"{k}={v!r}" for k, v in asdict(cfg).items())
        self.rendered.value = (
            _pre(prompt) + f"<small><code>GenerationConfig({html.escape(summary)})</code></small>"
        )

    def _error(self, e: BaseException) -> None:
        msg = str(e) if isinstance(e, FileNotFoundError) else f"{type(e).__name__}: {e}"
        self.status.value = _err(f"error: {msg}")

    def display(self) -> None:
        from IPython.display import display

        display(self.widget)


def _stream(backend: Any, prompt: str, cfg, cancel: threading.Event | None = None) -> Iterator[str]:
    """Tokens from `backend.stream` (told to stop by `cancel` when it accepts it, else cut
    between pieces), or one chunk from `generate` for backends without it."""
    if not hasattr(backend, "stream"):
        yield backend.generate([prompt], cfg)[0][0].text
        return
    try:
        takes_cancel = "cancel" in inspect.signature(backend.stream).parameters
    except (TypeError, ValueError):
        takes_cancel = False
    pieces = (
        backend.stream(prompt, cfg, cancel=cancel) if takes_cancel else backend.stream(prompt, cfg)
    )
    for piece in pieces:
        yield piece
        if cancel is not None and cancel.is_set() and not takes_cancel:
            return


def _set_threads() -> int:
    """Size torch's CPU threads to the idle cores; returns the number used."""
    try:
        import torch
    except ImportError:
        return 1
    n = generation_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def _token_counter(backend: Any) -> Callable[[str], int]:
    """text -> its number of tokens with the backend's tokenizer (characters / 4 without one)."""
    tok = backend_tokenizer(backend)
    if tok is None:
        return lambda text: max(1, len(text) // 4) if text else 0

    def count(text: str) -> int:
        try:
            return len(tok(text, add_special_tokens=False)["input_ids"]) if text else 0
        except Exception:  # noqa: BLE001 - a count for the status line only
            return max(1, len(text) // 4)

    return count


def _err(text: str) -> str:
    return f"<span style='color:#b00'>{html.escape(text)}</span>"


def _pre(text: str) -> str:
    return f"<pre style='white-space:pre-wrap;background:#f6f6f6;padding:6px;margin:0'>{html.escape(text)}</pre>"


def _transcript(history: list[dict]) -> str:
    rows = [f"<p><b>{html.escape(m['role'])}:</b></p>{_pre(m['content'])}" for m in history]
    return "<b>conversation</b>" + "".join(rows)
