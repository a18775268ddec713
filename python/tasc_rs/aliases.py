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

import json
from typing import Any, NamedTuple

from tasc_rs.errors import ArgumentTypeError

__all__ = ["Respelling", "bpe_respelling", "space_aliases"]

#: How vocabularies spell a leading space: byte-level BPE (GPT-2, Llama 3, SmolLM), SentencePiece.
_MARKERS = ("\u0120", "\u2581", " ")


def space_aliases(tokenizer: Any) -> list[tuple[int, int]]:
    """``(word, space + word)`` id pairs of ``tokenizer``'s vocabulary, special and added
    tokens left out; ``[]`` if the vocabulary marks no leading spaces.

    ``tokenizer`` needs ``get_vocab()`` (a Hugging Face tokenizer has it); the space marker
    (``Ġ``, ``▁`` or a space) is the one most of the vocabulary starts with.
    """
    get_vocab = getattr(tokenizer, "get_vocab", None)
    if not callable(get_vocab):
        raise ArgumentTypeError(
            f"space_aliases needs a tokenizer with get_vocab(), got {type(tokenizer).__name__}"
        )
    vocab: dict[str, int] = dict(get_vocab())
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


class Respelling(NamedTuple):
    """A byte-level BPE vocabulary for :attr:`tasc_rs.NgramDrafter.respelling`: each token
    id's bytes (empty for special and added tokens) and the merges as id pairs in rank order."""

    token_bytes: list[bytes]
    merges: list[tuple[int, int]]


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, read backwards: printable stand-in character -> byte."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += range(ord("®"), ord("ÿ") + 1)
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def _is_byte_level(node: Any) -> bool:
    """Whether a tokenizer.json pre-tokenizer (possibly a sequence) splits at the byte level."""
    if not isinstance(node, dict):
        return False
    if node.get("type") == "ByteLevel":
        return True
    return any(_is_byte_level(n) for n in node.get("pretokenizers") or ())


def bpe_respelling(tokenizer: Any) -> Respelling | None:
    """The byte-level BPE vocabulary of a Hugging Face fast tokenizer, for drafters that read
    the prompt's words in their other spelling (:attr:`tasc_rs.NgramDrafter.respelling`);
    ``None`` for any other kind of tokenizer (SentencePiece, WordPiece, slow tokenizers).

    Example:
        >>> drafter.respelling = bpe_respelling(tokenizer)  # doctest: +SKIP
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    spec = json.loads(backend.to_str())
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or not _is_byte_level(spec.get("pre_tokenizer")):
        return None
    vocab: dict[str, int] = model.get("vocab") or {}
    if not vocab:
        return None
    decode = _byte_decoder()
    size = max(max(vocab.values()) + 1, len(tokenizer))
    token_bytes = [b""] * size
    for text, i in vocab.items():
        if all(c in decode for c in text):
            token_bytes[i] = bytes(decode[c] for c in text)
    merges = []
    for merge in model.get("merges") or ():
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        if left in vocab and right in vocab:
            merges.append((vocab[left], vocab[right]))
    return Respelling(token_bytes, merges)
