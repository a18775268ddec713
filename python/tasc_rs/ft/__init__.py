"""TASC-ft: enrich a tokenizer with the task's frequent output n-grams.

:func:`enrich` runs the Rust enrichment loop over a task's outputs (score ``count * (n - 1)``,
prefix-collision filter, incremental merges); :func:`expand_tokenizer` adds the new tokens to a
Hugging Face fast tokenizer and :func:`expand_model` resizes a model's embeddings, initializing
each new row as the mean of its constituent tokens' rows; :func:`prompt_tokenizer` gives the
base-vocabulary view that encodes requests to the enriched model. Fine-tuning:
:mod:`tasc_rs.ft.finetune` (``tasc finetune`` from the shell).

Example:
    >>> from tasc_rs.ft import enrich, expand_model, expand_tokenizer  # doctest: +SKIP
    >>> result = enrich(outputs, tokenizer, budget=500)  # doctest: +SKIP
    >>> new_tokenizer = expand_tokenizer(tokenizer, result)  # doctest: +SKIP
    >>> expand_model(model, new_tokenizer, result)  # doctest: +SKIP
"""

from tasc_rs.ft.enrichment import (
    DEFAULT_ALPHA,
    EnrichmentResult,
    NewToken,
    SkippedCandidate,
    enrich,
    enrich_ids,
)
from tasc_rs.ft.expand import expand_model, expand_tokenizer, prompt_tokenizer
from tasc_rs.ft.vocab import is_byte_level, token_bytes

__all__ = [
    "DEFAULT_ALPHA",
    "EnrichmentResult",
    "NewToken",
    "SkippedCandidate",
    "enrich",
    "enrich_ids",
    "expand_model",
    "expand_tokenizer",
    "is_byte_level",
    "prompt_tokenizer",
    "token_bytes",
]
