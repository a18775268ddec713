"""tasc-rs in vLLM 0.34's model runner, driven through vLLM 0.34's own code.

vLLM 0.34 ships GPU wheels only and dropped the ``custom_class`` route; its runner builds a
registered speculator with ``init_speculator`` and calls ``propose`` as ``runner_call.py`` shows.
Those, ``SpeculatorConfig``, ``BaseSpeculator`` and the registry are copied verbatim from the 0.34.0
wheel into ``tests/vllm_v034/stub`` (``tests/vllm_v034/extract.py``). A fake runner around them
holds the request states as 0.34's ``RequestState`` names them (tokens by slot on the device) and
verifies drafts greedily against known continuations.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

STUB = Path(__file__).resolve().parent / "vllm_v034" / "stub"
K = 6


@pytest.fixture
def vllm034() -> Iterator[Any]:
    """vLLM 0.34's speculator modules (the stub), removed again afterwards."""
    real = importlib.util.find_spec("vllm")
    # tests/vllm reads as a namespace package `vllm` here (tests/ is on the path): not a vLLM
    if real is not None and real.origin not in (None, "namespace"):
        pytest.skip("a real vllm is installed here; the stub would shadow it")
    shadowed = {n: m for n, m in sys.modules.items() if n == "vllm" or n.startswith("vllm.")}
    for name in shadowed:
        del sys.modules[name]
    sys.path.insert(0, str(STUB))
    try:
        yield SimpleNamespace(
            registry=importlib.import_module("vllm.v1.worker.gpu.spec_decode.speculator_config"),
            spec_decode=importlib.import_module("vllm.v1.worker.gpu.spec_decode"),
            runner_call=importlib.import_module("vllm.runner_call"),
        )
    finally:
        sys.path.remove(str(STUB))
        for name in [n for n in sys.modules if n == "vllm" or n.startswith("vllm.")]:
            del sys.modules[name]
        sys.modules.update(shadowed)
        for name in ("tasc_rs.vllm_v2.config", "tasc_rs.vllm_v2.speculator"):
            sys.modules.pop(name, None)


_RNG = np.random.default_rng(0)
_PHRASES = [_RNG.integers(3, 1000, size=3 + i % 5).tolist() for i in range(30)]


def _answers(n: int, rng: np.random.Generator) -> list[list[int]]:
    """Answers built from the same few phrases (as a task's are), ids 3..999 (0-2: specials):
    the drafter is built from some, the requests answer others."""
    phrases = _PHRASES
    out = []
    for _ in range(n):
        a: list[int] = []
        while len(a) < 40:
            a += phrases[int(rng.integers(0, len(phrases)))]
        out.append(a[:40])
    return out


def _vllm_config(tmp_path: Path, options: dict[str, Any], rows: int, width: int) -> Any:
    from tasc_rs import NgramDrafter

    rng = np.random.default_rng(1)
    drafter = NgramDrafter.from_corpus(_answers(300, rng), min_count=2, vocab_size=1000)
    path = tmp_path / "task.tasc"
    drafter.save(path)
    spec = SimpleNamespace(
        num_speculative_tokens=K,
        speculator_options={"drafter": str(path), **options},
        method=None,
        custom_method="tasc",
    )
    return SimpleNamespace(
        speculative_config=spec,
        model_config=SimpleNamespace(
            model=None,
            tokenizer=None,
            max_model_len=width,
            hf_config=SimpleNamespace(eos_token_id=2),
            try_get_generation_config=dict,
            get_vocab_size=lambda: 1000,
        ),
        scheduler_config=SimpleNamespace(max_num_seqs=rows),
        parallel_config=SimpleNamespace(tensor_parallel_size=1),
        device_config=SimpleNamespace(device_type="cuda"),
    )


def test_the_plugin_registers_the_method_with_vllms_registry(vllm034: Any) -> None:
    from tasc_rs.vllm import speculative_config
    from tasc_rs.vllm_v2 import has_speculator_registry, register

    assert has_speculator_registry()
    register()
    register()  # vLLM loads plugins in every process, maybe more than once
    assert "tasc" in vllm034.registry.registered_speculative_methods()
    config = vllm034.registry.get_custom_speculator_config_class("tasc")
    assert config.__name__ == "TascSpeculatorConfig"
    assert config.speculator_class == "tasc_rs.vllm_v2.speculator.TascSpeculator"
    # the helper names the registered method on vLLM >= 0.34 (no custom_class there)
    assert speculative_config(k=4) == {"method": "tasc", "num_speculative_tokens": 4}


def test_the_config_checks_k_and_the_options(vllm034: Any, tmp_path: Path) -> None:
    from tasc_rs import InvalidConfigError
    from tasc_rs.vllm_v2 import register

    register()
    config = vllm034.registry.get_custom_speculator_config_class("tasc")
    spec = SimpleNamespace(
        num_speculative_tokens=None, target_model_config="target", target_parallel_config="tp"
    )
    config.configure(spec)
    assert spec.num_speculative_tokens == 8 and spec.draft_model_config == "target"
    for bad in (0, 10_000):
        with pytest.raises(ValueError, match="num_speculative_tokens"):
            config.configure(
                SimpleNamespace(
                    num_speculative_tokens=bad, target_model_config="t", target_parallel_config="p"
                )
            )
    with pytest.raises(InvalidConfigError, match="speculator_options"):
        config.apply_options(SimpleNamespace(speculator_options=["task.tasc"]))
    with pytest.raises(InvalidConfigError, match=r"unknown|not a setting|mixing"):
        config.apply_options(SimpleNamespace(speculator_options={"drafter": "x", "mixing": 5}))
    config.apply_options(SimpleNamespace(speculator_options=None))  # found elsewhere


class _Runner:
    """What vLLM 0.34's runner holds around its speculator, on the CPU: request states by slot,
    and greedy verification against each request's known continuation."""

    def __init__(self, vllm034: Any, vllm_config: Any, rows: int, width: int) -> None:
        from tasc_rs.vllm_v2 import register

        register()
        config_cls = vllm034.registry.get_custom_speculator_config_class("tasc")
        vllm_config.speculative_config.speculator_config = config_cls(
            vllm_config.speculative_config
        )
        self.device = torch.device("cpu")
        self.req_states = SimpleNamespace(
            all_token_ids=SimpleNamespace(gpu=torch.zeros((rows, width), dtype=torch.int32)),
            total_len=SimpleNamespace(gpu=torch.zeros(rows, dtype=torch.int32)),
            req_id_to_index={},
            last_sampled_tokens=torch.zeros((rows, 1), dtype=torch.int64),
            next_prefill_tokens=torch.zeros((1, rows), dtype=torch.int32),
            draft_tokens=torch.zeros((rows, K), dtype=torch.int64),
        )
        self.sampler = SimpleNamespace(
            sampling_states=SimpleNamespace(
                temperature=SimpleNamespace(gpu=torch.zeros(rows)),
                seeds=SimpleNamespace(gpu=torch.zeros(rows, dtype=torch.int64)),
            )
        )
        self.num_speculative_steps = K
        # vLLM 0.34's own construction (it passes req_states when the constructor takes it)
        self.speculator = vllm034.spec_decode.init_speculator(
            vllm_config, self.device, self.req_states
        )
        self.call = vllm034.runner_call.propose_step
        self.free = list(range(rows))
        self.live: dict[str, tuple[int, list[int], int]] = {}  # id -> slot, target, prompt
        self.row_steps = self.emitted = 0

    def add(self, req_id: str, prompt: list[int], answer: list[int]) -> None:
        slot = self.free.pop(0)
        target = prompt + answer
        self.req_states.req_id_to_index[req_id] = slot
        row = self.req_states.all_token_ids.gpu[slot]
        row[:] = 0
        # the prefill samples the answer's first token
        row[: len(prompt) + 1] = torch.tensor(target[: len(prompt) + 1], dtype=torch.int32)
        self.req_states.total_len.gpu[slot] = len(prompt) + 1
        self.speculator.add_request(slot)
        self.live[req_id] = (slot, target, len(prompt))

    def finish(self, req_id: str) -> list[int]:
        slot, _, prompt = self.live.pop(req_id)
        self.speculator.on_requests_finished({req_id})
        n = int(self.req_states.total_len.gpu[slot])
        out = self.req_states.all_token_ids.gpu[slot, prompt:n].tolist()
        del self.req_states.req_id_to_index[req_id]
        self.free.append(slot)
        return out

    def step(self, gained: dict[str, int]) -> dict[str, int]:
        """One engine step: drafts for every live request, then greedy verification."""
        ids = list(self.live)
        slots = [self.live[i][0] for i in ids]
        batch = SimpleNamespace(
            req_ids=ids,
            num_reqs=len(ids),
            idx_mapping=torch.tensor(slots, dtype=torch.int32),
            idx_mapping_np=np.array(slots, dtype=np.int32),
        )
        num_sampled = torch.tensor([gained.get(i, 1) for i in ids], dtype=torch.int32)
        drafts = self.call(
            self, batch, None, None, None, None, num_sampled, torch.zeros_like(num_sampled), K
        )
        assert drafts.shape == (len(ids), K) and drafts.dtype == torch.int64
        mirror = self.speculator.tokens
        out = {}
        for b, req_id in enumerate(ids):
            slot, target, _ = self.live[req_id]
            n = int(self.req_states.total_len.gpu[slot])
            # the speculator's host copy of the row is the device row
            assert mirror[slot, :n].tolist() == target[:n]
            accepted = 0
            for d in drafts[b].tolist():
                if n + accepted < len(target) - 1 and d == target[n + accepted]:
                    accepted += 1
                else:
                    break
            new = target[n : min(n + accepted + 1, len(target))]
            row = self.req_states.all_token_ids.gpu[slot]
            row[n : n + len(new)] = torch.tensor(new, dtype=torch.int32)
            self.req_states.total_len.gpu[slot] = n + len(new)
            out[req_id] = len(new)
            self.emitted += len(new)
            self.row_steps += 1
        return out


def test_greedy_requests_come_out_whole_and_drafts_are_accepted(
    vllm034: Any, tmp_path: Path
) -> None:
    rows, width = 4, 256
    runner = _Runner(vllm034, _vllm_config(tmp_path, {}, rows, width), rows, width)
    rng = np.random.default_rng(7)
    answers = _answers(12, rng)
    prompts = [rng.integers(3, 1000, size=int(rng.integers(5, 30))).tolist() for _ in answers]
    queue = list(range(len(answers)))
    outputs: dict[int, list[int]] = {}
    gained: dict[str, int] = {}
    while queue or runner.live:
        while queue and runner.free:  # requests join as slots free up (slots are reused)
            r = queue.pop(0)
            runner.add(f"r{r}", prompts[r], answers[r])
        gained = runner.step(gained)
        for req_id in list(runner.live):
            slot, target, _ = runner.live[req_id]
            if int(runner.req_states.total_len.gpu[slot]) >= len(target):
                outputs[int(req_id[1:])] = runner.finish(req_id)
                gained.pop(req_id, None)
    assert outputs == dict(enumerate(answers))
    # 40-token answers from 30 phrases the drafter knows: a row gains several tokens a step
    # (1 without drafts); a mirror out of step with the device rows would draft garbage
    print("tokens per row step", runner.emitted / runner.row_steps)
    assert runner.emitted / runner.row_steps > 2.0
    assert runner.speculator.proposer.stats()["drafts"] > 0


def test_dummy_and_profile_runs_draft_nothing(vllm034: Any, tmp_path: Path) -> None:
    runner = _Runner(vllm034, _vllm_config(tmp_path, {}, 2, 64), 2, 64)
    batch = SimpleNamespace(
        req_ids=["a", "b"],
        num_reqs=2,
        idx_mapping=torch.tensor([0, 1], dtype=torch.int32),
        idx_mapping_np=np.array([0, 1], dtype=np.int32),
    )
    ones = torch.ones(2, dtype=torch.int32)
    for flags in ({"dummy_run": True}, {"is_profile": True}):
        out = runner.speculator.propose(
            batch, None, None, None, None, ones, ones, None, None, None, None, **flags
        )
        assert out.shape == (2, K) and not out.any()
    drafter = runner.speculator.proposer.drafter
    drafter.learn([5, 6, 7, 8])  # as the warm-up requests would
    assert drafter.online_stats()["learned"] == 1
    runner.speculator.reset_state()  # after warm-up: nothing learned survives
    assert drafter.online_stats()["learned"] == 0
