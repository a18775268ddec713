"""A deliberately plain pure-Python reference of the TASC-spec drafter.

Dicts of Counters, no cleverness: the Rust drafter must propose exactly what this proposes
(same tokens, bit-identical probabilities). benches/ also times it as the pure-Python baseline.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

Dist = dict[int, int]


def count_ngrams(
    seqs: Sequence[Sequence[int]], n_max: int
) -> list[dict[tuple[int, ...], Counter[int]]]:
    """``table[m][context][token]`` = occurrences of ``context + (token,)``, |context| = m."""
    table: list[dict[tuple[int, ...], Counter[int]]] = [defaultdict(Counter) for _ in range(n_max)]
    for seq in seqs:
        for i, tok in enumerate(seq):
            for m in range(min(n_max - 1, i) + 1):
                table[m][tuple(seq[i - m : i])][tok] += 1
    return table


def longest_match(table: list[dict[tuple[int, ...], Dist]], history: Sequence[int]) -> Dist | None:
    """The next-token counts of the longest suffix of ``history`` that has any."""
    for m in range(min(len(table) - 1, len(history)), -1, -1):
        dist = table[m].get(tuple(history[len(history) - m :]))
        if dist:
            return dist
    return None


class ReferenceDrafter:
    """Task n-grams pruned at ``min_count`` mixed with unpruned context n-grams."""

    def __init__(
        self,
        corpus: Sequence[Sequence[int]],
        n_max: int = 4,
        min_count: int = 5,
        corpus_weight: float = 0.75,
        min_prob: float = 0.0,
    ) -> None:
        self.n_max = n_max
        self.corpus_weight = corpus_weight
        self.min_prob = min_prob
        self.table: list[dict[tuple[int, ...], Dist]] = []
        for level in count_ngrams(corpus, n_max):
            kept = {}
            for ctx, dist in level.items():
                d = {t: c for t, c in dist.items() if c >= min_count}
                if d:
                    kept[ctx] = d
            self.table.append(kept)

    def context_table(self, context: Sequence[int]) -> list[dict[tuple[int, ...], Dist]]:
        """The unpruned n-gram table of one request's context (what a session would hold)."""
        return [dict(level) for level in count_ngrams([list(context)], self.n_max)]

    def propose(
        self,
        context: Sequence[int],
        k: int,
        ctx_table: list[dict[tuple[int, ...], Dist]] | None = None,
    ) -> tuple[list[int], list[float]]:
        """Greedy chain of up to ``k`` tokens; ``ctx_table`` defaults to that of ``context``."""
        if ctx_table is None:
            ctx_table = self.context_table(context)
        history = list(context)
        w = self.corpus_weight
        ids: list[int] = []
        probs: list[float] = []
        for _ in range(k):
            corp = longest_match(self.table, history) or {}
            local = longest_match(ctx_table, history) or {}
            tc, tp = sum(corp.values()), sum(local.values())
            best: tuple[float, int] | None = None
            for tok in sorted(set(corp) | set(local)):
                a = corp.get(tok, 0) / tc if tc else 0.0
                b = local.get(tok, 0) / tp if tp else 0.0
                p = w * a + (1.0 - w) * b
                if best is None or p > best[0]:
                    best = (p, tok)
            if best is None or best[0] <= 0.0 or best[0] < self.min_prob:
                break
            ids.append(best[1])
            probs.append(best[0])
            history.append(best[1])
        return ids, probs
