"""Writes ``stub/``: the parts of vLLM 0.34.0's own source that its model runner uses to build and
call a custom speculator, copied verbatim from the wheel (Apache-2.0, SPDX headers kept), so that
``tests/test_vllm_v2.py`` drives tasc-rs's speculator through vLLM 0.34's code rather than a
signature written from memory. The GPU wheel does not install on a CPU machine; this only reads
it::

    pip download vllm==0.34.0 --no-deps -d /tmp/v034
    python tests/vllm_v034/extract.py /tmp/v034/vllm-0.34.0-*.whl

Verbatim: ``init_speculator`` (spec_decode/__init__.py, whole), ``SpeculatorConfig`` and the
registry functions (spec_decode/speculator_config.py), ``BaseSpeculator`` (spec_decode/
speculator.py), ``resolve_obj_by_qualname`` (utils/import_utils.py) and the runner's ``propose``
call (model_runner.py). Imports of modules the copied code does not use are left out (marked).
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "stub" / "vllm"
GPU = "vllm/v1/worker/gpu/"


def lines(z: zipfile.ZipFile, name: str) -> list[str]:
    return z.read(name).decode().splitlines(keepends=True)


def between(src: list[str], start: str, end: str | None) -> str:
    """From the line starting with `start` up to (not including) the one starting with `end`."""
    i = next(n for n, line in enumerate(src) if line.startswith(start))
    j = (
        len(src)
        if end is None
        else next(n for n, line in enumerate(src[i + 1 :], i + 1) if line.startswith(end))
    )
    return "".join(src[i:j])


def write(rel: str, text: str) -> None:
    path = OUT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def main(wheel: str) -> None:
    z = zipfile.ZipFile(wheel)
    head = (
        "# SPDX-License-Identifier: Apache-2.0\n"
        "# SPDX-FileCopyrightText: Copyright contributors to the vLLM project\n"
    )
    note = f"# Extracted from {Path(wheel).name} by tests/vllm_v034/extract.py.\n"
    for pkg in ("", "utils/", "config/", "v1/", "v1/worker/", GPU[5:]):
        write(pkg + "__init__.py", head + note)
    imp = lines(z, "vllm/utils/import_utils.py")
    write(
        "utils/import_utils.py",
        head
        + note
        + "import importlib\nfrom typing import Any\n\n\n"
        + between(imp, "def resolve_obj_by_qualname", "@cache"),
    )
    spec = lines(z, "vllm/config/speculative.py")
    write(
        "config/speculative.py",
        head + note + "from typing import Literal\n\n"
        "# the built-in methods (types the copied code needs only by name)\n"
        "EagleModelTypes = NgramGPUTypes = DSparkModelTypes = str\n"
        + between(spec, "SpeculativeMethod = Literal[", "RejectionSampleMethod"),
    )
    write("v1/worker/gpu/spec_decode/__init__.py", z.read(GPU + "spec_decode/__init__.py").decode())
    cfg = lines(z, GPU + "spec_decode/speculator_config.py")
    write(
        "v1/worker/gpu/spec_decode/speculator_config.py",
        "".join(cfg[: next(n for n, s in enumerate(cfg) if s.startswith("class SpeculatorConfig"))])
        + between(cfg, "class SpeculatorConfig", "class DraftModelSpeculatorConfig")
        + "\n\nclass DraftModelSpeculatorConfig(SpeculatorConfig):  # not copied: unused here\n"
        "    pass\n\n\n" + between(cfg, "def _builtin(", "# Methods detected by `matches`"),
    )
    spc = lines(z, GPU + "spec_decode/speculator.py")
    write(
        "v1/worker/gpu/spec_decode/speculator.py",
        head + note + "from abc import ABC, abstractmethod\nfrom typing import Any\n\n"
        "import torch\n\n"
        "# not copied: the runner's types, named in annotations only\n"
        "InputBatch = DPSyncState = CUDAGraphMode = GPUWatermarkSampler = Any\n"
        "DraftLogitsCache = Any\n\n\n"
        + between(spc, "class BaseSpeculator", "class DraftModelSpeculator"),
    )
    run = lines(z, GPU + "model_runner.py")
    # the real step's call (execute_model), not the dummy run's
    propose = " " * 16 + "draft_tokens = self.speculator.propose("
    at = next(n for n, s in enumerate(run) if s.startswith(propose))
    call = run[at - 1] + between(run[at:], propose, " " * 12 + "if self.pcp_manager is not None:")
    after = between(
        run[at:],
        " " * 12 + "if num_spec_tokens < self.num_speculative_steps:",
        " " * 12 + "if self.adaptive_verification is not None:",
    )
    write(
        "runner_call.py",
        head + note + '"""The model runner\'s call of `speculator.propose` and what it does with '
        'the drafts (model_runner.py, `execute_model`), as a function of the runner `self`."""\n\n'
        "from contextlib import nullcontext as use_workspace_lane  # not copied: a CUDA lane\n\n\n"
        "def propose_step(self, input_batch, attn_metadata, slot_mappings_by_layer,\n"
        "                 spec_hidden_states, aux_hidden_states, num_sampled, num_rejected,\n"
        "                 num_spec_tokens, dp_sync_state=None, mm_inputs=None):\n"
        "    if True:  # the copied lines' indentation\n        if True:\n"
        + call.replace("use_workspace_lane(self._draft_workspace_lane)", "use_workspace_lane()")
        + after
        + "    return self.req_states.draft_tokens[input_batch.idx_mapping]\n",
    )


if __name__ == "__main__":
    main(sys.argv[1])
