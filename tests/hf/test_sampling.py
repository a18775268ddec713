"""Speculative sampling must have exactly the target's output distribution."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import transformers
from hf_helpers import ScriptedDrafter, chi2_pvalue

from tasc_rs.hf import SpecStats, generate

pytestmark = pytest.mark.timeout(180)

V = 8
N = 2000
PROMPT = [3, 5, 2, 7]


def _arbitrary_drafter() -> ScriptedDrafter:
    """Deterministic drafts that are sometimes likely and sometimes not under the target."""

    def script(ctx: list[int], k: int) -> list[int]:
        out, c = [], list(ctx)
        for _ in range(k):
            c.append((sum(c) * 5 + 1) % V)
            out.append(c[-1])
        return out

    return ScriptedDrafter(script)


def _greedy_drafter(model: transformers.PreTrainedModel) -> ScriptedDrafter:
    """Drafts the target's own greedy continuation (likely tokens, often accepted)."""
    memo: dict[tuple[int, ...], list[int]] = {}

    def script(ctx: list[int], k: int) -> list[int]:
        key = (*ctx, k)
        if key not in memo:
            ids = torch.tensor([ctx])
            out = model.generate(ids, max_new_tokens=k, do_sample=False, eos_token_id=None)
            memo[key] = out[0, len(ctx) :].tolist()
        return memo[key]

    return ScriptedDrafter(script)


def _exact_pair_probs(model: transformers.PreTrainedModel, temperature: float) -> list[float]:
    with torch.no_grad():
        first = torch.softmax(model(torch.tensor([PROMPT])).logits[0, -1] / temperature, -1)
        pairs = torch.tensor([[*PROMPT, a] for a in range(V)])
        second = torch.softmax(model(pairs).logits[:, -1] / temperature, -1)
    return [float(first[a] * second[a, b]) for a in range(V) for b in range(V)]


def _spec_pairs(model, drafter, seed: int, **kwargs) -> tuple[Counter[tuple[int, int]], SpecStats]:
    ids = torch.tensor([PROMPT]).repeat(N, 1)
    out = generate(
        model,
        ids,
        drafter,
        do_sample=True,
        max_new_tokens=2,
        eos_token_id=None,
        num_draft_tokens=2,
        min_prob=0.0,
        seed=seed,
        **kwargs,
    )
    pairs = Counter(tuple(row) for row in out.sequences[:, len(PROMPT) :].tolist())
    return pairs, out.stats


@pytest.mark.parametrize("which", ["arbitrary", "greedy"])
def test_spec_sampling_matches_exact_distribution(small_vocab_model, which: str) -> None:
    drafter = _arbitrary_drafter() if which == "arbitrary" else _greedy_drafter(small_vocab_model)
    pairs, stats = _spec_pairs(small_vocab_model, drafter, seed=11, temperature=0.7)
    assert 0 < stats.accepted < stats.drafted  # both the accept and the resample paths ran
    expected = [p * N for p in _exact_pair_probs(small_vocab_model, 0.7)]
    observed = [pairs.get((a, b), 0) for a in range(V) for b in range(V)]
    assert chi2_pvalue(observed, expected) > 1e-3


def test_spec_sampling_matches_plain_sampling_with_top_k_top_p(small_vocab_model) -> None:
    kwargs = {"temperature": 1.3, "top_k": 5, "top_p": 0.9}
    spec, _ = _spec_pairs(small_vocab_model, _arbitrary_drafter(), seed=5, **kwargs)
    torch.manual_seed(5)
    plain_out = small_vocab_model.generate(
        torch.tensor([PROMPT]).repeat(N, 1),
        do_sample=True,
        max_new_tokens=2,
        eos_token_id=None,
        **kwargs,
    )
    plain = Counter(tuple(r) for r in plain_out[:, len(PROMPT) :].tolist())
    cells = sorted(set(spec) | set(plain))
    # Two-sample test: compare spec counts against the pooled estimate of the shared distribution.
    pooled = [(spec.get(c, 0) + plain.get(c, 0)) / 2 for c in cells]
    assert chi2_pvalue([spec.get(c, 0) for c in cells], pooled) > 1e-3
    top_k_outside = [c for c in spec if c not in plain and spec[c] > 20]
    assert not top_k_outside


def test_seeded_sampling_is_reproducible(small_vocab_model) -> None:
    ids = torch.tensor([PROMPT]).repeat(200, 1)

    def run(seed: int) -> torch.Tensor:
        kwargs = {"do_sample": True, "max_new_tokens": 3, "eos_token_id": None}
        out = generate(
            small_vocab_model,
            ids,
            _arbitrary_drafter(),
            num_draft_tokens=3,
            min_prob=0.0,
            seed=seed,
            **kwargs,
        )
        return out.sequences

    first = run(3)
    assert torch.equal(first, run(3))
    assert not torch.equal(first, run(4))
