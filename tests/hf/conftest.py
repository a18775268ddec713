"""Fixtures for the Hugging Face layer tests."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread() -> None:
    """Tiny models run much faster on one thread (no thread wake-ups per 16-wide matmul)."""
    torch.set_num_threads(1)


@pytest.fixture(params=["llama", "qwen2", "gpt2"])
def arch(request: pytest.FixtureRequest) -> str:
    """Architecture name of a tiny random model (see ``hf_helpers.tiny_model``)."""
    return request.param
