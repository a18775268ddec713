"""Verifying a token tree in one forward pass, and keeping the accepted branch.

A draft tree (``DraftSession.propose_tree``) is flat: node ``i`` has a token, a parent (an earlier
node, or -1 for a child of the last accepted token) and the drafter's probability. One forward
pass checks every node: the nodes follow the real tokens of the step, each at the position its
depth gives it, and a 4-D attention mask lets each node see the cache, the real tokens and its own
ancestors only. Logits row 0 continues the accepted text; row ``1 + i`` continues node ``i``.

Acceptance walks down from the root. Greedy: follow the child whose token is the target's argmax,
so the emitted tokens are exactly what plain greedy decoding emits. Sampling: at each node the
children are tried in the drafter's order; child ``c`` is accepted with probability ``r(c)``,
where ``r`` is the target's distribution ``p`` with the children already rejected removed and
renormalised; if every child is rejected the token is drawn from ``r`` (``p`` without any
child). This is sequential sampling from ``p`` itself, one category at a time, so every emitted
token has exactly the target's distribution: ``P(c_j) = prod_{i<j}(1 - r_i(c_i)) r_j(c_j)
= p(c_j)`` and ``P(y) = (1 - sum_j p(c_j)) p(y) / (1 - sum_j p(c_j)) = p(y)`` for any other
``y``. The chain's rule is the case of one child per node. The drafter's probabilities never
enter acceptance; they only shape the tree.

The cache then keeps the accepted nodes' entries, moved to sit right after the accepted text,
and drops the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


@dataclass(frozen=True)
class Tree:
    """A drafted tree: tokens, parents (-1 = the root) and drafter probabilities, in order."""

    tokens: list[int]
    parents: list[int]
    probs: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)

    def depths(self) -> list[int]:
        """Each node's depth: 1 for a child of the root."""
        depths: list[int] = []
        for p in self.parents:
            depths.append(1 if p < 0 else depths[p] + 1)
        return depths

    def children(self) -> list[list[int]]:
        """``children()[i + 1]``: node ``i``'s children in order; ``children()[0]``: the root's."""
        kids: list[list[int]] = [[] for _ in range(len(self.tokens) + 1)]
        for i, p in enumerate(self.parents):
            kids[p + 1].append(i)
        return kids

    def path(self, node: int) -> list[int]:
        """The tokens from the root down to ``node`` (inclusive)."""
        out: list[int] = []
        while node >= 0:
            out.append(self.tokens[node])
            node = self.parents[node]
        return out[::-1]

    def within(self, vocab: int, max_depth: int, stop: frozenset[int] = frozenset()) -> Tree:
        """The tree without nodes whose id is outside ``[0, vocab)`` or that lie deeper than
        ``max_depth``, and without their descendants; a node whose id is in ``stop`` (an
        end-of-sequence id) keeps no children."""
        keep: dict[int, int] = {-1: -1}
        depths = self.depths()
        tokens: list[int] = []
        parents: list[int] = []
        probs: list[float] = []
        for i, (t, p) in enumerate(zip(self.tokens, self.parents, strict=True)):
            ended = p >= 0 and self.tokens[p] in stop
            if 0 <= t < vocab and depths[i] <= max_depth and p in keep and not ended:
                keep[i] = len(tokens)
                tokens.append(t)
                parents.append(keep[p])
                probs.append(float(self.probs[i]))
        if len(tokens) == len(self.tokens):
            return self
        return Tree(tokens, parents, np.asarray(probs, dtype=np.float64))


def supports_trees(model: object, cache: DynamicCache) -> bool:
    """Whether ``model`` can verify trees: an attention that takes a custom 4-D mask (eager or
    SDPA) and a cache of plain full-attention layers whose entries can be moved."""
    config = getattr(model, "config", None)
    impl = getattr(config, "_attn_implementation", None)
    layers = getattr(cache, "layers", None)
    return (
        impl in ("eager", "sdpa")
        and layers is not None
        and all(type(layer) is DynamicLayer for layer in layers)
    )


def tree_inputs(
    tree: Tree, past: int, real: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The additive 4-D attention mask and the position ids of one tree step.

    ``past`` positions are cached; the step feeds ``real`` tokens of the text (the prompt on the
    first step, the last accepted token after that) and then the tree's nodes.
    """
    n = len(tree)
    q = real + n
    allowed = np.zeros((q, past + q), dtype=bool)
    allowed[:, :past] = True
    allowed[:real, past : past + real] = np.tril(np.ones((real, real), dtype=bool))
    allowed[real:, past : past + real] = True
    ancestors = np.eye(n, dtype=bool)
    for i, p in enumerate(tree.parents):
        if p >= 0:
            ancestors[i] |= ancestors[p]
    allowed[real:, past + real :] = ancestors
    mask = torch.zeros((1, 1, q, past + q), dtype=dtype)
    mask.masked_fill_(torch.from_numpy(~allowed), torch.finfo(dtype).min)
    depth = np.asarray(tree.depths(), dtype=np.int64)
    positions = np.concatenate([np.arange(past, past + real), past + real - 1 + depth])
    return mask.to(device), torch.from_numpy(positions).unsqueeze(0).to(device)


def accept(
    tree: Tree,
    scores: Callable[[int], torch.Tensor],
    do_sample: bool,
    generator: torch.Generator | None,
) -> tuple[list[int], int]:
    """Walk the tree from the root; return the accepted nodes and the target's own next token.

    ``scores(r)`` gives the processed scores of logits row ``r`` (0: the root, ``1 + i``: node
    ``i``). See the module docstring for why sampling stays lossless.
    """
    kids = tree.children()
    path: list[int] = []
    node = -1
    while True:
        row = scores(node + 1)
        children = kids[node + 1]
        if not do_sample:
            token = int(row.argmax())
            nxt = next((c for c in children if tree.tokens[c] == token), None)
            if nxt is None:
                return path, token
            path.append(nxt)
            node = nxt
            continue
        device = generator.device if generator is not None else row.device
        probs = torch.softmax(row.to(device=device, dtype=torch.float32), dim=-1)
        chosen = None
        for c in children:
            mass = float(probs.sum())
            u = float(torch.rand((), generator=generator, device=device))
            if mass > 0 and u * mass < float(probs[tree.tokens[c]]):
                chosen = c
                break
            probs[tree.tokens[c]] = 0.0
        if chosen is None:
            if not float(probs.sum()) > 0:  # rounding only: the children held all the mass
                return path, int(row.argmax())
            return path, int(torch.multinomial(probs, 1, generator=generator))
        path.append(chosen)
        node = chosen


def move_path(cache: DynamicCache, base: int, path: list[int]) -> None:
    """Move the accepted nodes' cache entries (node ``i``'s sits at ``base + i``) to
    ``base, base + 1, ...``; cropping the cache to ``base + len(path)`` then drops the rest."""
    if path != list(range(len(path))):
        src = torch.tensor([base + i for i in path])
        for layer in cache.layers:
            keys, values = layer.keys, layer.values
            idx = src.to(keys.device)
            keys[:, :, base : base + len(path)] = keys.index_select(2, idx)
            values[:, :, base : base + len(path)] = values.index_select(2, idx)
