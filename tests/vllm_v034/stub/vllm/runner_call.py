# SPDX-License-Identifier: Apache-2.0
# SPDX-FileCopyrightText: Copyright contributors to the vLLM project
# Extracted from vllm-0.34.0-cp38-abi3-manylinux_2_28_x86_64.whl by tests/vllm_v034/extract.py.
"""The model runner's call of `speculator.propose` and what it does with the drafts (model_runner.py, `execute_model`), as a function of the runner `self`."""

from contextlib import nullcontext as use_workspace_lane  # not copied: a CUDA lane


def propose_step(self, input_batch, attn_metadata, slot_mappings_by_layer,
                 spec_hidden_states, aux_hidden_states, num_sampled, num_rejected,
                 num_spec_tokens, dp_sync_state=None, mm_inputs=None):
    if True:  # the copied lines' indentation
        if True:
            with use_workspace_lane():
                draft_tokens = self.speculator.propose(
                    input_batch,
                    attn_metadata,
                    slot_mappings_by_layer,
                    spec_hidden_states,
                    aux_hidden_states,
                    num_sampled,
                    num_rejected,
                    self.req_states.last_sampled_tokens,
                    self.req_states.next_prefill_tokens,
                    self.sampler.sampling_states.temperature.gpu,
                    self.sampler.sampling_states.seeds.gpu,
                    num_speculative_tokens=num_spec_tokens,
                    dp_sync_state=dp_sync_state,
                    mm_inputs=mm_inputs,
                )
            if num_spec_tokens < self.num_speculative_steps:
                draft_tokens[:, num_spec_tokens:] = -1
            self.req_states.draft_tokens[input_batch.idx_mapping] = draft_tokens
    return self.req_states.draft_tokens[input_batch.idx_mapping]
