"""Pure-Python reference of the TASC-ft enrichment loop (recounts everything every step).

Slow and obvious on purpose: the Rust core (``tasc_rs._core.enrich_vocabulary``) must pick the
same tokens. Definitions follow the Rust ``enrich`` module docs.

Example:
    >>> enrich_reference([[0, 1, 2], [0, 1, 2]], [b"a", b"b", b"c"], budget=1)[0].string
    b'abc'
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class RefToken:
    """One added token."""

    parts: tuple[int, ...]
    string: bytes
    count: int
    score: int
    pcs: float
    tokens_after: int


def prefix_collision_score(current: list[list[int]], strings: list[bytes], s: bytes) -> float:
    """Fraction of the occurrences of ``s`` not aligned with the current token boundaries.

    ``current`` is the current tokenization and ``strings`` the strings of all its tokens.

    Example:
        >>> prefix_collision_score([[0, 1], [0, 2]], [b" in", b" the", b" therapy"], b" in the")
        0.5
    """
    aligned = total = 0
    for seq in current:
        text = b"".join(strings[t] for t in seq)
        bounds = {0}
        offset = 0
        for t in seq:
            offset += len(strings[t])
            bounds.add(offset)
        for start in range(len(text)):
            if text.startswith(s, start):
                total += 1
                aligned += start in bounds and start + len(s) in bounds
    return (total - aligned) / total if total else 0.0


def byte_level_decodes(text: str) -> bool:
    """True unless every char is in GPT-2's byte alphabet and one is non-ASCII.

    Example:
        >>> byte_level_decodes("café"), byte_level_decodes(" café")
        (False, True)
    """
    alphabet = all(
        33 <= ord(c) <= 126 or 161 <= ord(c) <= 172 or 174 <= ord(c) <= 323 for c in text
    )
    return text.isascii() or not alphabet


def replace(seq: list[int], parts: tuple[int, ...], new_id: int) -> list[int]:
    """Replace occurrences of ``parts`` left to right without overlap.

    Example:
        >>> replace([1, 1, 1], (1, 1), 9)
        [9, 1]
    """
    out: list[int] = []
    i, n = 0, len(parts)
    while i < len(seq):
        if tuple(seq[i : i + n]) == parts:
            out.append(new_id)
            i += n
        else:
            out.append(seq[i])
            i += 1
    return out


def enrich_reference(
    seqs: list[list[int]],
    strings: list[bytes],
    budget: int,
    n_max: int = 4,
    alpha: float = 0.1,
    min_count: int = 2,
    byte_level: bool = False,
    boundaries: str = "",
) -> list[RefToken]:
    """Run the enrichment loop by recounting every n-gram at every step.

    Example:
        >>> [t.parts for t in enrich_reference([[0, 0, 0]] * 2, [b"a"], 1, min_count=1)]
        [(0, 0)]
    """
    current = [list(s) for s in seqs]
    vocab = list(strings)
    rejected: set[tuple[int, ...]] = set()
    added: list[RefToken] = []
    while len(added) < budget:
        counts: Counter[tuple[int, ...]] = Counter()
        for seq in current:
            for n in range(2, n_max + 1):
                for i in range(len(seq) - n + 1):
                    counts[tuple(seq[i : i + n])] += 1
        # Highest score first; ties: shorter n-gram, then smaller ids.
        ranked = sorted(
            ((c * (len(k) - 1), k, c) for k, c in counts.items() if c >= min_count),
            key=lambda r: (-r[0], len(r[1]), r[1]),
        )
        chosen = None
        for score, key, count in ranked:
            if key in rejected:
                continue
            s = b"".join(vocab[t] for t in key)
            try:
                text = s.decode("utf-8")
            except UnicodeDecodeError:
                valid = False
            else:
                valid = (
                    (not byte_level or byte_level_decodes(text))
                    and not any(c in text[1:] for c in boundaries)
                    and s not in vocab
                )
            pcs = prefix_collision_score(current, vocab, s) if valid else float("nan")
            if valid and pcs < alpha:
                chosen = (key, s, count, score, pcs)
                break
            rejected.add(key)
        if chosen is None:
            break
        key, s, count, score, pcs = chosen
        new_id = len(vocab)
        vocab.append(s)
        current = [replace(seq, key, new_id) for seq in current]
        total = sum(len(seq) for seq in current)
        added.append(RefToken(key, s, count, score, pcs, total))
    return added
