"""Suite-wide collection rules and shared fixtures.

``tests/vllm`` runs inside the vLLM environment that ``tests/vllm/setup_venv.sh`` builds (vLLM
pins its own torch and transformers); ``make test`` runs it there with ``TASC_VLLM_TESTS=1``.
Everywhere else it is left out of collection rather than skipped test by test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

collect_ignore = [] if os.environ.get("TASC_VLLM_TESTS") == "1" else ["vllm"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama with SmolLM2's real tokenizer."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tasc_rs.embedded import ensure_embedded

    tok = transformers.AutoTokenizer.from_pretrained(str(ensure_embedded()))
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=True,
    )
    path = tmp_path_factory.mktemp("tiny")
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path
