"""tasc-rs with vLLM tensor parallelism (``tensor_parallel_size=2``, one CPU core per rank).

Every tensor-parallel rank runs its own model runner, and with it its own tasc-rs proposer (here
on the drafter file mapped: one copy of its trie in memory for both ranks); the scheduler takes
the drafts of the engine's output rank (rank 0) and every rank verifies them. The ranks see the
same token buffers every step, so their proposers draft the same and learn the same: this test
checks both (greedy output identical to vLLM without speculation; the two ranks' learned states
byte-identical after a run).

SmolLM2-135M has 9 attention heads, which 2 ranks cannot split, so these engines serve a small
random Llama (4 heads, SmolLM2's tokenizer). On a one-NUMA-node machine vLLM's CPU backend
refuses two ranks unless each is bound to its cores by hand: ``VLLM_CPU_OMP_THREADS_BIND``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ENGINE_ARGS, shutdown, slurp_prompts
from vllm import LLM, SamplingParams

from tasc_rs.vllm import CONFIG_ENV, speculative_config

K = 6
TP = {"tensor_parallel_size": 2, "distributed_executor_backend": "mp"}


@pytest.fixture(scope="module")
def tiny_llama(tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer random Llama with 4 heads and SmolLM2's tokenizer, saved as a model folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def bound() -> Iterator[None]:
    """Each of the 2 ranks on a core of its own (vLLM's CPU backend asks for it here), and
    functions allowed through `collective_rpc` (to read each rank's proposer)."""
    cores = os.cpu_count() or 1
    if cores < 2:
        pytest.skip("tensor parallelism over 2 ranks needs 2 cores")
    env = {"VLLM_CPU_OMP_THREADS_BIND": "0|1", "VLLM_ALLOW_INSECURE_SERIALIZATION": "1"}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _engine(model: str, **kwargs: Any) -> LLM:
    args = {**ENGINE_ARGS, "max_model_len": 512, **TP, **kwargs}
    return LLM(model=model, **args)


def _learned_state(worker: Any) -> tuple[bool, bytes]:
    """Runs in each rank: whether its proposer's drafter is mapped, and what it learned
    (``NgramDrafter.learned_state``)."""
    runner = worker.model_runner
    proposer = getattr(runner, "drafter", None) or getattr(runner, "proposer", None)
    drafter = proposer.drafter
    drafter.wait_learned()
    return bool(drafter.stats()["mapped"]), bytes(drafter.learned_state())


def test_two_ranks_draft_alike_and_keep_greedy_output(
    tiny_llama: str, drafter_path: Path, tokenizer: Any, bound: None
) -> None:
    import cloudpickle

    prompts = slurp_prompts(tokenizer, 6, offset=20, shots=1)
    params = SamplingParams(temperature=0, max_tokens=48)
    plain = _engine(tiny_llama)
    try:
        want = [
            list(o.outputs[0].token_ids)
            for o in plain.generate([{"prompt_token_ids": p} for p in prompts], params)
        ]
    finally:
        shutdown(plain)
    before = os.environ.get(CONFIG_ENV)
    # both ranks map the one drafter file (one copy of its trie in memory)
    config = speculative_config(drafter_path, k=K, stale_steps=2, mmap=True)
    spec = _engine(tiny_llama, speculative_config=config, disable_log_stats=False)
    try:
        outs = spec.generate([{"prompt_token_ids": p} for p in prompts], params)
        assert [list(o.outputs[0].token_ids) for o in outs] == want
        values = {m.name: getattr(m, "value", 0) for m in spec.get_metrics()}
        assert values.get("vllm:spec_decode_num_draft_tokens", 0) > 0, "no drafts reached vLLM"
        # the function is sent to the ranks by value (this test module is not importable there)
        cloudpickle.register_pickle_by_value(__import__(__name__))
        ranks = spec.collective_rpc(_learned_state)
        assert len(ranks) == 2
        assert all(mapped for mapped, _ in ranks), "a rank read the drafter whole"
        states = [state for _, state in ranks]
        assert states[0] == states[1], "the ranks' proposers learned different things"
        assert len(states[0]) > 64  # something was learned (more than the empty snapshot)
    finally:
        shutdown(spec)
        if before is None:
            os.environ.pop(CONFIG_ENV, None)
        else:
            os.environ[CONFIG_ENV] = before
