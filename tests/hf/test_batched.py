"""The batched loop: one forward pass per step for all rows, each row as if decoded alone.

Greedy output must be token-identical, row by row, to plain batched ``model.generate`` on the
same left-padded batch and to each row decoded alone; rows finish at different steps (EOS,
max_new_tokens) with drafts fully accepted, fully rejected or cut in the middle.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hf_helpers import (
    VOCAB,
    ScriptedDrafter,
    plain_greedy,
    prompts,
    real_or_fake_drafter,
    tiny_model,
)

from tasc_rs.hf import generate
from tasc_rs.hf.batched import batch_width

pytestmark = pytest.mark.timeout(300)


def padded(batch: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in batch)
    ids = torch.tensor([[0] * (width - len(p)) + p for p in batch])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch])
    return ids, mask


def mixed_prompts(n: int, seed: int) -> list[list[int]]:
    """``n`` prompts of 3 to 14 tokens."""
    return [p[: 3 + (seed + i * 5) % 12] for i, p in enumerate(prompts(n, seed=seed, length=14))]


def continuations(model: Any, batch: list[list[int]], **kwargs: Any) -> list[list[int]]:
    """Each row decoded alone by plain greedy ``model.generate``: its new tokens."""
    return [plain_greedy(model, p, **kwargs)[len(p) :] for p in batch]


def new_tokens(out: torch.Tensor, width: int, lengths: list[int]) -> list[list[int]]:
    return [row[width : width + n] for row, n in zip(out.tolist(), lengths, strict=True)]


@pytest.mark.parametrize("size", [1, 2, 7, 16])
def test_greedy_rows_match_plain_batched_generate_and_each_row_alone(arch: str, size: int) -> None:
    model = tiny_model(arch)
    train = [plain_greedy(model, p, max_new_tokens=30)[12:] for p in prompts(12, seed=1)]
    drafter = real_or_fake_drafter().from_corpus(train, n_max=4, min_count=1)
    batch = mixed_prompts(size, seed=size)
    ids, mask = padded(batch)
    alone = continuations(model, batch, max_new_tokens=24)
    plain = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=24)
    out = generate(
        model, ids, drafter, attention_mask=mask, do_sample=False, max_new_tokens=24, min_prob=0.0
    )
    lengths = [len(a) for a in alone]
    assert new_tokens(out.sequences, ids.shape[1], lengths) == alone
    assert new_tokens(plain, ids.shape[1], lengths) == alone
    # rows that stopped early are right-padded with the pad id, as generate does
    for row, n in zip(out.sequences.tolist(), lengths, strict=True):
        assert all(t == 0 for t in row[ids.shape[1] + n :])
    stats = out.stats
    assert stats.sequences == size and len(stats.rows) == size
    assert stats.new_tokens == sum(lengths) == sum(r.new_tokens for r in stats.rows)
    assert stats.forward_passes == max(r.forward_passes for r in stats.rows)
    assert stats.drafted == sum(r.drafted for r in stats.rows)


def _per_row_script(references: dict[tuple[int, ...], list[int]], wrong: bool) -> ScriptedDrafter:
    """Drafts each row's own reference continuation (or a wrong first token every time)."""

    def script(ctx: list[int], k: int) -> list[int]:
        for prompt, ref in references.items():
            full = [*prompt, *ref]
            if full[: len(ctx)] == ctx and len(ctx) < len(full):
                draft = full[len(ctx) : len(ctx) + k]
                if wrong:
                    draft[0] = (draft[0] + 1) % VOCAB
                return draft
        return []

    return ScriptedDrafter(script)


@pytest.mark.parametrize("wrong", [False, True], ids=["accepted", "rejected"])
def test_rows_fully_accepted_or_fully_rejected(arch: str, wrong: bool) -> None:
    model = tiny_model(arch)
    batch = mixed_prompts(5, seed=21)
    ids, mask = padded(batch)
    alone = continuations(model, batch, max_new_tokens=20, eos_token_id=None)
    drafter = _per_row_script({tuple(p): a for p, a in zip(batch, alone, strict=True)}, wrong)
    out = generate(
        model,
        ids,
        drafter,
        attention_mask=mask,
        do_sample=False,
        max_new_tokens=20,
        eos_token_id=None,
        num_draft_tokens=6,
        min_prob=0.0,
        verify_cost=None,
    )
    assert new_tokens(out.sequences, ids.shape[1], [20] * 5) == alone
    if wrong:
        assert out.stats.accepted == 0 and out.stats.drafted > 0
        assert out.stats.forward_passes == 20  # one token per step, as plain decoding
    else:
        assert out.stats.accepted == out.stats.drafted > 0
        assert out.stats.forward_passes == -(-20 // 7)  # 6 drafted + 1 per step


@pytest.mark.parametrize("max_new", [5, 9, 13])
def test_rows_finish_mid_draft_at_different_steps(arch: str, max_new: int) -> None:
    model = tiny_model(arch)
    batch = mixed_prompts(6, seed=33)
    ids, mask = padded(batch)
    long = continuations(model, batch, max_new_tokens=30, eos_token_id=None)
    # an EOS id that the rows reach at different points (some never)
    eos = long[0][max_new // 2]
    alone = continuations(model, batch, max_new_tokens=max_new, eos_token_id=eos)
    assert len({len(a) for a in alone}) > 1  # rows really finish at different steps
    drafter = _per_row_script({tuple(p): a for p, a in zip(batch, long, strict=True)}, False)
    out = generate(
        model,
        ids,
        drafter,
        attention_mask=mask,
        do_sample=False,
        max_new_tokens=max_new,
        eos_token_id=eos,
        num_draft_tokens=8,
        min_prob=0.0,
        verify_cost=None,
    )
    lengths = [len(a) for a in alone]
    assert new_tokens(out.sequences, ids.shape[1], lengths) == alone
    assert [r.new_tokens for r in out.stats.rows] == lengths


def test_streamer_needs_a_batch_of_one(arch: str) -> None:
    from tasc_rs.errors import InvalidInputError

    model = tiny_model(arch)
    ids, mask = padded(mixed_prompts(2, seed=3))
    drafter = real_or_fake_drafter().from_corpus([[5, 6, 7]] * 3, min_count=1)
    with pytest.raises(InvalidInputError, match="batch of 1"):
        generate(model, ids, drafter, attention_mask=mask, max_new_tokens=3, streamer=object())


def test_batch_width_weighs_expected_tokens_against_the_step_cost() -> None:
    import numpy as np

    sure, unsure = np.array([0.95] * 6), np.array([0.3, 0.1, 0.1])
    flat = (1.0, 1.01, 1.02, 1.03, 1.04, 1.05, 1.06)
    steep = (1.0, 1.6, 2.2, 2.8, 3.4, 4.0, 4.6)
    assert batch_width([([1] * 6, sure)] * 4, flat) == 6  # GPU-like: draft all
    assert batch_width([([1] * 3, unsure)] * 4, steep) == 0  # nothing pays: plain decoding
    assert batch_width([([1] * 6, sure), ([1] * 3, unsure)], None) == 6  # no profile: longest
    assert batch_width([([], np.zeros(0))] * 3, flat) == 0
