"""Fixtures for the Hugging Face layer tests."""

from __future__ import annotations

from typing import Any

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


@pytest.fixture(scope="module")
def small_vocab_model() -> Any:
    """A one-layer Llama over 8 tokens with peaked, seeded weights, for sampling tests."""
    import transformers

    torch.manual_seed(7)
    config = transformers.LlamaConfig(
        vocab_size=8,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        initializer_range=0.6,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=0,
    )
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    model.generation_config.pad_token_id = 0
    return model
