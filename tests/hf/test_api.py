"""Errors, statistics, defaults and the torch-free import path of the Hugging Face layer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from hf_helpers import oracle, plain_greedy, prompts, tiny_model

from tasc_rs import NgramDrafter
from tasc_rs.errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidConfigError,
    InvalidInputError,
    TascError,
    UnsupportedModelError,
)
from tasc_rs.hf import (
    AdaptiveDefaults,
    SpecStats,
    calibrate,
    check_model,
    choose_defaults,
    generate,
    speculative_decoding,
)
from tasc_rs.hf.adaptive import CANDIDATE_K
from tasc_rs.hf.corpus import read_outputs

pytestmark = pytest.mark.timeout(120)


def test_missing_drafter_is_invalid_input() -> None:
    model = tiny_model("llama")
    with pytest.raises(InvalidInputError, match="drafter"):
        model.generate(
            torch.tensor([[5, 6, 7]]), custom_generate=speculative_decoding, max_new_tokens=3
        )


def test_beam_search_is_rejected() -> None:
    model = tiny_model("llama")
    with pytest.raises(InvalidInputError, match="num_beams"):
        generate(model, torch.tensor([[5, 6, 7]]), oracle([]), num_beams=2, max_new_tokens=3)


def test_unknown_architecture_and_encoder_decoder() -> None:
    with pytest.raises(UnsupportedModelError, match="unknown architecture"):
        check_model(torch.nn.Linear(2, 2))
    config = transformers.T5Config(
        vocab_size=32, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8
    )
    with pytest.raises(UnsupportedModelError, match="encoder-decoder"):
        check_model(transformers.T5ForConditionalGeneration(config))


def test_model_without_kv_cache() -> None:
    class NoCacheLlama(transformers.LlamaForCausalLM):
        def forward(self, input_ids=None, attention_mask=None, **kwargs):  # type: ignore[override]
            return super().forward(input_ids=input_ids, attention_mask=attention_mask)

    model = NoCacheLlama(tiny_model("llama").config)
    with pytest.raises(UnsupportedModelError, match="KV cache"):
        check_model(model)
    assert issubclass(UnsupportedModelError, TascError)


def test_drafts_outside_the_vocabulary_are_cut() -> None:
    model = tiny_model("qwen2")
    prompt = prompts(1, seed=12)[0]
    expected = plain_greedy(model, prompt, max_new_tokens=10, eos_token_id=None)
    bad = oracle([*expected[: len(prompt) + 2], 10**6, *expected[len(prompt) + 2 :]])
    out = generate(
        model,
        torch.tensor([prompt]),
        bad,
        max_new_tokens=10,
        eos_token_id=None,
        num_draft_tokens=6,
        min_prob=0.0,
        do_sample=False,
    )
    assert out.sequences[0].tolist() == expected


def test_stats_accumulate() -> None:
    a, b = SpecStats(), SpecStats()
    a.record_step(3, 2)
    b.record_step(5, 5)
    a.new_tokens, b.new_tokens = 3, 6
    a += b
    assert (a.forward_passes, a.drafted, a.accepted) == (2, 8, 7)
    assert a.acceptance_by_position == [1.0, 1.0, 0.5, 1.0, 1.0]
    assert a.tokens_per_forward == 4.5
    assert json.loads(json.dumps(a.as_dict()))["accepted"] == 7


def test_defaults_follow_verify_cost() -> None:
    # CPU curve measured for SmolLM2-135M on 2 cores (8 tokens ~1.8x, 16 ~1.9x); a GPU is flat.
    cpu = choose_defaults({2: 1.2, 4: 1.45, 8: 1.8, 12: 1.87, 16: 1.92})
    gpu = choose_defaults({2: 1.0, 4: 1.01, 8: 1.02, 12: 1.03, 16: 1.04})
    steep = choose_defaults({2: 1.6, 4: 2.5, 8: 4.5, 12: 6.5, 16: 8.5})
    assert gpu.num_draft_tokens >= 12 and gpu.min_prob == 0.1
    assert 8 <= cpu.num_draft_tokens <= 16 and 0.15 <= cpu.min_prob <= 0.4
    assert steep.num_draft_tokens == 2 and steep.min_prob == 0.5


def test_verify_cost_profile_interpolates_the_measured_lengths() -> None:
    d = choose_defaults({2: 1.2, 4: 1.6, 8: 2.0})
    assert d.verify_cost == pytest.approx((1.0, 1.1, 1.2, 1.4, 1.6, 1.7, 1.8, 1.9, 2.0))
    assert d.max_draft_tokens == 8
    assert AdaptiveDefaults(4, 0.2).verify_cost == ()
    assert AdaptiveDefaults(4, 0.2).max_draft_tokens == 4
    # a noisy measurement where 4 tokens cost less than 2 never makes a longer draft cheaper
    noisy = choose_defaults({2: 2.0, 4: 1.5, 8: 1.8}).verify_cost
    assert noisy == pytest.approx(
        (1.0, 1.375, 1.75, 1.75, 1.75, 1.7625, 1.775, 1.7875, 1.8), abs=1e-4
    )
    assert list(noisy) == sorted(noisy)
    # a length measured cheaper than one token (noise on a busy machine) never pulls d = 0,
    # the reference, under 1.0
    dip = AdaptiveDefaults(2, 0.2, {2: 0.9, 4: 1.2}).verify_cost
    assert dip == pytest.approx((1.0, 1.0, 1.0, 1.1, 1.2))


@pytest.mark.parametrize("bad", [[], [1.0, 0.0], [1.0, float("inf")], ["x"], "fast"])
def test_bad_verify_cost_is_rejected_before_decoding(bad: object) -> None:
    model = tiny_model("gpt2")
    drafter = NgramDrafter.from_corpus([[1, 2, 3]] * 5)
    with pytest.raises(InvalidInputError, match="verify_cost"):
        generate(model, torch.tensor([[1, 2]]), drafter, max_new_tokens=2, verify_cost=bad)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"num_draft_tokens": True}, ArgumentTypeError, "num_draft_tokens"),
        ({"num_draft_tokens": 2.5}, ArgumentTypeError, "num_draft_tokens"),
        ({"num_draft_tokens": -1}, InvalidConfigError, "num_draft_tokens"),
        ({"min_prob": "0.2"}, ArgumentTypeError, "min_prob"),
        ({"min_prob": 1.5}, InvalidConfigError, "min_prob"),
        ({"min_prob": float("nan")}, InvalidConfigError, "min_prob"),
        ({"seed": 1.5}, ArgumentTypeError, "seed"),
        ({"seed": True}, ArgumentTypeError, "seed"),
        ({"input_ids": [[1, 2]]}, DtypeError, "input_ids"),
        ({"input_ids": torch.tensor([[1.0, 2.0]])}, DtypeError, "input_ids"),
        ({"input_ids": torch.ones(1, 1, 2, dtype=torch.long)}, DtypeError, "input_ids"),
    ],
)
def test_generate_names_the_bad_argument(kwargs: dict, error: type, name: str) -> None:
    model = tiny_model("gpt2")
    drafter = NgramDrafter.from_corpus([[1, 2, 3]] * 5)
    ids = kwargs.pop("input_ids", torch.tensor([[1, 2]]))
    with pytest.raises(error, match=name):
        generate(model, ids, drafter, max_new_tokens=2, verify_cost=None, **kwargs)


def test_calibrate_is_cached_per_model() -> None:
    model = tiny_model("gpt2")
    first = calibrate(model)
    assert first is calibrate(model)
    # k is one of the measured candidate lengths (24 joined them with the cost profile)
    assert first.num_draft_tokens in CANDIDATE_K and 0.1 <= first.min_prob <= 0.5
    assert first.max_draft_tokens == max(CANDIDATE_K)
    assert len(first.verify_cost) == max(CANDIDATE_K) + 1 and first.verify_cost[0] == 1.0


def test_the_verify_cost_is_kept_across_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service's first requests do not pay the measurement once a process on the machine has."""
    from tasc_rs.hf import adaptive

    monkeypatch.setenv("TASC_RS_CACHE", str(tmp_path))
    model = tiny_model("llama")
    first = calibrate(model, batch=3)
    path = tmp_path / "verify_cost.json"
    assert path.exists() and len(json.loads(path.read_text())) == 1

    def measured(*args: object, **kwargs: object) -> dict[int, float]:
        raise AssertionError("measured again")

    adaptive._cache.clear()  # a new process: only the file remains
    monkeypatch.setattr(adaptive, "measure_verify_cost", measured)
    assert calibrate(model, batch=3) == first
    # another batch size or a damaged file is measured (here: a fixed profile), never an error
    fixed = {k: 1.0 + k / 10 for k in CANDIDATE_K}
    monkeypatch.setattr(adaptive, "measure_verify_cost", lambda *a, **k: fixed)
    assert calibrate(model, batch=4).relative_cost == fixed
    adaptive._cache.clear()
    path.write_text("{damaged")
    assert calibrate(model, batch=3).relative_cost == fixed
    assert len(json.loads(path.read_text())) == 1
    # off: nothing read or written
    monkeypatch.setenv("TASC_RS_VERIFY_CACHE", "0")
    path.unlink()
    adaptive._cache.clear()
    assert calibrate(model, batch=3).relative_cost == fixed
    assert not path.exists()


def test_read_outputs_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"output": "a"}\n"b"\n\n{"input": "x"}\n')
    with pytest.raises(InvalidInputError, match=":4:"):
        list(read_outputs(path))
    path.write_text('{"output": "a"}\n"b"\n')
    assert list(read_outputs(path)) == ["a", "b"]


def test_core_and_cli_import_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "import tasc_rs, tasc_rs.cli, tasc_rs.embedded, tasc_rs.errors\n"
        "tasc_rs.cli.build_parser()\n"
        "assert tasc_rs.cli.main(['demo']) == 2\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'tasc-rs[hf]'" in proc.stderr
