"""The ``"tasc"`` speculator of vLLM 0.34's model runner (V2).

vLLM 0.34 keeps each request's tokens on the device (``RequestState.all_token_ids``, rows by
request slot) and asks the speculator for ``[num_reqs, k]`` draft ids on the device every step.
tasc-rs drafts on the host, so the speculator keeps a host mirror of the slots' tokens: a new
request's row is copied once, after that only the tokens each row gained (one gather of at most
``k + 1`` tokens per row, copied to the host in one transfer). Drafting is
:class:`tasc_rs.vllm.TascProposer`'s (the same batch proposer, settings and online learning as
on vLLM 0.32), fed the mirror with the rows in slot order.

Every draft is ``k`` tokens wide (the V2 runner verifies fixed-width drafts): a shorter tasc-rs
draft is filled with the row's last token, which the target rejects like any wrong draft (what
vLLM's own suffix speculator does). Greedy output stays identical to decoding without
speculation; vLLM's rejection sampler verifies every draft.

Tensor-parallel ranks each run a speculator on identical inputs: the drafts, and what each
rank's drafter learns online, are identical (no rank's state is sent to another).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from vllm.v1.worker.gpu.spec_decode.speculator import BaseSpeculator

from tasc_rs.vllm import TascProposer


class TascSpeculator(BaseSpeculator):
    """Drafts with a tasc-rs drafter for vLLM 0.34's model runner (see the module docs)."""

    def __init__(self, vllm_config: Any, device: torch.device, req_states: Any) -> None:
        self.vllm_config = vllm_config
        self.device = device
        self.req_states = req_states
        self.proposer = TascProposer(vllm_config)
        self.k = self.proposer.k
        rows = int(vllm_config.scheduler_config.max_num_seqs)
        width = int(vllm_config.model_config.max_model_len)
        # the slots' tokens on the host, and how many of each row are mirrored
        self.tokens = np.zeros((rows, width), dtype=np.int32)
        self.known = np.zeros(rows, dtype=np.int64)
        self.lengths = np.zeros(rows, dtype=np.int32)

    # --- BaseSpeculator ---

    def init_cudagraph_manager(self, cudagraph_mode: Any) -> None:
        """Nothing runs on the device: no graphs to capture."""
        del cudagraph_mode

    def capture(self) -> None:
        """Nothing to capture."""

    def add_request(self, req_index: int) -> None:
        """A new request took slot ``req_index``: its row is copied afresh at its next step."""
        self.known[req_index] = 0
        self.lengths[req_index] = 0

    def reset_state(self) -> None:
        """Forgets what the warm-up requests taught (vLLM calls this after warming up)."""
        self.proposer.forget()
        self.known[:] = 0
        self.lengths[:] = 0

    @torch.inference_mode()
    def propose(
        self,
        input_batch: Any,
        attn_metadata: Any,
        slot_mappings: Any,
        last_hidden_states: torch.Tensor,
        aux_hidden_states: list[torch.Tensor] | None,
        num_sampled: torch.Tensor,
        num_rejected: torch.Tensor,
        last_sampled: torch.Tensor,
        next_prefill_tokens: torch.Tensor,
        temperature: torch.Tensor,
        seeds: torch.Tensor,
        dp_sync_state: Any = None,
        dummy_run: bool = False,
        skip_attn_for_dummy_run: bool = False,
        mm_inputs: Any = None,
        is_profile: bool = False,
        num_speculative_tokens: int | None = None,
    ) -> torch.Tensor:
        num_reqs = int(input_batch.num_reqs)
        slots = np.asarray(input_batch.idx_mapping_np[:num_reqs], dtype=np.int64)
        if dummy_run or is_profile or num_reqs == 0:
            return torch.zeros((num_reqs, self.k), dtype=torch.int64, device=self.device)
        idx = input_batch.idx_mapping[:num_reqs].to(torch.int64)
        # each row's length and how many tokens it gained: one transfer
        lengths = self.req_states.total_len.gpu[idx].to(torch.int64)
        both = torch.stack([lengths, num_sampled[:num_reqs].to(torch.int64)]).cpu().numpy()
        total, gained = both[0], both[1]
        self._mirror(slots, idx, total)
        sampled: list[list[int]] = [[] for _ in range(len(self.known))]
        for slot, n, g in zip(slots.tolist(), total.tolist(), gained.tolist(), strict=True):
            self.lengths[slot] = n
            if g > 0 and n > 0:  # a row mid-prefill gained nothing: no draft
                sampled[slot] = self.tokens[slot, max(n - g, 0) : n].tolist()
        drafts = self.proposer.propose(sampled, self.lengths, self.tokens)
        out = np.empty((num_reqs, self.k), dtype=np.int64)
        for b, (slot, n) in enumerate(zip(slots.tolist(), total.tolist(), strict=True)):
            draft = drafts[slot][: self.k]
            out[b, : len(draft)] = draft
            # filler: the last token, rejected like any wrong draft
            out[b, len(draft) :] = self.tokens[slot, n - 1] if n > 0 else 0
        for slot in slots.tolist():
            self.lengths[slot] = 0  # rows not in the next batch draft nothing
        return torch.from_numpy(out).to(self.device, non_blocking=True)

    def on_requests_finished(self, finished_req_ids: Any) -> None:
        """Finished requests are learned by the batch proposer itself (their stop token, or
        their absence from the next steps); their slots are copied afresh when reused."""
        for req_id in finished_req_ids:
            slot = self.req_states.req_id_to_index.get(req_id)
            if slot is not None:
                self.known[slot] = 0

    # --- the host mirror ---

    def _mirror(self, slots: np.ndarray, idx: torch.Tensor, total: np.ndarray) -> None:
        """Copies into the mirror what each batch row gained since the last step (a new row:
        all of it)."""
        all_tokens = self.req_states.all_token_ids.gpu
        known = self.known[slots]
        fresh = np.flatnonzero((known == 0) | (known > total))
        for b in fresh.tolist():
            slot, n = int(slots[b]), int(total[b])
            if n > 0:
                self.tokens[slot, :n] = all_tokens[int(idx[b]), :n].cpu().numpy()
            self.known[slot] = n
        rest = np.setdiff1d(np.arange(len(slots)), fresh, assume_unique=True)
        if len(rest) == 0:
            return
        delta = total[rest] - self.known[slots[rest]]
        width = int(delta.max())
        if width <= 0:
            return
        # the last `width` positions of each row (from 0 for rows shorter than that)
        ends = torch.as_tensor(total[rest], dtype=torch.int64, device=all_tokens.device)
        pos = (ends[:, None] - width + torch.arange(width, device=all_tokens.device)).clamp_(min=0)
        rows = idx[torch.as_tensor(rest, device=idx.device)].to(all_tokens.device)
        window = all_tokens[rows[:, None], pos].cpu().numpy()
        cols = pos.cpu().numpy()
        for j, b in enumerate(rest.tolist()):
            slot = int(slots[b])
            self.tokens[slot, cols[j]] = window[j]
            self.known[slot] = int(total[b])
