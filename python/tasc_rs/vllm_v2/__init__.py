"""TASC-spec in vLLM 0.34's model runner (V2): a registered speculative method, ``"tasc"``.

vLLM 0.34 removed the ``custom_class`` route that :mod:`tasc_rs.vllm` plugs into (vLLM 0.32-0.33).
Its model runner builds custom speculators from a ``SpeculatorConfig`` registered by a general
plugin; tasc-rs's plugin (the ``vllm.general_plugins`` entry point ``tasc_rs``, installed with the
package) registers :class:`~tasc_rs.vllm_v2.config.TascSpeculatorConfig` as the method ``"tasc"``
whenever vLLM has that interface, and does nothing on older vLLM::

    from vllm import LLM
    llm = LLM(model="my-model", speculative_config={
        "method": "tasc", "num_speculative_tokens": 8,
        "speculator_options": {"drafter": "/path/task.tasc"}})

``speculator_options`` takes the settings of :class:`tasc_rs.vllm.ProposerSettings` (without
it, the drafter is found as :mod:`tasc_rs.vllm` describes: ``$TASC_VLLM_CONFIG``,
``$TASC_VLLM_DRAFTER``, the model's directory). :func:`tasc_rs.vllm.speculative_config` returns
this form on vLLM >= 0.34.

This package only names the config (vLLM imports config modules in every process); the
speculator itself is :mod:`tasc_rs.vllm_v2.speculator`.
"""

from __future__ import annotations

#: The speculative method's name in ``speculative_config``.
METHOD = "tasc"
CONFIG_CLASS = "tasc_rs.vllm_v2.config.TascSpeculatorConfig"
_REGISTRY = "vllm.v1.worker.gpu.spec_decode.speculator_config"


def has_speculator_registry() -> bool:
    """Whether the installed vLLM registers custom speculators (0.34 and later)."""
    import importlib.util

    try:
        return importlib.util.find_spec(_REGISTRY) is not None
    except (ImportError, ValueError):  # no vllm, or a vllm without the package
        return False


def register() -> None:
    """The vLLM general plugin: registers the ``"tasc"`` method where vLLM has the registry
    (a no-op on vLLM 0.32-0.33, whose ``custom_class`` route needs no registration). vLLM may
    call it several times, in every process."""
    if not has_speculator_registry():
        return
    import importlib

    registry = importlib.import_module(_REGISTRY)
    if METHOD not in registry.registered_speculative_methods():
        registry.register_speculative_method(METHOD, CONFIG_CLASS)
