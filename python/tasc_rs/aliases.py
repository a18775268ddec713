"""Token aliases from a tokenizer: each word's token paired with the same word after a space.

Answers copy spans of the prompt, but not always in the same position: after ``=``, a quote or
a newline the span's first word loses its leading space (a prompt's `` mon`` + ``a`` becomes
``event_name=mon`` + ``a``), so its token is one the prompt never had and the drafter's
context side finds nothing just where the rest of the span would follow. Given these pairs
(:attr:`tasc_rs.NgramDrafter.token_aliases`), a lookup that finds no context by a token reads
its partner's instead.

Example:
    >>> from transformers import AutoTokenizer  # doctest: +SKIP
    >>> drafter.token_aliases = space_aliases(AutoTokenizer.from_pretrained(path))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["space_aliases"]

#: How vocabularies spell a leading space: byte-level BPE (GPT-2, Llama 3, SmolLM), SentencePiece.
_MARKERS = ("\u0120", "\u2581", " ")


def space_aliases(tokenizer: Any) -> list[tuple[int, int]]:
    """``(word, space + word)`` id pairs of ``tokenizer``'s vocabulary, special and added
    tokens left out; ``[]`` if the vocabulary marks no leading spaces.

    ``tokenizer`` needs ``get_vocab()`` (a Hugging Face tokenizer has it); the space marker
    (``Ġ``, ``▁`` or a space) is the one most of the vocabulary starts with.
    """
    vocab: dict[str, int] = dict(tokenizer.get_vocab())
    skip = set(getattr(tokenizer, "all_special_ids", None) or ())
    added = getattr(tokenizer, "get_added_vocab", None)
    if callable(added):
        skip.update(int(i) for i in added().values())
    counts = {m: sum(1 for s in vocab if s.startswith(m) and len(s) > len(m)) for m in _MARKERS}
    marker = max(_MARKERS, key=lambda m: counts[m])
    if counts[marker] * 20 < len(vocab):  # under 5% of the vocabulary: no such convention
        return []
    pairs = []
    for text, spaced in vocab.items():
        if not text.startswith(marker) or len(text) == len(marker) or spaced in skip:
            continue
        word = vocab.get(text[len(marker) :])
        if word is not None and word not in skip:
            pairs.append((word, spaced))
    pairs.sort()
    return pairs
