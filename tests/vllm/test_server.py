"""tasc-rs in vLLM's OpenAI-compatible server: concurrent chat completions with the tasc-rs
proposer answer exactly as a server without speculation, drafts are accepted and finished
responses learned; a bad drafter stops the server at start-up with a clear error.

Each server runs as its own process group on 127.0.0.1 and is stopped by its pid.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benches"))
from _vllm_server import ServerError, command, free_port, launch, serving, stop

from tasc_rs import NgramDrafter
from tasc_rs.hf.task import SLURP_INSTRUCTION, TaskPrompt, load_rows, shipped_task_path
from tasc_rs.vllm import CONFIG_ENV, DRAFTER_ENV, speculative_config

START_TIMEOUT = 300.0
CONCURRENCY = 4


def server_args(spec: bool) -> list[str]:
    args = [
        "--dtype", "float32", "--enforce-eager", "--max-model-len", "2048", "--seed", "0",
        "--max-num-seqs", str(CONCURRENCY), "--served-model-name", "m",
    ]  # fmt: skip
    if spec:
        args += ["--speculative-config", json.dumps(speculative_config(k=8))]
    return args


@contextmanager
def server(
    model_dir: str, log: Path, spec: bool, env: dict[str, str] | None = None
) -> Iterator[str]:
    """A server ready to answer (see ``_vllm_server.serving``); a failed start fails the test."""
    try:
        with serving(model_dir, server_args(spec), env or {}, log, START_TIMEOUT) as url:
            yield url
    except ServerError as e:
        pytest.fail(str(e))


def failed_start(model_dir: str, log: Path, env: dict[str, str]) -> tuple[int, str]:
    """Starts a server that must refuse to start; returns its exit code and output."""
    proc = launch(command(model_dir, free_port(), *server_args(spec=True)), env, log)
    try:
        code = proc.wait(timeout=START_TIMEOUT)
    finally:
        stop(proc)
    return code, log.read_text(errors="replace")


def chat(url: str, messages: list[dict[str, str]]) -> str:
    body = json.dumps(
        {"model": "m", "messages": messages, "temperature": 0, "max_tokens": 48}
    ).encode()
    req = urllib.request.Request(
        f"{url}/v1/chat/completions", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=300) as r:
        data = json.loads(r.read())
    return str(data["choices"][0]["message"]["content"])


def answers(url: str, conversations: list[list[dict[str, str]]]) -> list[str]:
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(lambda m: chat(url, m), conversations))


def spec_counters(url: str) -> tuple[float, float]:
    """(draft tokens, accepted tokens) from the server's Prometheus metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as r:
        text = r.read().decode()

    def total(name: str) -> float:
        pattern = rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.eE+-]+)$"
        return sum(float(m) for m in re.findall(pattern, text, flags=re.M))

    return (
        total("vllm:spec_decode_num_draft_tokens_total"),
        total("vllm:spec_decode_num_accepted_tokens_total"),
    )


@pytest.fixture(scope="module")
def conversations(tokenizer: Any) -> list[list[dict[str, str]]]:
    shots = load_rows(shipped_task_path("slurp", "train"), limit=3)
    rows = load_rows(shipped_task_path("slurp", "test"))[:8]
    return [
        TaskPrompt(tokenizer, examples=shots[: 1 + i % 3], instruction=SLURP_INSTRUCTION).messages(
            r["input"]
        )
        for i, r in enumerate(rows)
    ]


def test_server_answers_identically_and_learns(
    model_dir: str, drafter_path: Path, conversations: Any, tmp_path: Path
) -> None:
    config = json.dumps({"drafter": str(drafter_path), "stale_steps": 4})
    with server(model_dir, tmp_path / "spec.log", spec=True, env={CONFIG_ENV: config}) as url:
        first = answers(url, conversations)
        d1, a1 = spec_counters(url)
        second = answers(url, conversations)
        _, a2 = spec_counters(url)
    log = (tmp_path / "spec.log").read_text(errors="replace")
    assert "tasc_rs: drafting with" in log
    assert "drafting failed" not in log
    with server(model_dir, tmp_path / "plain.log", spec=False) as url:
        want = answers(url, conversations)
    assert first == want
    assert second == want
    assert d1 > 0 and a1 > 0, "the proposer drafted and the server accepted"
    # the second pass drafts from the learned first-pass responses
    assert a2 - a1 > a1, (a1, a2 - a1)


def test_bad_drafter_path_fails_at_start(model_dir: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.tasc"
    code, log = failed_start(model_dir, tmp_path / "bad.log", {DRAFTER_ENV: str(missing)})
    assert code != 0
    assert "cannot load the drafter" in log and str(missing) in log


def test_drafter_of_another_vocabulary_fails_at_start(model_dir: str, tmp_path: Path) -> None:
    other = tmp_path / "other.tasc"
    NgramDrafter.from_corpus([[1, 2, 3, 4]] * 5, vocab_size=1000).save(other)
    code, log = failed_start(model_dir, tmp_path / "vocab.log", {DRAFTER_ENV: str(other)})
    assert code != 0
    assert "built with a vocabulary of 1000 tokens" in log
