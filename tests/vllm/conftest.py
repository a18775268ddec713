"""Fixtures for the vLLM tests: the embedded SmolLM2 as a safetensors folder, a slurp drafter
built with its tokenizer, and few-shot slurp prompts of different lengths.

Run inside the environment of ``tests/vllm/setup_venv.sh`` (``make test`` does). vLLM's CPU
defaults (bf16, torch.compile) gave wrong text for SmolLM2 here, so every engine is float32 and
eager.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB per engine; tests run two at once
try:
    import vllm  # noqa: F401
except ImportError as e:  # a hard failure: these tests must never be skipped silently
    raise pytest.UsageError(
        f"tests/vllm needs vLLM ({e}): run them with the python that tests/vllm/setup_venv.sh "
        "prints, as `make test` does"
    ) from None

from tasc_rs.embedded import embedded_model_dir
from tasc_rs.hf.corpus import build_drafter
from tasc_rs.hf.demo import demo_corpus
from tasc_rs.hf.task import SLURP_INSTRUCTION, TaskPrompt, load_rows, shipped_task_path

ENGINE_ARGS: dict[str, Any] = {
    "dtype": "float32",
    "enforce_eager": True,
    "max_model_len": 2048,
    "seed": 0,
}


@pytest.fixture(scope="session")
def model_dir() -> str:
    path = embedded_model_dir()
    if not (path / "config.json").is_file():
        pytest.fail(
            f"the embedded model is missing at {path}: run "
            "`python -c 'from tasc_rs.embedded import ensure_embedded; ensure_embedded()'` "
            "in the main environment first (make test does)"
        )
    return str(path)


@pytest.fixture(scope="session")
def tokenizer(model_dir: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="session")
def drafter_path(tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("drafter") / "slurp.tasc"
    build_drafter(tokenizer, demo_corpus(), min_count=2, progress=False).save(path)
    return path


def shutdown(llm: Any) -> None:
    """Stops an engine's processes now (not at interpreter exit, when logging is gone)."""
    llm.llm_engine.engine_core.shutdown()


def slurp_prompts(
    tokenizer: Any, n: int, offset: int = 0, shots: int | None = None
) -> list[list[int]]:
    """``n`` few-shot slurp prompts with 0-3 shots (so their lengths differ), or ``shots`` each."""
    examples = load_rows(shipped_task_path("slurp", "train"), limit=3)
    rows = load_rows(shipped_task_path("slurp", "test"))[offset : offset + n]
    return [
        TaskPrompt(
            tokenizer,
            examples=examples[: i % 4 if shots is None else shots],
            instruction=SLURP_INSTRUCTION,
        )
        .ids(r["input"])[0]
        .tolist()
        for i, r in enumerate(rows)
    ]
