"""Helpers for the Hugging Face layer tests: tiny seeded models and scripted drafters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hf_fake_drafter import FakeDrafter  # noqa: E402

VOCAB = 96


def real_or_fake_drafter() -> Any:
    """``tasc_rs.NgramDrafter`` when the extension is built, else the pure-Python fake."""
    try:
        from tasc_rs import NgramDrafter

        return NgramDrafter
    except ImportError:
        return FakeDrafter


def _tiny_config(arch: str) -> Any:
    common = {"vocab_size": VOCAB, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 0}
    llama_like = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "initializer_range": 0.3,
        **common,
    }
    if arch == "llama":
        return transformers.LlamaConfig(**llama_like)
    if arch == "qwen2":
        return transformers.Qwen2Config(**llama_like)
    if arch == "gpt2":
        return transformers.GPT2Config(
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=512,
            initializer_range=0.3,
            **common,
        )
    raise ValueError(arch)


_MODELS: dict[str, Any] = {}


def tiny_model(arch: str) -> Any:
    """A seeded random causal LM of the given architecture (cached per session)."""
    if arch not in _MODELS:
        torch.manual_seed(1234)
        model = transformers.AutoModelForCausalLM.from_config(_tiny_config(arch))
        model.eval()
        model.generation_config.eos_token_id = 1
        model.generation_config.pad_token_id = 0
        _MODELS[arch] = model
    return _MODELS[arch]


def prompts(n: int, seed: int = 0, length: int = 12) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(2, VOCAB, size=length).tolist() for _ in range(n)]


def plain_greedy(model: Any, prompt: Sequence[int], **kwargs: Any) -> list[int]:
    ids = torch.tensor([list(prompt)])
    out = model.generate(ids, do_sample=False, **kwargs)
    return out[0].tolist()


class ScriptedSession:
    """Proposes continuations computed by a callback from the current context."""

    def __init__(
        self, script: Callable[[list[int], int], list[int]], prompt: Sequence[int]
    ) -> None:
        self.script = script
        self.context = [int(t) for t in prompt]

    def extend(self, ids: Sequence[int]) -> None:
        self.context.extend(int(t) for t in ids)

    def propose(self, k: int, min_prob: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        draft = self.script(self.context, k)[:k]
        return np.asarray(draft, dtype=np.int64), np.ones(len(draft))


class ScriptedDrafter:
    """Drafter whose proposals come from ``script(context, k)``."""

    def __init__(self, script: Callable[[list[int], int], list[int]]) -> None:
        self.script = script

    def session(self, prompt_ids: Sequence[int]) -> ScriptedSession:
        return ScriptedSession(self.script, prompt_ids)


def oracle(reference: Sequence[int]) -> ScriptedDrafter:
    """Drafts the reference continuation: every draft token is right (until it runs out)."""
    ref = list(reference)
    return ScriptedDrafter(
        lambda ctx, k: ref[len(ctx) : len(ctx) + k] if ref[: len(ctx)] == ctx else []
    )


def adversary(reference: Sequence[int]) -> ScriptedDrafter:
    """Drafts a wrong first token every time, so every draft is fully rejected."""
    ref = list(reference)

    def script(ctx: list[int], k: int) -> list[int]:
        if len(ctx) >= len(ref):
            return []
        wrong = (ref[len(ctx)] + 1) % VOCAB
        return [wrong, *ref[len(ctx) + 1 : len(ctx) + k]]

    return ScriptedDrafter(script)


def chi2_pvalue(observed: Sequence[float], expected: Sequence[float]) -> float:
    """Pearson chi-square p-value, pooling cells with expected count < 5."""
    obs, exp, pool_o, pool_e = [], [], 0.0, 0.0
    for o, e in zip(observed, expected, strict=True):
        if e < 5:
            pool_o, pool_e = pool_o + o, pool_e + e
        else:
            obs.append(o)
            exp.append(e)
    if pool_e > 0:
        obs.append(pool_o)
        exp.append(pool_e)
    stat = sum((o - e) ** 2 / e for o, e in zip(obs, exp, strict=True))
    return float(
        torch.special.gammaincc(
            torch.tensor((len(obs) - 1) / 2, dtype=torch.float64),
            torch.tensor(stat / 2, dtype=torch.float64),
        )
    )
