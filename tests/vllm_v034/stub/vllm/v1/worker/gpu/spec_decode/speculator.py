# SPDX-License-Identifier: Apache-2.0
# SPDX-FileCopyrightText: Copyright contributors to the vLLM project
# Extracted from vllm-0.34.0-cp38-abi3-manylinux_2_28_x86_64.whl by tests/vllm_v034/extract.py.
from abc import ABC, abstractmethod
from typing import Any

import torch

# not copied: the runner's types, named in annotations only
InputBatch = DPSyncState = CUDAGraphMode = GPUWatermarkSampler = Any
DraftLogitsCache = Any


class BaseSpeculator(ABC):
    """Base class for V2 model runner speculators.

    This is also the interface for custom speculators, named by the
    `speculator_class` of their registered `SpeculatorConfig` (see
    `register_speculative_method`). Speculators that run a draft model
    should subclass `DraftModelSpeculator` (or `TargetDependentARSpeculator` if
    drafting consumes target model state), which the model runner loads and
    allocates draft KV cache for.
    """

    num_query_per_req: int = 1
    supports_mm_inputs: bool = False
    # Draft logits for probabilistic rejection sampling, or None for
    # greedy-draft verification and for speculators without a draft model.
    draft_logits: DraftLogitsCache | None = None

    @abstractmethod
    def init_cudagraph_manager(self, cudagraph_mode: CUDAGraphMode) -> None:
        pass

    @abstractmethod
    def capture(self) -> None:
        pass

    @abstractmethod
    def propose(
        self,
        input_batch: InputBatch,
        attn_metadata: dict[str, Any],
        slot_mappings: dict[str, torch.Tensor],
        # [num_tokens, hidden_size]
        last_hidden_states: torch.Tensor,
        # num_layers x [num_tokens, hidden_size]
        aux_hidden_states: list[torch.Tensor] | None,
        # [num_reqs]
        num_sampled: torch.Tensor,
        # [num_reqs]
        num_rejected: torch.Tensor,
        # [max_num_reqs]
        last_sampled: torch.Tensor,
        # [num_prefill_lookahead, max_num_reqs]
        next_prefill_tokens: torch.Tensor,
        # [max_num_reqs]
        temperature: torch.Tensor,
        # [max_num_reqs]
        seeds: torch.Tensor,
        dp_sync_state: DPSyncState | None = None,
        dummy_run: bool = False,
        skip_attn_for_dummy_run: bool = False,
        mm_inputs: tuple[list[torch.Tensor], torch.Tensor] | None = None,
        is_profile: bool = False,
        num_speculative_tokens: int | None = None,
    ) -> torch.Tensor:
        pass

    def prepare_watermarking(
        self, sampler: "GPUWatermarkSampler", idx_mapping: torch.Tensor
    ) -> None:
        """Prepare draft-side watermarking before `propose`. No-op by default."""
        return

    def add_request(self, req_index: int) -> None:
        """A new request was assigned request-state slot `req_index`, e.g. to
        reset per-slot state. No-op by default."""
        return

    def on_requests_finished(self, finished_req_ids: set[str]) -> None:
        """Requests finished (not preempted), before their request-state slots
        are freed so their token history is still readable. No-op by default."""
        return

    def reset_state(self) -> None:
        """Forget anything learned across requests, called after the warmup
        requests have finished. No-op by default."""
        return

    def update_max_model_len(self, max_model_len: int) -> None:
        """Apply a reduced max_model_len. Auto-fit can call this after capture,
        when CUDA graphs no longer see Python values. No-op by default."""
        return


