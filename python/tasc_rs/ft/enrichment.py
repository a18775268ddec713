"""The enrichment driver: task outputs in, new tokens (with their compression curve) out.

The loop itself runs in Rust (``tasc_rs._core.enrich_vocabulary``); see the Rust ``enrich``
module docs for the exact scoring, tie-break and prefix collision score (PCS) definitions.
This module tokenizes, validates and wraps the result.

Example:
    >>> from tasc_rs.ft import enrich_ids
    >>> r = enrich_ids([[0, 1, 2], [0, 1, 2]], [b"a", b"b", b"c"], budget=1)
    >>> r.tokens[0].text, r.compression_curve()
    ('abc', [6, 2])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tasc_rs._core import CorpusBuilder, Enrichment, enrich_vocabulary
from tasc_rs.errors import ArgumentTypeError, InvalidConfigError, InvalidInputError
from tasc_rs.ft.vocab import is_byte_level, token_bytes

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

#: Default PCS threshold: a candidate is skipped when at least 5% of its boundary-starting
#: occurrences in the corpus end inside a base token.
DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class NewToken:
    """One token added by the enrichment loop.

    Attributes:
        id: Its id (the base vocabulary size plus its rank).
        text: Its string.
        parts: The n-gram of then-current token ids it replaced (may hold earlier new ids).
        base_ids: The same n-gram spelled in base token ids.
        count: Occurrences of the n-gram (overlapping ones included) when it was chosen.
        score: ``count * (n - 1)``.
        merged: Occurrences actually replaced.
        pcs: Its prefix collision score.
        tokens_after: Corpus length in tokens once it was merged in.
    """

    id: int
    text: str
    parts: tuple[int, ...]
    base_ids: tuple[int, ...]
    count: int
    score: int
    merged: int
    pcs: float
    tokens_after: int


@dataclass(frozen=True)
class SkippedCandidate:
    """A candidate that won an iteration but was not added.

    Attributes:
        parts: Its n-gram of then-current token ids.
        text: Its string (undecodable bytes replaced).
        score: ``count * (n - 1)`` when it was met.
        pcs: Its prefix collision score (NaN when skipped before it was computed).
        reason: ``"prefix_collision"``, ``"duplicate_string"``, ``"not_utf8"``,
            ``"byte_level_decode"`` or ``"crosses_boundary"``.
        step: Tokens added before it was met.
    """

    parts: tuple[int, ...]
    text: str
    score: int
    pcs: float
    reason: str
    step: int


@dataclass(frozen=True)
class EnrichmentResult:
    """The new tokens in the order added, with everything needed to plot and apply them.

    A prefix of the tokens is itself the result of a smaller budget (the loop is greedy), so
    :meth:`truncate` gives the result for any budget up to ``len(tokens)``.

    Attributes:
        base_vocab_size: Size of the base vocabulary; new ids start here.
        initial_tokens: Corpus length in base tokens.
        tokens: The new tokens.
        skipped: Candidates skipped (PCS, duplicate strings, undecodable strings).
        exhausted: True when candidates ran out before the budget (``strict=False`` only).
        settings: ``budget``, ``n_max``, ``alpha``, ``min_count``, ``byte_level`` and
            ``boundaries``; from :func:`enrich` with ``inputs`` also ``exclude_copied`` and
            ``copied_tokens`` (base tokens held out of every merge).

    Example:
        >>> r = enrich_ids([[0, 1, 0, 1]] * 3, [b"a", b"b"], budget=2, n_max=2, alpha=1.0)
        >>> [t.text for t in r.tokens], r.truncate(1).apply([0, 1, 0, 1]).tolist()
        (['ab', 'abab'], [2, 2])
    """

    base_vocab_size: int
    initial_tokens: int
    tokens: tuple[NewToken, ...]
    skipped: tuple[SkippedCandidate, ...]
    exhausted: bool
    settings: dict[str, Any]
    _native: Enrichment = field(repr=False, compare=False)

    @property
    def vocab_size(self) -> int:
        """Size of the enriched vocabulary."""
        return self.base_vocab_size + len(self.tokens)

    def compression_curve(self) -> list[int]:
        """Corpus length in tokens after 0, 1, ..., ``len(tokens)`` new tokens."""
        return [self.initial_tokens, *(t.tokens_after for t in self.tokens)]

    def compression_ratio(self) -> float:
        """Base corpus length over enriched corpus length (1.0 with no new token)."""
        return self.initial_tokens / self.compression_curve()[-1]

    def truncate(self, budget: int) -> EnrichmentResult:
        """The result the loop gives with a smaller ``budget`` (its first tokens).

        Raises:
            InvalidInputError: ``budget`` is negative.
        """
        if budget < 0:
            raise InvalidInputError(f"budget must be >= 0, got {budget}")
        kept = self.tokens[:budget]
        skipped = tuple(s for s in self.skipped if s.step < budget)
        exhausted = self.exhausted and budget > len(self.tokens)
        settings = {**self.settings, "budget": budget}
        return replace(self, tokens=kept, skipped=skipped, exhausted=exhausted, settings=settings)

    def apply(self, ids: Sequence[int] | npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int64]:
        """Re-tokenize one base-token sequence with the new tokens, as the loop would have.

        Raises:
            InvalidInputError: An id is outside the base vocabulary.
        """
        return self._native.apply(ids, len(self.tokens))


def _wrap(native: Enrichment, settings: dict[str, Any]) -> EnrichmentResult:
    columns = zip(
        native.ids().tolist(),
        native.strings(),
        native.parts(),
        native.base_ids(),
        native.counts().tolist(),
        native.scores().tolist(),
        native.merged().tolist(),
        native.pcs().tolist(),
        native.tokens_after().tolist(),
        strict=True,
    )
    tokens = tuple(
        NewToken(i, s.decode("utf-8"), tuple(p), tuple(b), c, sc, m, pcs, after)
        for i, s, p, b, c, sc, m, pcs, after in columns
    )
    skipped = tuple(
        SkippedCandidate(tuple(p), s.decode("utf-8", errors="replace"), sc, pcs, reason, step)
        for p, s, sc, pcs, reason, step in native.skipped()
    )
    return EnrichmentResult(
        base_vocab_size=native.base_vocab_size,
        initial_tokens=native.initial_tokens,
        tokens=tokens,
        skipped=skipped,
        exhausted=native.exhausted,
        settings=settings,
        _native=native,
    )


def enrich_ids(
    sequences: Sequence[Sequence[int] | npt.NDArray[np.integer[Any]]],
    vocab_bytes: Sequence[bytes],
    budget: int,
    n_max: int = 4,
    alpha: float = DEFAULT_ALPHA,
    min_count: int = 2,
    strict: bool = True,
    byte_level: bool = False,
    boundaries: str = "",
) -> EnrichmentResult:
    """Run the enrichment loop over base-token sequences, without any tokenizer.

    Args:
        sequences: The task outputs as base token ids.
        vocab_bytes: ``vocab_bytes[i]`` is what base token ``i`` decodes to.
        budget: Tokens to add (the paper's M).
        n_max: Longest candidate n-gram (2..8).
        alpha: Skip candidates whose prefix collision score is ``>= alpha`` (1 disables it).
        min_count: Ignore n-grams occurring fewer times.
        strict: Raise instead of returning fewer than ``budget`` tokens.
        byte_level: Skip strings a byte-level BPE decoder would not give back.
        boundaries: ASCII characters that delimit fields of the outputs (e.g. ``";"``): a new
            token may start with one but never holds one after its first character, so no
            token fuses two fields. Empty (default, the paper's loop): no constraint.

    Returns:
        The new tokens and the compression curve.

    Raises:
        InvalidInputError: Empty corpus, ids outside the vocabulary, or (with ``strict``)
            fewer candidates than ``budget``.
        InvalidConfigError: ``budget``, ``n_max``, ``alpha`` or ``min_count`` out of range, or
            a non-ASCII boundary.

    Example:
        >>> enrich_ids([[0, 0, 0]] * 2, [b"a"], budget=1).tokens[0].merged
        2
    """
    if not isinstance(boundaries, str):
        raise ArgumentTypeError(f"boundaries must be a str, got {type(boundaries).__name__}")
    if not boundaries.isascii():
        raise InvalidConfigError(f"boundaries must be ASCII characters, got {boundaries!r}")
    corpus = CorpusBuilder(vocab_size=max(len(vocab_bytes), 1))
    for i, seq in enumerate(sequences):
        try:
            corpus.add(seq)
        except InvalidInputError as e:
            raise type(e)(f"sequences[{i}]{str(e).removeprefix('ids')}") from None
    native = enrich_vocabulary(
        corpus,
        list(vocab_bytes),
        budget,
        n_max,
        alpha,
        min_count,
        strict,
        byte_level,
        boundaries.encode("ascii"),
    )
    settings = {
        "budget": budget,
        "n_max": n_max,
        "alpha": alpha,
        "min_count": min_count,
        "byte_level": byte_level,
        "boundaries": boundaries,
    }
    return _wrap(native, settings)


def enrich(
    outputs: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    budget: int,
    n_max: int = 4,
    alpha: float = DEFAULT_ALPHA,
    min_count: int = 2,
    strict: bool = True,
    boundaries: str = "",
    inputs: Sequence[str] | None = None,
) -> EnrichmentResult:
    """Find ``budget`` new tokens for a task from its outputs and a Hugging Face fast tokenizer.

    Args:
        outputs: The task's training outputs (the text the model must generate).
        tokenizer: The base tokenizer (a fast tokenizer; byte-level BPE or SentencePiece-style).
        budget: Tokens to add (the paper's M; 150..1000).
        n_max: Longest candidate n-gram in tokens (the paper uses 4).
        alpha: PCS threshold: skip strings that often end inside a base token.
        min_count: Ignore n-grams occurring fewer times.
        strict: Raise if fewer than ``budget`` candidates exist instead of returning fewer.
        boundaries: ASCII characters that delimit fields (e.g. ``";"``); no new token holds
            one after its first character (see :func:`enrich_ids`).
        inputs: The request of each output (same order). When given, the output's words that
            also occur in its request (``\\w+`` runs, compared case-insensitively) are values
            copied from the request: every base token overlapping one is held out of all
            merges, so new tokens hold only the output's own structure (field names, labels,
            punctuation) and the model spells copied values with the same tokens as at M = 0.
            Held-out tokens still count in the compression curve. Not in the paper.

    Returns:
        The new tokens, to pass to :func:`~tasc_rs.ft.expand_tokenizer`.

    Raises:
        InvalidInputError: Not a fast tokenizer, no outputs, outputs whose tokens do not spell
            them back, ``inputs`` of another length, or too few candidates with ``strict``.
        InvalidConfigError: A setting is out of range.

    Example:
        >>> result = enrich(outputs, tokenizer, budget=500)  # doctest: +SKIP
        >>> result.compression_ratio()  # doctest: +SKIP
        4.1
    """
    vocab = token_bytes(tokenizer)
    if len(outputs) == 0:
        raise InvalidInputError("the corpus holds no outputs")
    if inputs is not None and len(inputs) != len(outputs):
        raise InvalidInputError(
            f"inputs holds {len(inputs)} requests for {len(outputs)} outputs; give one per output"
        )
    batch = tokenizer(
        list(outputs), add_special_tokens=False, return_offsets_mapping=inputs is not None
    )
    encoded = batch["input_ids"]
    for text, ids in zip(outputs, encoded, strict=True):
        spelled = b"".join(vocab[i] for i in ids)
        if spelled != text.encode("utf-8"):
            raise InvalidInputError(
                f"output {text[:80]!r} tokenizes to tokens spelling {spelled[:80]!r}: the "
                "tokenizer normalizes text, so new tokens could not round-trip"
            )
    extra: dict[str, Any] = {}
    if inputs is not None:
        sequences: list[list[int]] = []
        copied = 0
        for text, source, ids, offsets in zip(
            outputs, inputs, encoded, batch["offset_mapping"], strict=True
        ):
            held = copied_token_mask(text, source, offsets)
            copied += sum(held)
            sequences.extend(split_held_out(ids, held))
        encoded = sequences
        extra = {"exclude_copied": True, "copied_tokens": copied}
    result = enrich_ids(
        encoded,
        vocab,
        budget,
        n_max=n_max,
        alpha=alpha,
        min_count=min_count,
        strict=strict,
        byte_level=is_byte_level(tokenizer),
        boundaries=boundaries,
    )
    if extra:
        result = replace(result, settings={**result.settings, **extra})
    return result


_WORD = re.compile(r"\w+")


def copied_token_mask(output: str, source: str, offsets: Sequence[tuple[int, int]]) -> list[bool]:
    """Which tokens of ``output`` overlap a word copied from ``source``.

    A word is a ``\\w+`` run; it is copied when the same word (case-insensitive) occurs in
    ``source``. ``offsets`` are the tokens' character spans in ``output`` (a fast tokenizer's
    ``offset_mapping``); a token overlapping a copied word in any character is marked.

    Example:
        >>> copied_token_mask("city=paris, unit=c", "weather in paris", [(0, 5), (5, 10), (10, 18)])
        [False, True, False]
    """
    words = {w.casefold() for w in _WORD.findall(source)}
    spans = [m.span() for m in _WORD.finditer(output) if m.group().casefold() in words]
    return [any(a < end and start < b for start, end in spans) for a, b in offsets]


def split_held_out(ids: Sequence[int], held: Sequence[bool]) -> list[list[int]]:
    """Cut ``ids`` so no merge can include a held-out token.

    Each held-out token becomes a sequence of its own (it still counts in the corpus length,
    but no n-gram holds it); the runs between them stay whole.

    Example:
        >>> split_held_out([1, 2, 3, 4, 5], [False, False, True, False, False])
        [[1, 2], [3], [4, 5]]
    """
    pieces: list[list[int]] = []
    run: list[int] = []
    for token, out in zip(ids, held, strict=True):
        if out:
            if run:
                pieces.append(run)
                run = []
            pieces.append([int(token)])
        else:
            run.append(int(token))
    if run:
        pieces.append(run)
    return pieces
