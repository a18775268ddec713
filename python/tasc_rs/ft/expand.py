"""Hugging Face side of TASC-ft: token strings, tokenizer expansion, embedding initialization.

New tokens enter the tokenizer as *added tokens* (matched on the raw text before the base
model runs), so encoding an output yields the merged sequence the enrichment predicted except
where leftmost-longest added-token matching and the loop's merge order disagree, or where the
text around a match is tokenized differently once split off (see ``tests/test_ft_hf.py``).

Example:
    >>> from tasc_rs.ft import enrich, expand_model, expand_tokenizer  # doctest: +SKIP
    >>> result = enrich(outputs, tokenizer, budget=500)  # doctest: +SKIP
    >>> tokenizer = expand_tokenizer(tokenizer, result)  # doctest: +SKIP
    >>> expand_model(model, tokenizer, result)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any, cast

from tasc_rs.errors import InvalidInputError, TascError
from tasc_rs.ft.vocab import require_fast

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tasc_rs.ft.enrichment import EnrichmentResult


def expand_tokenizer(
    tokenizer: PreTrainedTokenizerBase, result: EnrichmentResult
) -> PreTrainedTokenizerBase:
    """A copy of ``tokenizer`` with the new tokens added (the original is left untouched).

    Each new token is an added token (``normalized=False``, not special) with the id the
    enrichment gave it. Save the copy with ``save_pretrained``.

    Raises:
        InvalidInputError: Not a fast tokenizer, or its size is not the result's base size.
        TascError: The tokenizer assigned different ids (it already held one of the strings).

    Example:
        >>> new = expand_tokenizer(tokenizer, result)  # doctest: +SKIP
        >>> len(new) == result.vocab_size  # doctest: +SKIP
        True
    """
    from tokenizers import AddedToken

    require_fast(tokenizer)
    if len(tokenizer) != result.base_vocab_size:
        raise InvalidInputError(
            f"the tokenizer has {len(tokenizer)} tokens but the enrichment was run over a base "
            f"vocabulary of {result.base_vocab_size}"
        )
    expanded = copy.deepcopy(tokenizer)
    texts = [t.text for t in result.tokens]
    expanded.add_tokens(
        [AddedToken(t, normalized=False, special=False, single_word=False) for t in texts]
    )
    got = cast("list[int]", expanded.convert_tokens_to_ids(texts)) if texts else []
    want = [t.id for t in result.tokens]
    if got != want or len(expanded) != result.vocab_size:
        raise TascError(
            f"the tokenizer gave the new tokens other ids than the enrichment (first: "
            f"{got[:3]} vs {want[:3]}); was it already expanded?"
        )
    return expanded


def prompt_tokenizer(
    tokenizer: PreTrainedTokenizerBase, base_vocab_size: int
) -> PreTrainedTokenizerBase:
    """A copy of an enriched ``tokenizer`` that encodes text with the base vocabulary only.

    Added tokens match anywhere in raw text, so an enriched tokenizer also merges inside a
    prompt: at M = 1000 on slurp a quarter of the test requests change tokenization
    (``" appointments"`` becomes ``"Ġ" + "appointments"``, a token learnt from
    ``event_name=appointments``). Encoding prompts with this view keeps them exactly as the base
    model saw them (token ids below ``base_vocab_size`` are shared), while the model still
    generates and is trained on the enriched answer tokens. Use it for encoding only: it cannot
    decode the new tokens.

    Raises:
        InvalidInputError: Not a fast tokenizer, or ``base_vocab_size`` outside
            ``[1, len(tokenizer)]``.

    Example:
        >>> view = prompt_tokenizer(enriched, base_vocab_size=49152)  # doctest: +SKIP
        >>> max(view("do i have any appointments")["input_ids"]) < 49152  # doctest: +SKIP
        True
    """
    from tokenizers import Tokenizer

    require_fast(tokenizer)
    if not 0 < base_vocab_size <= len(tokenizer):
        raise InvalidInputError(
            f"base_vocab_size must be in [1, {len(tokenizer)}] (the tokenizer's size), "
            f"got {base_vocab_size}"
        )
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    spec["added_tokens"] = [t for t in spec.get("added_tokens", []) if t["id"] < base_vocab_size]
    view = copy.deepcopy(tokenizer)
    view._tokenizer = Tokenizer.from_str(json.dumps(spec))  # no public setter
    if len(view) != base_vocab_size:
        raise TascError(
            f"the prompt view of the tokenizer has {len(view)} tokens, expected "
            f"{base_vocab_size}: are the added tokens past the base vocabulary?"
        )
    return view


def expand_model(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, result: EnrichmentResult
) -> PreTrainedModel:
    """Resize ``model``'s embeddings for the new tokens, in place, and initialize them.

    Each new input-embedding row, and each new LM-head row (and bias) when the head is not tied
    to the input embeddings, is the mean of the rows of the token's base constituents.
    Everything is checked before the model is touched.

    Args:
        model: A causal LM whose embedding table covers the base vocabulary.
        tokenizer: The expanded tokenizer (or the base one it came from).
        result: The enrichment both were expanded with.

    Returns:
        ``model``, resized.

    Raises:
        InvalidInputError: Not a fast tokenizer, or the model's or tokenizer's vocabulary
            disagrees with ``result``.

    Example:
        >>> expand_model(model, expand_tokenizer(tokenizer, result), result)  # doctest: +SKIP
    """
    import torch

    require_fast(tokenizer)
    base, size = result.base_vocab_size, result.vocab_size
    if len(tokenizer) not in (base, size):
        raise InvalidInputError(
            f"the tokenizer has {len(tokenizer)} tokens; expected {size} (expanded) or {base}"
        )
    lm: Any = model  # embedding accessors are untyped in transformers
    rows = int(lm.get_input_embeddings().weight.shape[0])
    if rows < base:
        raise InvalidInputError(
            f"the model's embedding table has {rows} rows but the tokenizer's base vocabulary "
            f"has {base} tokens: model and tokenizer do not match"
        )
    # A padded table (more rows than tokens) keeps its size: new ids land on unused rows.
    target = rows if rows > base and rows >= size else size
    constituents = [list(t.base_ids) for t in result.tokens]
    with torch.no_grad():
        old_in = lm.get_input_embeddings().weight[:base].detach().clone()
        head = lm.get_output_embeddings()
        tied = head is None or head.weight is lm.get_input_embeddings().weight
        old_out = None if tied else head.weight[:base].detach().clone()
        old_bias = None if tied or getattr(head, "bias", None) is None else head.bias[:base].clone()
        if target != rows:
            lm.resize_token_embeddings(target, mean_resizing=False)
        _fill_means(lm.get_input_embeddings().weight, old_in, constituents, base)
        head = lm.get_output_embeddings()
        if old_out is not None and head is not None:
            _fill_means(head.weight, old_out, constituents, base)
            if old_bias is not None and head.bias is not None:
                _fill_means(head.bias, old_bias, constituents, base)
    return model


def _fill_means(weight: Any, old: Any, constituents: list[list[int]], base: int) -> None:
    import torch

    for offset, ids in enumerate(constituents):
        index = torch.tensor(ids, dtype=torch.long, device=old.device)
        weight[base + offset] = old.index_select(0, index).mean(dim=0).to(weight.dtype)
