"""The ``"tasc"`` method's ``SpeculatorConfig`` for vLLM 0.34's model runner (imported by vLLM in
every process, so it imports nothing heavy: the speculator lives in
:mod:`tasc_rs.vllm_v2.speculator`)."""

from __future__ import annotations

from typing import Any, ClassVar

from vllm.v1.worker.gpu.spec_decode.speculator_config import SpeculatorConfig

from tasc_rs._core import MAX_K


class TascSpeculatorConfig(SpeculatorConfig):
    """tasc-rs drafts from an n-gram drafter file, with no draft model and no GPU work."""

    base_method: ClassVar[str | None] = None
    speculator_class: ClassVar[str | None] = "tasc_rs.vllm_v2.speculator.TascSpeculator"
    supported_options: ClassVar[frozenset[str]] = frozenset({"speculator_options"})
    # drafts are checked by the target like any other; their confidences are not logits
    adaptive_verification_uses_draft_logits: ClassVar[bool] = False

    @classmethod
    def configure(cls, spec: Any) -> None:
        super().configure(spec)
        if spec.num_speculative_tokens is None:
            spec.num_speculative_tokens = 8
        k = spec.num_speculative_tokens
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ValueError(
                f"tasc: num_speculative_tokens must be an int in 1..{MAX_K}, got {k!r}"
            )

    @classmethod
    def apply_options(cls, spec: Any) -> None:
        """Checks ``speculator_options`` when the config is made (a bad setting stops the
        engine before any worker starts)."""
        options = getattr(spec, "speculator_options", None)
        if options is not None:
            from tasc_rs.vllm import settings_from_options

            settings_from_options(options)
