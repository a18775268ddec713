"""A prototype, in Python, of a copy-pointer source learned from (request, answer) pairs.

Where a training answer copies a span of its request, the answer's context at that point (its
last two tokens, or the answer's start) is paired with the request tokens just before the
copied span (the anchor, e.g. ``name`` ``[`` in e2e_nlg). Replaying, where the answer's context
has a frequent anchor, the drafter finds that anchor in the new request and drafts the tokens
that follow it; elsewhere the wrapped tasc drafter drafts. Used by ``where_steps_end.py
--compare`` to measure what such a source could gain before it is built in Rust.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

START = -1
MIN_SPAN = 2  # tokens a copy must share with its request to count
ANCHOR = 2  # request tokens before a copied span that locate it
MIN_SEEN, MIN_SHARE = 3, 0.4
COMPARE = True


def _copies(request: list[int], answer: list[int]) -> list[tuple[int, tuple[int, ...]]]:
    """(answer position, anchor) for each maximal copy of >= MIN_SPAN tokens."""
    where: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i in range(len(request) - 1):
        where[(request[i], request[i + 1])].append(i)
    out, j = [], 0
    while j < len(answer) - 1:
        best_len, best_i = 0, -1
        for i in where.get((answer[j], answer[j + 1]), ()):
            n = 0
            while j + n < len(answer) and i + n < len(request) and answer[j + n] == request[i + n]:
                n += 1
            if n > best_len:
                best_len, best_i = n, i
        if best_len >= MIN_SPAN and best_i >= ANCHOR:
            out.append((j, tuple(request[best_i - ANCHOR : best_i])))
            j += best_len
        else:
            j += 1
    return out


class CopyPointer:
    """Answer context -> anchor, learned from pairs; see the module docs."""

    def __init__(self, pairs: list[tuple[list[int], list[int]]]) -> None:
        seen: dict[tuple[int, ...], Counter[tuple[int, ...]]] = defaultdict(Counter)
        for request, answer in pairs:
            for j, anchor in _copies(request, answer):
                key = (START,) if j == 0 else tuple(answer[max(0, j - 2) : j])
                seen[key][anchor] += 1
        self.anchors: dict[tuple[int, ...], tuple[int, ...]] = {}
        self.share: dict[tuple[int, ...], float] = {}
        totals: Counter[tuple[int, ...]] = Counter()
        for _, answer in pairs:
            for j in range(len(answer)):
                totals[(START,) if j == 0 else tuple(answer[max(0, j - 2) : j])] += 1
        for key, counts in seen.items():
            anchor, n = counts.most_common(1)[0]
            if n >= MIN_SEEN and n / sum(counts.values()) >= MIN_SHARE:
                self.anchors[key] = anchor
                self.share[key] = n / totals[key]

    def draft(self, request: list[int], answer: list[int], k: int) -> list[int]:
        """The request's tokens after the anchor of ``answer``'s context (``[]``: none)."""
        key = (START,) if not answer else tuple(answer[-2:])
        anchor = self.anchors.get(key)
        if anchor is None:
            return []
        n = len(anchor)
        for i in range(len(request) - n, -1, -1):  # the last occurrence: the request's own
            if tuple(request[i : i + n]) == anchor:
                return request[i + n : i + n + k]
        return []


class CopyDrafter:
    """The tasc drafter with the copy pointer in front where it has an anchor."""

    def __init__(self, inner: Any, pointer: CopyPointer, request_from: int, word: set[int]) -> None:
        self.inner, self.pointer, self.request_from = inner, pointer, request_from
        self.word = word  # tokens that continue a copied value (letters, spaces)

    def session(self, prompt: list[int]) -> Any:
        drafter, word = self.inner, self.word
        inner, pointer = drafter.session(prompt), self.pointer
        # the request: the prompt's last user turn (the last marker opens the answer's turn)
        request = prompt[_last(prompt[: _last(prompt, self.request_from)], self.request_from) :]

        class Session:
            def __init__(self) -> None:
                self.answer: list[int] = []

            def propose(self, k: int, min_prob: float | None = None) -> Any:
                copied = pointer.draft(request, self.answer, k)
                span = 0
                while span < len(copied) and (span == 0 or copied[span] in word):
                    span += 1
                key = (START,) if not self.answer else tuple(self.answer[-2:])
                if span and COMPARE:
                    ids, probs = inner.propose(1, 0.0)
                    if len(probs) and float(probs[0]) > pointer.share.get(key, 0.0):
                        span = 0
                if span:
                    # the copied value, then the task's own continuation after it
                    rest = drafter.session(prompt + self.answer + copied[:span])
                    tail = [int(t) for t in rest.propose(k - span)[0]] if k > span else []
                    ids = copied[:span] + tail
                    return ids, [1.0] * len(ids)
                return inner.propose(k) if min_prob is None else inner.propose(k, min_prob)

            def extend(self, ids: Any) -> None:
                self.answer = [*self.answer, *map(int, ids)]
                inner.extend(ids)

            def finish(self) -> None:
                inner.finish()

        return Session()


def _last(tokens: list[int], marker: int) -> int:
    for i in range(len(tokens) - 1, -1, -1):
        if tokens[i] == marker:
            return i
    return 0


def build(task_rows: list[dict[str, Any]], tokenizer: Any, inner: Any) -> CopyDrafter:
    """The prototype over ``inner`` from a task's train rows (``input`` / ``output``)."""
    pairs = []
    for row in task_rows:
        request = tokenizer.encode("\n" + row["input"], add_special_tokens=False)
        answer = tokenizer.encode(row["output"], add_special_tokens=False)
        pairs.append((request, answer))
    marker = tokenizer.convert_tokens_to_ids("<|im_start|>")
    word = {
        i
        for t, i in tokenizer.get_vocab().items()
        if t.lstrip("\u0120").isalpha() and (t.startswith("\u0120") or t.isalpha())
    }
    return CopyDrafter(inner, CopyPointer(pairs), marker, word)
