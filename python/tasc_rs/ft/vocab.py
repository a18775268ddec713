"""What a Hugging Face tokenizer's tokens spell, as bytes: read by the enrichment loop (to score
merges) and by tokenizer expansion (to spell new tokens). Its own module, so that
``enrichment.py`` and ``expand.py`` need not import each other.
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

from tasc_rs.errors import InvalidInputError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@cache
def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's ``bytes_to_unicode`` table (char -> byte)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def require_fast(tokenizer: Any) -> None:
    """Raises InvalidInputError unless ``tokenizer`` is a fast (Rust-backed) HF tokenizer."""
    if not getattr(tokenizer, "is_fast", False) or not hasattr(tokenizer, "backend_tokenizer"):
        raise InvalidInputError(
            f"{type(tokenizer).__name__} is not a fast (Rust-backed) Hugging Face tokenizer; "
            "load it with AutoTokenizer.from_pretrained(..., use_fast=True)"
        )


def _decoder_types(tokenizer: PreTrainedTokenizerBase) -> set[str]:
    decoder = json.loads(tokenizer.backend_tokenizer.to_str()).get("decoder") or {}
    parts = decoder.get("decoders", [decoder]) if decoder.get("type") == "Sequence" else [decoder]
    return {str(p.get("type")) for p in parts}


def is_byte_level(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when the tokenizer decodes with a byte-level (GPT-2 style) decoder.

    Example:
        >>> is_byte_level(smollm2_tokenizer)  # doctest: +SKIP
        True
    """
    require_fast(tokenizer)
    return "ByteLevel" in _decoder_types(tokenizer)


def token_bytes(tokenizer: PreTrainedTokenizerBase) -> list[bytes]:
    """What each token id decodes to, as bytes (ids ``0 .. len(tokenizer) - 1``).

    Byte-level vocabularies are mapped back through GPT-2's byte alphabet; SentencePiece-style
    ones map ``"▁"`` to a space and ``<0xNN>`` to byte NN. Added tokens give their content.

    Raises:
        InvalidInputError: Not a fast tokenizer.

    Example:
        >>> token_bytes(smollm2_tokenizer)[216]  # doctest: +SKIP
        b' '
    """
    require_fast(tokenizer)
    byte_level = is_byte_level(tokenizer)
    table = _byte_decoder()
    added = {i: t.content for i, t in tokenizer.added_tokens_decoder.items()}
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    out: list[bytes] = []
    for i, piece in enumerate(pieces):
        if i in added:
            out.append(added[i].encode("utf-8"))
        elif piece is None:
            out.append(b"")
        elif byte_level and all(c in table for c in piece):
            out.append(bytes(table[c] for c in piece))
        elif len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            out.append(bytes([int(piece[3:5], 16)]))
        else:
            out.append(piece.replace("\u2581", " ").encode("utf-8"))
    return out
