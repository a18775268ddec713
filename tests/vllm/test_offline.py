"""tasc-rs inside vLLM's offline engine (``vllm.LLM``): greedy output token-identical to vLLM
without speculation, drafts actually accepted, online learning of finished responses.

One engine with the tasc-rs proposer and one without are shared by the whole module.
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

K = 8


@pytest.fixture(scope="module")
def plain(model_dir: str) -> Iterator[LLM]:
    llm = LLM(model=model_dir, **ENGINE_ARGS)
    yield llm
    shutdown(llm)


def speculating(model_dir: str, drafter: Path) -> Iterator[LLM]:
    """An engine with the tasc-rs proposer on ``drafter`` (the environment restored after)."""
    before = os.environ.get(CONFIG_ENV)
    # stale_steps=4: responses cut by max_tokens are learned 4 steps after their last one
    config = speculative_config(drafter, k=K, stale_steps=4)
    llm = LLM(model=model_dir, speculative_config=config, disable_log_stats=False, **ENGINE_ARGS)
    yield llm
    shutdown(llm)
    if before is None:
        os.environ.pop(CONFIG_ENV, None)
    else:
        os.environ[CONFIG_ENV] = before


@pytest.fixture(scope="module")
def spec(model_dir: str, drafter_path: Path) -> Iterator[LLM]:
    yield from speculating(model_dir, drafter_path)


def accepted(llm: LLM) -> tuple[int, int]:
    """(draft tokens proposed, draft tokens accepted) so far, from vLLM's own counters."""
    values = {m.name: getattr(m, "value", 0) for m in llm.get_metrics()}
    return (
        int(values.get("vllm:spec_decode_num_draft_tokens", 0)),
        int(values.get("vllm:spec_decode_num_accepted_tokens", 0)),
    )


def run(llm: LLM, prompts: list[list[int]], params: Any) -> list[list[int]]:
    outs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    return [list(o.outputs[0].token_ids) for o in outs]


def test_greedy_batch_is_token_identical(plain: LLM, spec: LLM, tokenizer: Any) -> None:
    prompts = slurp_prompts(tokenizer, 12)
    assert len({len(p) for p in prompts}) >= 4, "prompts of different lengths"
    # different max_tokens: requests finish at different steps, some in the middle of a draft
    params = [SamplingParams(temperature=0, max_tokens=m) for m in (5, 13, 48, 31) * 3]
    drafted0, accepted0 = accepted(spec)
    want = run(plain, prompts, params)
    got = run(spec, prompts, params)
    assert got == want
    assert {len(o) for o in want} >= {5, 13}, "some requests were cut by max_tokens"
    drafted, acc = accepted(spec)
    assert drafted > drafted0 and acc > accepted0, "the proposer drafted and vLLM accepted"


def test_one_request_at_a_time_is_token_identical(plain: LLM, spec: LLM, tokenizer: Any) -> None:
    params = SamplingParams(temperature=0, max_tokens=40)
    for prompt in slurp_prompts(tokenizer, 3, offset=20):
        assert run(spec, [prompt], params) == run(plain, [prompt], params)


def test_finished_responses_are_learned(plain: LLM, spec: LLM, tokenizer: Any) -> None:
    """The same prompts twice: the second pass drafts from the first pass's responses (those
    that ended with EOS are learned at once, those cut by max_tokens once they go stale)."""
    prompts = slurp_prompts(tokenizer, 6, offset=40, shots=3)
    params = SamplingParams(temperature=0, max_tokens=96)
    d0, a0 = accepted(spec)
    first = run(spec, prompts, params)
    d1, a1 = accepted(spec)
    second = run(spec, prompts, params)
    d2, a2 = accepted(spec)
    assert first == second == run(plain, prompts, params)
    rate1, rate2 = (a1 - a0) / max(d1 - d0, 1), (a2 - a1) / max(d2 - d1, 1)
    assert a2 - a1 > a1 - a0 and rate2 > rate1, (rate1, rate2)


@pytest.mark.xfail(
    strict=False,
    reason="vLLM 0.32's CPU rejection sampler changes the sampled distribution with any "
    "proposer: measured on this prompt, 100 samples each, the modal 3-token outcome "
    "'intent:' 77 times without speculation, 12 with vLLM's own ngram, 16 with tasc-rs. "
    "Not strict: the test is statistical and passed in 1 of 5 fresh-clone CI runs, so a "
    "strict marker made CI flaky; when vLLM fixes the sampler, remove the marker.",
)
def test_sampling_keeps_the_target_distribution(plain: LLM, spec: LLM, tokenizer: Any) -> None:
    """Samples of the first 3 tokens at temperature 1: the engine with drafts and the one
    without agree on the distribution (two-sample chi-square over the most frequent outcomes,
    0.1% level). vLLM's rejection sampler does the accepting; this checks that tasc-rs drafts
    reach it in a form it treats losslessly.

    One request per call: rows of one batch draw correlated noise on vLLM's CPU sampler (400
    copies of a prompt in one batch all continued "Welcome to" with the same token), so a batch
    is not an i.i.d. sample. No per-request seeds: vLLM 0.32's CPU rejection sampler fails on
    seeded generators ("CPU Generator does not use offset"), whichever proposer drafts."""
    prompt = slurp_prompts(tokenizer, 1, offset=80, shots=3)[0]
    n = 150
    params = SamplingParams(temperature=1.0, max_tokens=3)
    d0, _ = accepted(spec)
    a = [tuple(run(plain, [prompt], params)[0]) for _ in range(n)]
    b = [tuple(run(spec, [prompt], params)[0]) for _ in range(n)]
    assert accepted(spec)[0] > d0, "drafts were proposed while sampling"
    counts: dict[tuple[int, ...], list[int]] = {}
    for outcome in a:
        counts.setdefault(outcome, [0, 0])[0] += 1
    for outcome in b:
        counts.setdefault(outcome, [0, 0])[1] += 1
    top = sorted(counts.values(), key=lambda c: -(c[0] + c[1]))
    cells = [*top[:5], [sum(c[0] for c in top[5:]), sum(c[1] for c in top[5:])]]
    cells = [c for c in cells if c[0] + c[1] > 0]
    assert len(cells) >= 3, "the outcomes vary (the test has power)"
    chi2 = sum((c[0] - c[1]) ** 2 / (c[0] + c[1]) for c in cells)  # equal sample sizes
    critical = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52}[len(cells) - 1]
    assert chi2 < critical, (chi2, cells)


@pytest.fixture(scope="module")
def multi(
    model_dir: str, tokenizer: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LLM]:
    """An engine drafting from one multi-task file: slurp and a small SQL task."""
    from tasc_rs import MultiTaskDrafter
    from tasc_rs.hf.corpus import build_drafter
    from tasc_rs.hf.demo import demo_corpus

    tables = ["users", "orders", "items", "shops", "staff", "cities", "trips", "songs"]
    sql = build_drafter(
        tokenizer,
        [f"SELECT count(*) FROM {t} WHERE id > {i}" for i, t in enumerate(tables * 3)],
        requests=[f"how many {t} have an id above {i}" for i, t in enumerate(tables * 3)],
        min_count=1,
        progress=False,
    )
    slurp = build_drafter(tokenizer, demo_corpus(), min_count=2, progress=False)
    path = tmp_path_factory.mktemp("multi") / "tasks.tasc"
    MultiTaskDrafter({"slurp": slurp, "sql": sql}).save(path)
    yield from speculating(model_dir, path)


def test_one_file_drafts_for_several_tasks(plain: LLM, multi: LLM, tokenizer: Any) -> None:
    """Slurp and SQL requests interleaved in one batch: each drafted from its own task's store,
    greedy output identical to vLLM without speculation."""
    from tasc_rs.hf.task import TaskPrompt

    sql = TaskPrompt(tokenizer, instruction="Answer with one SQL query.")
    prompts = slurp_prompts(tokenizer, 4, offset=60, shots=3)
    prompts += [
        sql.ids(q)[0].tolist()
        for q in ("how many songs have an id above 3", "how many shops are there")
    ]
    params = SamplingParams(temperature=0, max_tokens=40)
    d0, a0 = accepted(multi)
    assert run(multi, prompts, params) == run(plain, prompts, params)
    d1, a1 = accepted(multi)
    assert d1 > d0 and a1 > a0, "the proposer drafted and vLLM accepted"
