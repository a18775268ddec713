"""Batched TASC-spec: every live row drafts, then all rows are verified in one forward pass.

The KV cache is one padded ``DynamicCache`` for the batch, read through a 2-D attention mask:

- each step appends one block of columns to every row: the row's pending token (the prompt on
  the first step) and its draft, right-padded to the longest draft of the step;
- a row's rejected draft tokens and its padding stay in the cache as columns its mask hides, so
  no row is ever rolled back on its own; columns that every row hides at the end of the cache are
  cropped, and a finished row leaves the batch (``batch_select_indices``), so it costs nothing
  more;
- positions are per row (the count of the row's real tokens before each one), so a row's
  attention and positions are exactly those of decoding it alone.

Acceptance is per row, with the same rule as the single-row loop (greedy: the longest prefix the
target agrees with; sampling: the point-mass rule of :mod:`tasc_rs.hf.decoding`), so greedy
output is token-identical to plain decoding and sampling keeps each row's distribution.

How long the drafts are. On a GPU verifying more positions is nearly free; on a CPU a batch's
step costs about ``rows x width``, so the loop measures the verify cost at the batch's size
(:func:`tasc_rs.hf.calibrate` with ``batch=``) and, each step, keeps the common draft width ``D``
with the most expected tokens per unit of that cost, summed over the rows. Expected from each
draft's own probabilities, scaled by how many drafted tokens the model has actually accepted
so far against how many those probabilities predicted (n-gram probabilities underrate a
fine-tuned model and overrate a drifting one). Where drafting cannot pay, ``D`` is 0 and the
step is plain decoding.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from tasc_rs.hf.decoding import Drafter, _crop, _Decoder, _finish, _truncates_by_cost
from tasc_rs.hf.stats import SpecStats


def _expected(probs: np.ndarray, width: int) -> float:
    """Expected tokens emitted by a draft cut to ``width``: 1 + sum of prefix products."""
    if width <= 0:
        return 1.0
    return 1.0 + float(np.cumprod(probs[:width]).sum())


def batch_width(
    drafts: list[tuple[list[int], np.ndarray]],
    cost: tuple[float, ...] | None,
    gain: float = 1.0,
) -> int:
    """The common draft width with the most expected tokens per unit of step cost.

    ``cost[d]`` is the relative cost of a step whose rows carry ``d`` draft positions (``cost[0]
    == 1``); past its end the last slope continues. Without a profile, the longest draft.
    ``gain`` scales the drafted tokens each draft is expected to have accepted (the ratio of
    accepted to expected observed so far: n-gram probabilities under- or overrate a model).

    Example:
        >>> p = np.array([0.9, 0.9, 0.2, 0.1])
        >>> batch_width([([5, 6, 7, 8], p)] * 4, (1.0, 1.1, 1.2, 1.9, 2.6))
        2
        >>> batch_width([([5, 6, 7, 8], p)] * 4, (1.0, 3.0, 5.0, 7.0, 9.0))  # too dear: plain
        0
    """
    longest = max((len(ids) for ids, _ in drafts), default=0)
    if cost is None or longest == 0:
        return longest

    def at(d: int) -> float:
        if d < len(cost):
            return cost[d]
        slope = cost[-1] - cost[-2] if len(cost) > 1 else 0.0
        return cost[-1] + max(slope, 0.0) * (d - len(cost) + 1)

    best, best_value = 0, -1.0
    for width in range(longest + 1):
        value = sum(
            1.0 + gain * (_expected(p, min(width, len(ids))) - 1.0) for ids, p in drafts
        ) / at(width)
        if value > best_value * (1 + 1e-9):
            best, best_value = width, value
    return best


class BatchDecoder:
    """Decodes a left-padded batch with one target forward pass per step for all live rows."""

    def __init__(self, decoder: _Decoder, batch_cost: tuple[float, ...] | None) -> None:
        self.d = decoder
        self.batch_cost = batch_cost
        # Drafted tokens accepted, and the number the drafts' probabilities predicted: their
        # ratio corrects the next steps' estimates (starting from 1, one token of prior each).
        self.accepted = 1.0
        self.predicted = 1.0

    @property
    def gain(self) -> float:
        """Accepted over predicted drafted tokens so far, within [0.25, 4]."""
        return min(max(self.accepted / self.predicted, 0.25), 4.0)

    def decode(
        self, input_ids: torch.Tensor, starts: list[int], drafter: Drafter, pad_id: int
    ) -> tuple[list[list[int]], list[SpecStats]]:
        """New ids and statistics per row; ``starts[b]`` is row ``b``'s left padding."""
        d = self.d
        rows, width = input_ids.shape
        device = input_ids.device
        generated: list[list[int]] = [[] for _ in range(rows)]
        stats = [SpecStats(sequences=1) for _ in range(rows)]
        if width >= d.max_length:
            return generated, stats
        seq = torch.full((rows, d.max_length), pad_id, dtype=torch.long, device=device)
        seq[:, :width] = input_ids
        n = [width] * rows
        t0 = time.perf_counter()
        sessions, limits = [], []
        for b in range(rows):
            session = drafter.session(input_ids[b, starts[b] :].cpu().numpy())
            k, min_prob = d.k, d.min_prob
            if d.verify_cost and _truncates_by_cost(session):
                # Drafts as long as the cost profile reaches; the step's common width (with the
                # acceptance observed so far) decides how much of them is verified.
                k, min_prob = d.cost_k, d.cost_min_prob
            sessions.append(session)
            limits.append((k, min_prob))
        share = (time.perf_counter() - t0) / rows
        for s in stats:
            s.draft_seconds += share
        live = list(range(rows))  # batch rows still decoding, in cache order
        cache = d.new_cache()
        seen = torch.zeros((rows, 0), dtype=torch.long, device=device)  # cache columns per row
        first = True
        while live:
            t0 = time.perf_counter()
            drafts = []
            for b in live:
                k, min_prob = limits[b]
                drafts.append(d.propose(sessions[b], min(k, d.max_length - n[b] - 1), min_prob))
            cost = self.batch_cost if d.verify_cost else None
            if first and cost is not None:
                # The first step also runs the prompts: its cost is about (width + D) positions
                # per row, so drafted positions are nearly free next to a long prompt.
                longest = max((len(ids) for ids, _ in drafts), default=0)
                cost = tuple(1.0 + extra / width for extra in range(longest + 1))
            cut = batch_width(drafts, cost, self.gain)
            drafts = [(ids[:cut], p[:cut]) for ids, p in drafts]
            self.predicted += sum(_expected(p, len(ids)) - 1.0 for ids, p in drafts)
            t1 = time.perf_counter()
            wide = max(len(ids) for ids, _ in drafts)
            prefix = width if first else 1
            block = torch.full((len(live), prefix + wide), pad_id, dtype=torch.long, device=device)
            fed = torch.zeros_like(block)
            position = torch.zeros_like(block)
            for i, (b, (ids, _)) in enumerate(zip(live, drafts, strict=True)):
                if ids:
                    seq[b, n[b] : n[b] + len(ids)] = torch.tensor(ids, dtype=torch.long)
                lo = 0 if first else n[b] - 1
                hi = n[b] + len(ids)
                block[i, : hi - lo] = seq[b, lo:hi]
                fed[i, max(starts[b] - lo, 0) : hi - lo] = 1
                position[i, : hi - lo] = torch.arange(lo, hi, device=device) - starts[b]
            position.clamp_(min=0)
            mask = torch.cat([seen, fed], dim=1)
            kwargs: dict[str, Any] = {
                d.cache_kw: cache,
                "use_cache": True,
                "attention_mask": mask,
                "position_ids": position,
            }
            if d.keep_kw:
                kwargs["logits_to_keep"] = wide + 1
            logits = d.model(input_ids=block, **kwargs).logits[:, -(wide + 1) :].float()
            finished, emitted_now = [], []
            for i, (b, (ids, _)) in enumerate(zip(live, drafts, strict=True)):
                row_seq = seq[b : b + 1]
                scores = d.scores(row_seq, n[b], logits[i, : len(ids) + 1])
                m, token = d.choose(scores, ids)
                self.accepted += m
                fed[i, prefix + m : prefix + len(ids)] = 0  # the rejected drafts' columns
                emitted = [*ids[:m], token]
                seq[b, n[b] + m] = token
                emitted, done = d.stop_within(row_seq, n[b], emitted)
                done = done or n[b] + len(emitted) >= d.max_length
                stats[b].record_step(len(ids), min(m, len(emitted)))
                generated[b].extend(emitted)
                emitted_now.append(emitted)
                n[b] += len(emitted)
                if done:
                    finished.append(i)
            seen = torch.cat([seen, fed], dim=1)
            t2 = time.perf_counter()
            for b, emitted in zip(live, emitted_now, strict=True):
                sessions[b].extend(np.asarray(emitted, dtype=np.int64))
            for i in finished:
                _finish(sessions[live[i]])
            t3 = time.perf_counter()
            for b in live:  # the step's time, shared by its rows
                stats[b].verify_seconds += (t2 - t1) / len(live)
                stats[b].draft_seconds += ((t1 - t0) + (t3 - t2)) / len(live)
            if finished:
                keep = [i for i in range(len(live)) if i not in set(finished)]
                live = [live[i] for i in keep]
                if not live:
                    break
                index = torch.tensor(keep, dtype=torch.long, device=device)
                cache.batch_select_indices(index)
                seen = seen[index]
            used = int(seen.any(dim=0).nonzero().max()) + 1 if bool(seen.any()) else 0
            if used < seen.shape[1]:
                _crop(cache, used)
                seen = seen[:, :used]
            first = False
        for b in range(rows):
            stats[b].new_tokens += len(generated[b])
        return generated, stats
