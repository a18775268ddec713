"""Hugging Face layer of tasc-rs: TASC-spec generation with transformers causal LMs.

Needs the ``hf`` extra (``pip install 'tasc-rs[hf]'``: torch, transformers).

Example:
    >>> from tasc_rs.hf import build_drafter, generate  # doctest: +SKIP
    >>> drafter = build_drafter(tokenizer, outputs)  # doctest: +SKIP
    >>> out = generate(model, input_ids, drafter, max_new_tokens=64)  # doctest: +SKIP
    >>> print(out.stats.summary())  # doctest: +SKIP
"""

from tasc_rs.hf.adaptive import AdaptiveDefaults, calibrate, choose_defaults
from tasc_rs.hf.decoding import check_model
from tasc_rs.hf.speculative import SpecOutput, generate, speculative_decoding
from tasc_rs.hf.stats import SpecStats

__all__ = [
    "AdaptiveDefaults",
    "SpecOutput",
    "SpecStats",
    "calibrate",
    "check_model",
    "choose_defaults",
    "generate",
    "speculative_decoding",
]
