"""codebench.generate: the HF backend on the session's tiny model, the OpenAI backend on a local server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from codebench import models
from codebench.generate import (
    Completion,
    GenerationConfig,
    HFBackend,
    OpenAIBackend,
    find_stop,
    make_backend,
)

PROMPTS = [
    "def add(a, b):\n",
    "import os\n\n\nclass Config:\n    def __init__(self, path):\n        ",
    "x",
    "    for i in range(10):\n",
]


@pytest.fixture(scope="module")
def backend(tiny_run):
    return HFBackend("tiny", run=tiny_run, device="cpu", batch_size=8)


def _greedy(backend, prompts, **kw):
    return [
        o[0]
        for o in backend.generate(
            prompts, GenerationConfig(max_new_tokens=kw.pop("max_new_tokens", 24), **kw)
        )
    ]


# --------------------------------------------------------------------------- stop strings
# The session's tiny model is barely trained: its greedy text is mostly blanks, so the stop
# tests sample (one prompt, fixed seed: the same tokens until a stop cuts the row short).
def _sampled(backend, prompt, **kw):
    """(sampling settings, completion) for the first seed whose sample has some length and text."""
    for seed in range(50):
        sampled = {"temperature": 0.9, "seed": seed}
        c = _greedy(backend, [prompt], max_new_tokens=40, **sampled, **kw)[0]
        if len(c.text) > 12 and len(c.text.split()) > 2:
            return sampled, c
    raise AssertionError("no usable sample in 50 seeds")


def test_stop_string_cuts_output_at_first_occurrence(backend):
    SAMPLED, base = _sampled(backend, PROMPTS[0])
    assert base.finish_reason in ("length", "stop") and len(base.text) > 12
    tok = backend.tokenizer
    # a stop string of several tokens from the middle of the sample, first occurring there
    stop = next(
        base.text[k : k + 4]
        for k in range(2, len(base.text) - 4)
        if base.text[k : k + 4].strip()
        and base.text.find(base.text[k : k + 4]) == k
        and len(tok(base.text[k : k + 4], add_special_tokens=False)["input_ids"]) >= 2
    )
    got = _greedy(backend, PROMPTS[:1], max_new_tokens=40, stop=["never-there", stop], **SAMPLED)[0]
    cut = base.text.find(stop)
    assert got.text == base.text[:cut]
    assert got.finish_reason == "stop"
    kept = backend.tokenizer(got.text, add_special_tokens=False)["input_ids"]
    assert abs(got.n_tokens - len(kept)) <= 1 and got.n_tokens < base.n_tokens


def test_stop_in_prompt_or_across_prompt_boundary_does_not_stop(backend):
    prompt = PROMPTS[1]
    SAMPLED, base = _sampled(backend, prompt)
    in_prompt = "class Config"
    across = prompt[-3:] + base.text[:2]
    assert in_prompt not in base.text and across not in base.text
    got = _greedy(backend, [prompt], max_new_tokens=40, stop=[in_prompt, across], **SAMPLED)[0]
    assert got == base


def test_token_accurate_truncation_inside_string_literal(backend):
    """A stop string inside a string literal is still a stop: the protocol is textual."""
    tok = backend.tokenizer
    text = 'print("a\\ndef x")\nreturn 1\ndef g():\n'
    ids = tok(text, add_special_tokens=False)["input_ids"]
    c = backend._finish([], ids, ["\ndef", "\nclass"], max_new=100)
    assert c == Completion('print("a\\ndef x")\nreturn 1', "stop", c.n_tokens)
    needed = min(k for k in range(len(ids) + 1) if len(tok.decode(ids[:k])) >= len(c.text))
    assert c.n_tokens == needed
    eos = tok.eos_token_id
    assert backend._finish([], ids + [eos, 7, 7], [], max_new=100) == Completion(
        text, "stop", len(ids)
    )
    assert backend._finish([], ids, [], max_new=len(ids)) == Completion(text, "length", len(ids))
    assert backend._finish([], ids, ["print"], max_new=100) == Completion("", "stop", 0)
    assert find_stop("abcabc", ["c", "b", ""]) == 1 and find_stop("abc", []) == -1


# --------------------------------------------------------------------------- sampling, seeds, batching
def test_n_samples_and_seed_reproducibility(backend):
    cfg = GenerationConfig(max_new_tokens=12, temperature=1.0, n=3, seed=7)
    a = backend.generate(PROMPTS, cfg)
    assert [len(x) for x in a] == [3] * len(PROMPTS)
    assert len({c.text for x in a for c in x}) > len(PROMPTS)  # samples differ
    assert backend.generate(PROMPTS, cfg) == a
    other = backend.generate(
        PROMPTS, GenerationConfig(max_new_tokens=12, temperature=1.0, n=3, seed=8)
    )
    assert other != a


def test_greedy_is_deterministic_and_filters_pass_through(backend):
    greedy = _greedy(backend, PROMPTS)
    assert _greedy(backend, PROMPTS) == greedy
    twice = backend.generate(PROMPTS[:2], GenerationConfig(max_new_tokens=24, n=2))
    assert all(x[0] == x[1] == g for x, g in zip(twice, greedy, strict=False))
    # top_k=1 and a vanishing top_p leave only the argmax: sampling equals greedy
    for kw in ({"top_k": 1}, {"top_p": 1e-9}):
        sampled = backend.generate(
            PROMPTS, GenerationConfig(max_new_tokens=24, temperature=1.5, seed=3, **kw)
        )
        assert [x[0] for x in sampled] == greedy
    penalised = _greedy(backend, PROMPTS, repetition_penalty=3.0)
    assert penalised != greedy


def test_batched_equals_one_at_a_time(tiny_run, backend):
    single = HFBackend(backend.model, backend.tokenizer, batch_size=1)
    assert _greedy(backend, PROMPTS, max_new_tokens=16) == _greedy(
        single, PROMPTS, max_new_tokens=16
    )


def test_empty_prompt_and_empty_list(backend):
    assert backend.generate([], GenerationConfig()) == []
    (c,) = _greedy(backend, [""], max_new_tokens=4)
    assert c.finish_reason in ("stop", "length") and c.n_tokens <= 4


def test_stream_matches_generate(backend):
    cfg = GenerationConfig(max_new_tokens=30, stop=["\n\n"])
    full = backend.generate([PROMPTS[1]], cfg)[0][0].text
    pieces = list(backend.stream(PROMPTS[1], cfg))
    assert "".join(pieces) == full


def test_chat_prompt_and_cache_resume(tiny_run, tmp_path):
    path = tmp_path / "cache.jsonl"
    b1 = HFBackend("tiny", run=tiny_run, device="cpu", cache=path)
    assert b1.chat_prompt([{"role": "user", "content": "hi"}]) == models.apply_chat(
        None, [{"role": "user", "content": "hi"}]
    )
    cfg = GenerationConfig(max_new_tokens=6)
    first = b1.generate(PROMPTS[:2], cfg)
    b1.close()
    assert len(path.read_text().splitlines()) == 2
    b2 = HFBackend("tiny", run=tiny_run, device="cpu", cache=path)
    b2.generate_ids = None  # any model call would now fail: results must come from the cache
    assert b2.generate(PROMPTS[:2], cfg) == first
    b2.close()


def test_make_backend_errors():
    with pytest.raises(ValueError, match="unknown generation backend"):
        make_backend("nope")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="vLLM is not installed"):
            make_backend("vllm", "tiny")


# --------------------------------------------------------------------------- OpenAI-compatible server
class FakeOpenAI(BaseHTTPRequestHandler):
    """Completions server with scripted failures keyed by prompt text."""

    calls: list[dict] = []
    failures: dict[str, list[int]] = {}
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body.get("prompt") or body["messages"][-1]["content"]
        with self.lock:
            self.calls.append({"path": self.path, **body})
            script = self.failures.get(prompt)
            status = script.pop(0) if script else 200
        if prompt == "slow":
            time.sleep(0.5)
        if status != 200:
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(b'{"error": "scripted"}')
            return
        n = min(body.get("n", 1), 2)  # like servers that cap n
        text = f"echo {prompt} seed={body.get('seed')}\nSTOP tail"
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for i in range(0, len(text), 3):
                self.wfile.write(
                    f"data: {json.dumps({'choices': [{'text': text[i : i + 3]}]})}\n\n".encode()
                )
            self.wfile.write(b"data: [DONE]\n\n")
            return
        key = "message" if "messages" in body else "text"
        choices = [
            {
                "index": i,
                key: {"role": "assistant", "content": text} if key == "message" else text,
                "finish_reason": "length",
            }
            for i in range(n)
        ]
        out = json.dumps({"choices": choices, "usage": {"completion_tokens": 5 * n}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture
def server():
    FakeOpenAI.calls, FakeOpenAI.failures = [], {}
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def _client(url, **kw):
    return OpenAIBackend(
        "fake-model",
        url,
        backoff=0.01,
        max_backoff=0.05,
        max_retries=kw.pop("max_retries", 3),
        **kw,
    )


def test_openai_completions_retry_and_errors(server):
    FakeOpenAI.failures = {
        "p-429": [429],
        "p-5xx": [503, 502],
        "p-dead": [500] * 10,
        "p-400": [400],
    }
    b = _client(server, concurrency=4)
    cfg = GenerationConfig(max_new_tokens=8, stop=["\nSTOP"], n=1, seed=5)
    out = b.generate(["ok", "p-429", "p-5xx", "p-dead", "p-400"], cfg)
    assert out[0] == [Completion("echo ok seed=5", "stop", 5)]
    assert out[1][0].text == "echo p-429 seed=5" and out[2][0].finish_reason == "stop"
    assert (
        out[3][0].finish_reason == "error"
        and "HTTP 500" in out[3][0].error
        and "4 attempts" in out[3][0].error
    )
    assert out[4][0].finish_reason == "error" and "HTTP 400" in out[4][0].error
    counts = {
        p: sum(c.get("prompt") == p for c in FakeOpenAI.calls)
        for p in ("ok", "p-429", "p-5xx", "p-dead", "p-400")
    }
    assert counts == {"ok": 1, "p-429": 2, "p-5xx": 3, "p-dead": 4, "p-400": 1}
    sent = next(c for c in FakeOpenAI.calls if c["prompt"] == "ok")
    assert (
        sent["stop"] == ["\nSTOP"]
        and sent["max_tokens"] == 8
        and sent["model"] == "fake-model"
        and "top_k" not in sent
    )


def test_openai_n_samples_chat_and_stream(server):
    b = _client(server)
    out = b.generate(["q"], GenerationConfig(n=3, seed=10, top_k=5, repetition_penalty=1.1))[0]
    assert len(out) == 3 and [c.finish_reason for c in out] == ["length"] * 3
    assert [c.text.split("seed=")[1].split("\n")[0] for c in out] == [
        "10",
        "10",
        "12",
    ]  # the server capped n at 2: asked again
    assert FakeOpenAI.calls[0]["top_k"] == 5 and FakeOpenAI.calls[1]["n"] == 1
    chat = _client(server, chat=True)
    (c,) = chat.generate(["hello"], GenerationConfig(stop=["STOP"]))[0]
    assert (
        c.text == "echo hello seed=0\n" and FakeOpenAI.calls[-1]["path"] == "/v1/chat/completions"
    )
    assert "".join(b.stream("s", GenerationConfig(stop=["\nSTOP"]))) == "echo s seed=0"


def test_openai_timeout_and_unreachable(server):
    b = _client(server, timeout=0.1, max_retries=1)
    (c,) = b.generate(["slow"], GenerationConfig())[0]
    assert c.finish_reason == "error" and "2 attempts" in c.error
    dead = _client("http://127.0.0.1:9/v1", max_retries=1)
    (c,) = dead.generate(["x"], GenerationConfig())[0]
    assert c.finish_reason == "error" and "127.0.0.1:9" in c.error


def test_openai_resume_repeats_only_unfinished_prompts(server, tmp_path):
    cache = tmp_path / "samples.jsonl"
    FakeOpenAI.failures = {"b": [500] * 4}
    b = _client(server, cache=cache)
    first = b.generate(["a", "b", "c"], GenerationConfig(n=2))
    assert first[1][0].finish_reason == "error" and first[0][0].finish_reason == "length"
    b.close()
    before = len(FakeOpenAI.calls)
    b2 = _client(server, cache=cache)
    second = b2.generate(["a", "b", "c"], GenerationConfig(n=2))
    b2.close()
    assert [c.get("prompt") for c in FakeOpenAI.calls[before:]] == ["b"]
    assert (
        second[0] == first[0] and second[2] == first[2] and second[1][0].finish_reason == "length"
    )
    assert len(cache.read_text().splitlines()) == 3


@pytest.mark.gpu
def test_continuous_batching_on_cuda_matches_padded_greedy(tiny_model_dir):
    cb = HFBackend(str(tiny_model_dir), device="cuda", dtype="float32", continuous_batching=True)
    calls = []
    original = cb.model.generate_batch
    cb.model.generate_batch = lambda *a, **k: calls.append(1) or original(*a, **k)
    padded = HFBackend(cb.model, cb.tokenizer, batch_size=8, continuous_batching=False)
    cfg = GenerationConfig(max_new_tokens=16, stop=["\n\n"])
    got, want = cb.generate(PROMPTS, cfg), padded.generate(PROMPTS, cfg)
    assert calls, "continuous batching was not used"
    assert all(c.finish_reason in ("stop", "length") for o in got for c in o)
    assert sum(a == b for a, b in zip(got, want, strict=True)) >= len(PROMPTS) - 1
