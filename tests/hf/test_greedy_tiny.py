"""Greedy TASC-spec must be token-identical to ``model.generate(do_sample=False)``."""

from __future__ import annotations

import pytest
import torch
from hf_helpers import adversary, oracle, plain_greedy, prompts, real_or_fake_drafter, tiny_model

from tasc_rs.hf import SpecStats, generate, speculative_decoding

pytestmark = pytest.mark.timeout(120)


def _spec(model, prompt, drafter, **kwargs):
    out = generate(model, torch.tensor([prompt]), drafter, do_sample=False, **kwargs)
    return out.sequences[0].tolist(), out.stats


@pytest.mark.parametrize("k", [1, 4, 8])
def test_corpus_drafter_matches_generate(arch: str, k: int) -> None:
    model = tiny_model(arch)
    train = [plain_greedy(model, p, max_new_tokens=40)[12:] for p in prompts(12, seed=1)]
    drafter = real_or_fake_drafter().from_corpus(train, n_max=4, min_count=1)
    total = SpecStats()
    for prompt in prompts(4, seed=2):
        expected = plain_greedy(model, prompt, max_new_tokens=40)
        got, stats = _spec(
            model, prompt, drafter, max_new_tokens=40, num_draft_tokens=k, min_prob=0.0
        )
        assert got == expected
        total += stats
    assert total.drafted > 0
    assert total.forward_passes <= total.new_tokens


def test_fully_accepted_drafts(arch: str) -> None:
    model = tiny_model(arch)
    prompt = prompts(1, seed=3)[0]
    expected = plain_greedy(model, prompt, max_new_tokens=30, eos_token_id=None)
    got, stats = _spec(
        model,
        prompt,
        oracle(expected),
        max_new_tokens=30,
        eos_token_id=None,
        num_draft_tokens=6,
        min_prob=0.0,
    )
    assert got == expected
    assert stats.drafted > 0 and stats.accepted == stats.drafted
    assert stats.forward_passes == -(-30 // 7)  # the prefill carries a draft too: 7 tokens per pass
    assert stats.acceptance_by_position == [1.0] * 6


def test_fully_rejected_drafts(arch: str) -> None:
    model = tiny_model(arch)
    prompt = prompts(1, seed=4)[0]
    expected = plain_greedy(model, prompt, max_new_tokens=25, eos_token_id=None)
    got, stats = _spec(
        model,
        prompt,
        adversary(expected),
        max_new_tokens=25,
        eos_token_id=None,
        num_draft_tokens=5,
        min_prob=0.0,
    )
    assert got == expected
    assert stats.drafted > 0 and stats.accepted == 0
    assert stats.forward_passes == 25


@pytest.mark.parametrize("eos_at", [0, 3, 7])
def test_eos_in_the_middle_of_a_draft(arch: str, eos_at: int) -> None:
    model = tiny_model(arch)
    prompt = prompts(1, seed=5)[0]
    reference = plain_greedy(model, prompt, max_new_tokens=30, eos_token_id=None)
    eos = reference[len(prompt) + eos_at]
    other_eos = (eos + 7) % 96
    expected = plain_greedy(model, prompt, max_new_tokens=30, eos_token_id=[other_eos, eos])
    assert expected[-1] in (eos, other_eos) and len(expected) <= len(prompt) + eos_at + 1
    got, stats = _spec(
        model,
        prompt,
        oracle(reference),
        max_new_tokens=30,
        eos_token_id=[other_eos, eos],
        num_draft_tokens=8,
        min_prob=0.0,
    )
    assert got == expected
    assert stats.new_tokens == len(expected) - len(prompt)
    # drafts end with the EOS: nothing after it is ever verified
    assert stats.drafted <= stats.new_tokens


@pytest.mark.parametrize("max_new", [1, 2, 5, 11])
def test_max_new_tokens_in_the_middle_of_a_draft(arch: str, max_new: int) -> None:
    model = tiny_model(arch)
    prompt = prompts(1, seed=6)[0]
    reference = plain_greedy(model, prompt, max_new_tokens=40, eos_token_id=None)
    expected = plain_greedy(model, prompt, max_new_tokens=max_new, eos_token_id=None)
    got, _ = _spec(
        model,
        prompt,
        oracle(reference),
        max_new_tokens=max_new,
        eos_token_id=None,
        num_draft_tokens=8,
        min_prob=0.0,
    )
    assert got == expected
    assert len(got) == len(prompt) + max_new


def test_model_generate_route_with_left_padding(arch: str) -> None:
    model = tiny_model(arch)
    short, long = prompts(1, seed=7, length=6)[0], prompts(1, seed=8, length=10)[0]
    train = [plain_greedy(model, p, max_new_tokens=30)[10:] for p in prompts(8, seed=9, length=10)]
    drafter = real_or_fake_drafter().from_corpus(train, n_max=3, min_count=1)
    ids = torch.tensor([[0] * 4 + short, long])
    mask = torch.tensor([[0] * 4 + [1] * 6, [1] * 10])
    stats = SpecStats()
    out = model.generate(
        ids,
        attention_mask=mask,
        custom_generate=speculative_decoding,
        drafter=drafter,
        do_sample=False,
        max_new_tokens=20,
        num_draft_tokens=4,
        draft_min_prob=0.0,
        spec_stats=stats,
    )
    for row, prompt in zip(out.tolist(), (short, long), strict=True):
        expected = plain_greedy(model, prompt, max_new_tokens=20)[len(prompt) :]
        assert row[10 : 10 + len(expected)] == expected
        assert all(t == 0 for t in row[10 + len(expected) :])
    assert stats.sequences == 2


def test_streamer_receives_prompt_then_every_new_token(arch: str) -> None:
    model = tiny_model(arch)
    prompt = prompts(1, seed=10)[0]
    reference = plain_greedy(model, prompt, max_new_tokens=15, eos_token_id=None)

    class Recorder:
        def __init__(self) -> None:
            self.chunks: list[list[int]] = []
            self.ended = False

        def put(self, value: torch.Tensor) -> None:
            self.chunks.append(value.reshape(-1).tolist())

        def end(self) -> None:
            self.ended = True

    rec = Recorder()
    generate(
        model,
        torch.tensor([prompt]),
        oracle(reference),
        streamer=rec,
        do_sample=False,
        max_new_tokens=15,
        eos_token_id=None,
        num_draft_tokens=4,
        min_prob=0.0,
    )
    assert rec.chunks[0] == prompt and rec.ended
    assert [t for chunk in rec.chunks[1:] for t in chunk] == reference[len(prompt) :]
