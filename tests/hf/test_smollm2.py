"""TASC-spec on the real embedded model, SmolLM2-135M-Instruct (downloaded and cached once)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from tasc_rs.hf import generate
from tasc_rs.hf.corpus import answer_frame, build_drafter, tokenize_outputs
from tasc_rs.hf.task import SLURP_INSTRUCTION, TaskPrompt, load_rows, shipped_task_path

pytestmark = pytest.mark.timeout(300)

QUESTIONS = [
    "wake me up at seven tomorrow morning",
    "what is the weather like in paris today",
    "remind me to call mom on friday",
]


@pytest.fixture(scope="module")
def smollm2() -> Iterator[tuple[Any, Any]]:
    from tasc_rs.embedded import load_embedded

    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a 135M model does use two cores
    yield load_embedded(device="cpu", verbose=False)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def slurp_drafter(smollm2: tuple[Any, Any]) -> Any:
    _, tokenizer = smollm2
    return build_drafter(tokenizer, shipped_task_path("slurp", "train"), min_count=2)


@pytest.fixture(scope="module")
def few_shot(smollm2: tuple[Any, Any]) -> TaskPrompt:
    _, tokenizer = smollm2
    shots = load_rows(shipped_task_path("slurp", "train"), limit=3)
    return TaskPrompt(tokenizer, examples=shots, instruction=SLURP_INSTRUCTION)


def test_answer_frame_and_corpus_wrapping(smollm2: tuple[Any, Any]) -> None:
    _, tokenizer = smollm2
    frame = answer_frame(tokenizer)
    assert frame.header == "<|im_start|>assistant\n"
    assert frame.end == "<|im_end|>"
    (ids,) = tokenize_outputs(tokenizer, ["intent: alarm_set; slots: none"])
    assert ids[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.decode(ids[:4]) == "<|im_start|>assistant\n"


@pytest.mark.parametrize("question", QUESTIONS)
def test_greedy_identical_to_generate(smollm2, slurp_drafter, few_shot, question: str) -> None:
    model, _ = smollm2
    ids = few_shot.ids(question)
    plain = model.generate(ids, max_new_tokens=32, do_sample=False)
    out = generate(
        model,
        ids,
        slurp_drafter,
        max_new_tokens=32,
        do_sample=False,
        num_draft_tokens=8,
        min_prob=0.1,
        verify_cost=None,  # keep every drafted token: the counts below must not depend on timing
    )
    assert torch.equal(out.sequences, plain)
    assert out.stats.accepted > 0
    assert out.stats.tokens_per_forward > 1.0


@pytest.mark.parametrize("width", [1, 4])
def test_trees_and_chains_are_identical_to_generate(
    smollm2, slurp_drafter, few_shot, width
) -> None:
    model, _ = smollm2
    for question in QUESTIONS[:2]:
        ids = few_shot.ids(question)
        plain = model.generate(ids, max_new_tokens=32, do_sample=False)
        out = generate(
            model,
            ids,
            slurp_drafter,
            max_new_tokens=32,
            do_sample=False,
            num_draft_tokens=12,
            min_prob=0.05,
            verify_cost=[1.0],  # free verification: every drafted node is kept
            tree_width=width,
        )
        assert torch.equal(out.sequences, plain)
        assert out.stats.accepted > 0


def test_verify_cost_truncates_drafts_losslessly(smollm2, slurp_drafter, few_shot) -> None:
    model, _ = smollm2
    ids = few_shot.ids(QUESTIONS[0])
    plain = model.generate(ids, max_new_tokens=24, do_sample=False)
    common = {"max_new_tokens": 24, "do_sample": False, "num_draft_tokens": 12}
    free = generate(model, ids, slurp_drafter, verify_cost=[1.0], **common)
    steep = generate(model, ids, slurp_drafter, verify_cost=[1.0, 2.5], **common)
    auto = generate(model, ids, slurp_drafter, **common)  # the profile measured here
    for out in (free, steep, auto):
        assert torch.equal(out.sequences, plain)
    # free verification keeps every drafted token with a chance; a forward pass that costs 2.5x
    # per drafted token is never worth a draft whose tokens are accepted with probability <= 1
    assert free.stats.drafted > 0
    assert steep.stats.drafted == 0
    assert steep.stats.forward_passes == steep.stats.new_tokens


def test_stop_strings_and_several_eos_ids(smollm2, slurp_drafter, few_shot) -> None:
    model, tokenizer = smollm2
    ids = few_shot.ids(QUESTIONS[0])
    kwargs: dict[str, Any] = {"max_new_tokens": 32, "do_sample": False, "stop_strings": ["slots"]}
    plain = model.generate(ids, tokenizer=tokenizer, **kwargs)
    out = generate(
        model, ids, slurp_drafter, tokenizer=tokenizer, num_draft_tokens=8, min_prob=0.0, **kwargs
    )
    assert torch.equal(out.sequences, plain)
    assert tokenizer.decode(out.sequences[0, ids.shape[1] :]).endswith("slots")
    colon = tokenizer.convert_tokens_to_ids(":")
    eos = [colon, model.generation_config.eos_token_id]
    plain = model.generate(ids, max_new_tokens=32, do_sample=False, eos_token_id=eos)
    out = generate(
        model,
        ids,
        slurp_drafter,
        max_new_tokens=32,
        do_sample=False,
        eos_token_id=eos,
        num_draft_tokens=8,
        min_prob=0.0,
    )
    assert torch.equal(out.sequences, plain)
    assert out.sequences[0, -1].item() == colon
