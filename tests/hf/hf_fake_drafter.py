"""A tiny pure-Python n-gram drafter with the ``tasc_rs.NgramDrafter`` protocol.

Used by the hf tests when the Rust extension is not built; it follows the same algorithm
(backoff n-grams over a corpus mixed with n-grams of the live context, greedy chain).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np


class _Ngrams:
    def __init__(self, n_max: int) -> None:
        self.n_max = n_max
        self.counts: defaultdict[tuple[int, ...], Counter[int]] = defaultdict(Counter)

    def add(self, seq: Sequence[int]) -> None:
        for i, tok in enumerate(seq):
            for order in range(0, self.n_max):
                if i - order < 0:
                    break
                self.counts[tuple(seq[i - order : i])][tok] += 1

    def prune(self, min_count: int) -> None:
        for ctx in list(self.counts):
            kept = Counter({t: c for t, c in self.counts[ctx].items() if c >= min_count})
            if kept:
                self.counts[ctx] = kept
            else:
                del self.counts[ctx]

    def dist(self, ctx: Sequence[int]) -> dict[int, float]:
        for order in range(min(self.n_max - 1, len(ctx)), -1, -1):
            c = self.counts.get(tuple(ctx[len(ctx) - order :]))
            if c:
                total = sum(c.values())
                return {t: n / total for t, n in c.items()}
        return {}


class FakeSession:
    def __init__(self, drafter: FakeDrafter, prompt: Iterable[int]) -> None:
        self.drafter = drafter
        self.context: list[int] = []
        self.ngrams = _Ngrams(drafter.n_max)
        self.extend(prompt)

    def extend(self, ids: Iterable[int]) -> None:
        self.context.extend(int(t) for t in ids)
        self.ngrams = _Ngrams(self.drafter.n_max)
        self.ngrams.add(self.context)

    def propose(self, k: int, min_prob: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        threshold = self.drafter.min_prob if min_prob is None else min_prob
        w = self.drafter.corpus_weight
        ctx = list(self.context)
        ids: list[int] = []
        probs: list[float] = []
        for _ in range(k):
            pc, pp = self.drafter.corpus.dist(ctx), self.ngrams.dist(ctx)
            mixed = {t: w * pc.get(t, 0.0) + (1 - w) * pp.get(t, 0.0) for t in set(pc) | set(pp)}
            if not mixed:
                break
            tok = max(sorted(mixed), key=lambda t: mixed[t])
            if mixed[tok] < threshold:
                break
            ids.append(tok)
            probs.append(mixed[tok])
            ctx.append(tok)
        return np.asarray(ids, dtype=np.int64), np.asarray(probs, dtype=np.float64)


class FakeDrafter:
    def __init__(self, n_max: int, corpus_weight: float, min_prob: float) -> None:
        self.n_max = n_max
        self.corpus_weight = corpus_weight
        self.min_prob = min_prob
        self.corpus = _Ngrams(n_max)

    @classmethod
    def from_corpus(
        cls,
        corpus: Iterable[Sequence[int]],
        n_max: int = 4,
        min_count: int = 5,
        corpus_weight: float = 0.75,
        min_prob: float = 0.0,
        vocab_size: int | None = None,
    ) -> FakeDrafter:
        d = cls(n_max, corpus_weight, min_prob)
        for seq in corpus:
            d.corpus.add([int(t) for t in seq])
        d.corpus.prune(min_count)
        return d

    def session(self, prompt_ids: Iterable[int]) -> FakeSession:
        return FakeSession(self, prompt_ids)

    def propose(self, context_ids: Iterable[int], k: int, min_prob: float | None = None):
        return self.session(context_ids).propose(k, min_prob)
