"""Build a TASC-spec corpus and drafter from task outputs with the target's tokenizer.

Each output is wrapped the way the model will produce it in a chat: the assistant header of the
chat template before it and the end-of-turn token after it (``<|im_start|>assistant\\n`` ...
``<|im_end|>`` for SmolLM2). The drafter thus learns how answers start (right after the prompt's
generation header) and how they end (so it can propose the end-of-turn token, letting the target
finish one forward pass earlier).

Example:
    >>> from tasc_rs.hf.corpus import build_drafter  # doctest: +SKIP
    >>> outputs = ["intent: alarm_set; slots: time=seven am"] * 10
    >>> drafter = build_drafter(tokenizer, outputs)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasc_rs._jsonl import checked_text, jsonl_values, text_field
from tasc_rs.aliases import bpe_respelling, space_aliases
from tasc_rs.errors import InvalidInputError

_SENTINEL = "\u2402TASC\u2403"


@dataclass(frozen=True)
class AnswerFrame:
    """Text the chat template puts around an assistant answer.

    Attributes:
        header: Text before the answer (generation prompt), e.g. ``"<|im_start|>assistant\\n"``.
        end: Text after the answer that the model generates, e.g. ``"<|im_end|>"``.
    """

    header: str
    end: str


def answer_frame(tokenizer: Any) -> AnswerFrame:
    """Find the assistant header and end-of-turn text of ``tokenizer``'s chat template.

    Without a chat template the header is empty and the end is the EOS token.

    Args:
        tokenizer: A transformers tokenizer.

    Returns:
        The :class:`AnswerFrame`.

    Example:
        >>> answer_frame(smollm2_tokenizer)  # doctest: +SKIP
        AnswerFrame(header='<|im_start|>assistant\\n', end='<|im_end|>')
    """
    eos = tokenizer.eos_token or ""
    if not getattr(tokenizer, "chat_template", None):
        return AnswerFrame("", eos)
    user = [{"role": "user", "content": "x"}]
    plain = tokenizer.apply_chat_template(user, tokenize=False)
    prompted = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [*user, {"role": "assistant", "content": _SENTINEL}], tokenize=False
    )
    header = prompted[len(plain) :] if prompted.startswith(plain) else ""
    before, _, after = full.partition(_SENTINEL)
    if not after and not before:
        return AnswerFrame(header, eos)
    return AnswerFrame(header, after.rstrip() or eos)


def read_outputs(path: str | Path, field: str = "output") -> Iterator[str]:
    """Yield ``row[field]`` of each line of a JSONL file (a plain string per line also works).

    Raises:
        InvalidInputError: A line is not JSON or lacks ``field``.

    Example:
        >>> rows = list(read_outputs("train.jsonl"))  # doctest: +SKIP
    """
    for lineno, row in jsonl_values(path):
        if isinstance(row, str):
            yield checked_text(row, f"{path}:{lineno}")
        else:
            yield text_field(path, lineno, row, field)


def read_pairs(
    path: str | Path, field: str = "output", input_field: str = "input"
) -> tuple[list[str], list[str] | None]:
    """The outputs of a JSONL file, and its requests (``input_field``) when every row has one
    (else ``None``: an answers-only corpus).

    Raises:
        InvalidInputError: A line is not JSON, lacks ``field``, or has a non-string input.
    """
    outputs: list[str] = []
    requests: list[str] | None = []
    for lineno, row in jsonl_values(path):
        if isinstance(row, str):
            outputs.append(checked_text(row, f"{path}:{lineno}"))
            requests = None
            continue
        outputs.append(text_field(path, lineno, row, field))
        if requests is not None and isinstance(row, dict) and input_field in row:
            requests.append(text_field(path, lineno, row, input_field))
        else:
            requests = None
    return outputs, requests


def request_lead(tokenizer: Any) -> str:
    """The whitespace the chat template puts right before a user message (``"\\n"`` after
    SmolLM2's ``<|im_start|>user``), so a request tokenizes as the prompt holds it."""
    if not getattr(tokenizer, "chat_template", None):
        return ""
    try:
        user = [{"role": "user", "content": _SENTINEL}]
        text = tokenizer.apply_chat_template(user, tokenize=False)
    except Exception:  # a template that needs more than one user message: no lead
        return ""
    before = text.partition(_SENTINEL)[0]
    return before[-1] if before[-1:].isspace() else ""


def tokenize_outputs(
    tokenizer: Any,
    texts: Iterable[str],
    wrap: bool = True,
    batch_size: int = 1024,
    progress: bool | None = None,
) -> list[np.ndarray]:
    """Tokenize task outputs into a corpus for ``NgramDrafter.from_corpus``.

    Args:
        tokenizer: The target model's tokenizer (fast tokenizers batch in Rust).
        texts: Output texts.
        wrap: Put the chat template's assistant header before and end-of-turn after each output.
        batch_size: Texts per tokenizer call.
        progress: Show a tqdm bar; default: only for more than 10,000 texts.

    Returns:
        One ``int64`` array of token ids per output.

    Example:
        >>> corpus = tokenize_outputs(tokenizer, ["intent: x; slots: none"])  # doctest: +SKIP
    """
    texts = list(texts)
    frame = answer_frame(tokenizer) if wrap else AnswerFrame("", "")
    show = len(texts) > 10_000 if progress is None else progress
    batches = range(0, len(texts), batch_size)
    if show:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="tokenizing corpus", unit="batch")
    corpus: list[np.ndarray] = []
    for start in batches:
        chunk = [frame.header + t + frame.end for t in texts[start : start + batch_size]]
        encoded = tokenizer(chunk, add_special_tokens=False)["input_ids"]
        corpus.extend(np.asarray(ids, dtype=np.int64) for ids in encoded)
    return corpus


def build_drafter(
    tokenizer: Any,
    texts: Iterable[str] | str | Path,
    *,
    field: str = "output",
    wrap: bool = True,
    preset: str = "tuned",
    n_max: int | None = None,
    min_count: int | None = None,
    corpus_weight: float | None = None,
    min_prob: float | None = None,
    progress: bool | None = None,
    token_aliases: bool = True,
    respelling: bool = True,
    requests: Iterable[str] | None = None,
    pairs: bool = True,
) -> Any:
    """Build a ``tasc_rs.NgramDrafter`` from output texts or a JSONL file of outputs, with
    their requests when known (from pairs: the copy pointer, ``NgramDrafter.from_pairs``).

    Args:
        tokenizer: The target model's tokenizer.
        texts: Output strings, or the path of a JSONL file (see :func:`read_outputs`).
        field: JSONL field holding the output.
        wrap: Wrap outputs in the chat template's answer header and end-of-turn.
        preset: ``"tuned"`` (default) or ``"paper"`` (see ``tasc_rs.drafter.PRESETS``): the
            settings below that are not given, and mixing and online learning.
        n_max: Longest n-gram order.
        min_count: Prune n-grams seen fewer times (the paper's p_min = 5).
        corpus_weight: Weight of the corpus model against the live-context model.
        min_prob: Default drafting threshold of the drafter.
        progress: Progress bar (see :func:`tokenize_outputs`).
        token_aliases: Give the drafter the tokenizer's space aliases
            (:func:`tasc_rs.space_aliases`; not saved with the file: set them again after
            ``NgramDrafter.load``).
        respelling: Give the drafter the tokenizer's byte-level BPE vocabulary
            (:func:`tasc_rs.bpe_respelling`; ``None`` for other tokenizers) so the context
            also counts the prompt's words as the answer splits them (not saved with the file).
        requests: The request of each output text (a JSONL file gives its rows' ``"input"``
            when every row has one).
        pairs: Build from (request, output) pairs when requests are known (saved with the
            file); ``False``: from the outputs alone.

    Returns:
        A ``tasc_rs.NgramDrafter``.

    Example:
        >>> d = build_drafter(tokenizer, "data/slurp/train.jsonl", min_count=2)  # doctest: +SKIP
    """
    from tasc_rs import NgramDrafter

    if isinstance(texts, (str, Path)):
        texts, found = read_pairs(texts, field)
        requests = found if requests is None else requests
    texts = list(texts)
    corpus = tokenize_outputs(tokenizer, texts, wrap=wrap, progress=progress)
    if not corpus:
        raise InvalidInputError("the corpus is empty: give at least one output text")
    settings: dict[str, Any] = {
        "preset": preset,
        "n_max": n_max,
        "min_count": min_count,
        "corpus_weight": corpus_weight,
        "min_prob": min_prob,
        "vocab_size": len(tokenizer),
    }
    requests = None if requests is None or not pairs else list(requests)
    if requests is not None:
        if len(requests) != len(texts):
            raise InvalidInputError(
                f"{len(requests)} requests for {len(texts)} outputs: give one per output"
            )
        lead = request_lead(tokenizer)
        ids = tokenizer([lead + r for r in requests], add_special_tokens=False)["input_ids"]
        drafter = NgramDrafter.from_pairs(ids, corpus, **settings)
    else:
        drafter = NgramDrafter.from_corpus(corpus, **settings)
    if token_aliases:
        drafter.token_aliases = space_aliases(tokenizer)
    if respelling:
        drafter.respelling = bpe_respelling(tokenizer)
    return drafter
