"""The TASC-spec decoding loop: draft with an n-gram session, verify in one forward pass.

Each step sends ``[pending token] + draft`` through the target with its KV cache, accepts the
longest valid prefix of the draft plus one token chosen by the target itself, crops the cache
back to the accepted length, and feeds the accepted tokens to the drafter session.

Why sampling stays lossless. The drafter builds its draft *greedily* (it always proposes the
most probable mixed n-gram continuation), so the draft token ``x`` is a deterministic function
of the context: the proposal distribution ``q`` is a point mass on ``x``. The standard
speculative rule ``accept with min(1, p(x)/q(x))``, resample from ``norm(max(0, p - q))`` then
reads: accept ``x`` with probability ``p(x)``; on rejection sample from ``p`` with ``x`` removed
and renormalized. Each emitted token then has exactly the target's distribution:
``P(y) = p(x)[y = x] + (1 - p(x)) * p(y)[y != x] / (1 - p(x)) = p(y)``. Plugging the drafter's
mixed n-gram probability in as ``q`` would be wrong here (the token was not *sampled* from it)
and would bias the output, so the mixed probabilities only decide how long the draft is.

Example:
    >>> from tasc_rs.hf import speculative_decoding  # doctest: +SKIP
    >>> out = model.generate(ids, custom_generate=speculative_decoding, drafter=d)  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from transformers import (
    DynamicCache,
    GenerationConfig,
    LogitsProcessorList,
    PreTrainedModel,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from tasc_rs.errors import InvalidInputError, UnsupportedModelError
from tasc_rs.hf.stats import SpecStats
from tasc_rs.hf.tree import Tree, accept, move_path, supports_trees, tree_inputs

# Processors that transform each row of scores independently of input_ids: these can be applied
# to all verified positions at once instead of once per position.
_ROWWISE_PROCESSORS = (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)


class DraftSession(Protocol):
    """Per-request drafting state (``NgramDrafter.session(prompt_ids)`` returns one)."""

    def extend(self, ids: Any) -> None:
        """Append accepted token ids to the context."""

    # Optional: ``finish()`` (called once the response is complete) and a ``verify_cost``
    # attribute (drafts cut by expected tokens per unit of verify cost), as tasc_rs sessions have.

    def propose(self, k: int, min_prob: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return up to ``k`` draft ids and their mixed probabilities."""


class Drafter(Protocol):
    """Anything that opens a :class:`DraftSession` for a prompt (e.g. ``tasc_rs.NgramDrafter``)."""

    def session(self, prompt_ids: Any) -> DraftSession:
        """Open a session whose context is ``prompt_ids``."""


@dataclass
class _Decoder:
    """Everything one speculative decoding call needs, shared across the batch rows."""

    model: PreTrainedModel
    cache_kw: str
    keep_kw: bool
    logits_processor: LogitsProcessorList
    rowwise: bool
    stopping_criteria: StoppingCriteriaList
    max_length: int
    do_sample: bool
    generator: torch.Generator | None
    k: int
    min_prob: float | None
    #: Relative verify cost by drafted tokens, handed to sessions that truncate by cost; those
    #: draft up to ``cost_k`` tokens with threshold ``cost_min_prob`` instead of k / min_prob.
    verify_cost: tuple[float, ...] | None
    cost_k: int
    cost_min_prob: float
    stats: SpecStats
    streamer: Any
    vocab: int
    #: Children per node of drafted token trees (:mod:`tasc_rs.hf.tree`); 1 drafts chains.
    #: Trees need a session with ``propose_tree`` and a model :func:`supports_trees` accepts.
    tree_width: int = 1
    #: End-of-sequence ids: a draft ends with one (what would follow is never generated).
    stop_ids: frozenset[int] = frozenset()

    def new_cache(self) -> DynamicCache:
        try:
            return DynamicCache(config=self.model.config)
        except TypeError:  # older transformers without the config argument
            return DynamicCache()

    def forward(
        self, ids: torch.Tensor, cache: DynamicCache, keep: int, **extra: Any
    ) -> torch.Tensor:
        """Run the target on ``ids`` (1, n); return float32 logits of the last ``keep`` rows."""
        kwargs: dict[str, Any] = {self.cache_kw: cache, "use_cache": True, **extra}
        if self.keep_kw:
            kwargs["logits_to_keep"] = keep
        out = self.model(input_ids=ids, **kwargs)
        return out.logits[0, -keep:].float()

    def scores(self, seq: torch.Tensor, n: int, logits: torch.Tensor) -> torch.Tensor:
        """Apply the logits processors to each verified position (row j continues ``seq[:n+j]``)."""
        if not self.logits_processor:
            return logits
        if self.rowwise:
            ids = seq[:, :n].expand(logits.shape[0], -1)
            return self.logits_processor(ids, logits)
        rows = [
            self.logits_processor(seq[:, : n + j], logits[j : j + 1])
            for j in range(logits.shape[0])
        ]
        return torch.cat(rows, dim=0)

    def choose(self, scores: torch.Tensor, draft: list[int]) -> tuple[int, int]:
        """Return ``(accepted draft length, target's own next token)``."""
        if not self.do_sample:
            preds = scores.argmax(dim=-1).tolist()
            m = 0
            while m < len(draft) and draft[m] == preds[m]:
                m += 1
            return m, preds[m]
        return self._choose_sampled(scores, draft)

    def _choose_sampled(self, scores: torch.Tensor, draft: list[int]) -> tuple[int, int]:
        """Point-mass speculative sampling (see the module docstring for the proof)."""
        device = self.generator.device if self.generator is not None else scores.device
        probs = torch.softmax(scores.to(device=device, dtype=torch.float32), dim=-1)
        d = len(draft)
        if d:
            idx = torch.tensor(draft, device=device)
            p_draft = probs[torch.arange(d, device=device), idx]
            u = torch.rand(d, generator=self.generator, device=device)
            rejected = (u >= p_draft).nonzero()
            m = int(rejected[0, 0]) if rejected.numel() else d
        else:
            m = 0
        row = probs[m]
        if m < d:
            row = row.clone()
            row[draft[m]] = 0.0
        token = int(torch.multinomial(row, 1, generator=self.generator))
        return m, token

    def decode_row(self, row: torch.Tensor, start: int, drafter: Drafter) -> list[int]:
        """Generate the continuation of one prompt row; return the new ids.

        ``row[:start]`` is left padding: it stays in the sequence the stopping criteria see (as
        in ``generate``) but never reaches the model, whose positions start at ``row[start]``.
        """
        n = row.shape[0]
        if n >= self.max_length:
            return []
        seq = torch.empty((1, self.max_length), dtype=torch.long, device=row.device)
        seq[0, :n] = row
        cache = self.new_cache()
        cache_len = start
        t0 = time.perf_counter()
        session = drafter.session(row[start:].cpu().numpy())
        k, min_prob = self.k, self.min_prob
        if self.verify_cost and _truncates_by_cost(session):
            session.verify_cost = self.verify_cost  # type: ignore[attr-defined]
            k, min_prob = self.cost_k, self.cost_min_prob
        self.stats.draft_seconds += time.perf_counter() - t0
        self.stats.sequences += 1
        generated: list[int] = []
        use_tree = (
            self.tree_width > 1
            and hasattr(session, "propose_tree")
            and supports_trees(self.model, cache)
        )
        while True:
            t0 = time.perf_counter()
            budget = min(k, self.max_length - n - 1)
            # The prefill step drafts a chain: a tree mask over a long prompt would be large.
            if use_tree and n - cache_len == 1:
                tree = self.propose_tree(session, k, budget, min_prob)
                t1 = time.perf_counter()
                d = len(tree)
                m, emitted = self.verify_tree(seq, n, start, cache_len, cache, tree)
            else:
                draft, _ = self.propose(session, budget, min_prob)
                t1 = time.perf_counter()
                d = len(draft)
                if d:
                    seq[0, n : n + d] = torch.tensor(draft, dtype=torch.long)
                logits = self.forward(seq[:, cache_len : n + d], cache, d + 1)
                _check_cache(cache, n + d - start)
                m, token = self.choose(self.scores(seq, n, logits), draft)
                emitted = [*draft[:m], token]
                seq[0, n + m] = token
            emitted, done = self.stop_within(seq, n, emitted)
            self.stats.record_step(d, min(m, len(emitted)))
            generated.extend(emitted)
            if self.streamer is not None:
                self.streamer.put(torch.tensor(emitted, dtype=torch.long))
            if not done and d > m:
                _crop(cache, n + m - start)
            n += len(emitted)
            cache_len = n - 1
            t2 = time.perf_counter()
            self.stats.verify_seconds += t2 - t1
            session.extend(np.asarray(emitted, dtype=np.int64))
            if done:
                _finish(session)
                self.stats.draft_seconds += time.perf_counter() - t2
                break
            self.stats.draft_seconds += (t1 - t0) + (time.perf_counter() - t2)
        self.stats.new_tokens += len(generated)
        return generated

    def verify_tree(
        self,
        seq: torch.Tensor,
        n: int,
        start: int,
        cache_len: int,
        cache: DynamicCache,
        tree: Tree,
    ) -> tuple[int, list[int]]:
        """Verify ``tree`` after ``seq[:n]`` in one forward pass (see :mod:`tasc_rs.hf.tree`).

        Writes the accepted tokens plus the target's own to ``seq[0, n:]`` and moves the
        accepted nodes' cache entries into place (the caller crops the rest). Returns the number
        of accepted nodes and the emitted tokens.
        """
        d = len(tree)
        if d:
            nodes = torch.tensor(tree.tokens, dtype=torch.long, device=seq.device)
            ids = torch.cat([seq[0, cache_len:n], nodes]).unsqueeze(0)
            mask, positions = tree_inputs(
                tree, cache_len - start, n - cache_len, self.model.dtype, seq.device
            )
            logits = self.forward(ids, cache, d + 1, attention_mask=mask, position_ids=positions)
        else:  # nothing drafted: a plain step
            logits = self.forward(seq[:, cache_len:n], cache, 1)
        _check_cache(cache, n + d - start)
        # Row-wise processors ignore the ids, so every node's row is processed at once; others
        # see each visited node's own path.
        scored = self.scores(seq, n, logits) if self.rowwise else logits

        def scores(r: int) -> torch.Tensor:
            if self.rowwise:
                return scored[r]
            ids = seq[:, :n]
            if r > 0:
                path = torch.tensor([tree.path(r - 1)], dtype=torch.long, device=seq.device)
                ids = torch.cat([ids, path], dim=1)
            return self.logits_processor(ids, logits[r : r + 1])[0]

        path, token = accept(tree, scores, self.do_sample, self.generator)
        emitted = [*(tree.tokens[i] for i in path), token]
        seq[0, n : n + len(emitted)] = torch.tensor(emitted, dtype=torch.long)
        if len(path) < d:
            move_path(cache, n - start, path)
        return len(path), emitted

    def propose_tree(self, session: Any, nodes: int, depth: int, min_prob: float | None) -> Tree:
        """A tree of up to ``nodes`` nodes at most ``depth`` deep (the room left before the
        length limit), without nodes whose id is outside the model's vocabulary."""
        if depth <= 0 or nodes <= 0:
            return Tree([], [], np.zeros(0))
        ids, parents, probs = session.propose_tree(nodes, self.tree_width, min_prob)
        tree = Tree([int(t) for t in ids], [int(p) for p in parents], np.asarray(probs))
        return tree.within(self.vocab, depth, self.stop_ids)

    def propose(
        self, session: DraftSession, budget: int, min_prob: float | None
    ) -> tuple[list[int], np.ndarray]:
        """Up to ``budget`` draft ids and their probabilities, cut before the first id outside
        the model's vocabulary (a drafter built with another tokenizer never crashes it) and
        after the first end-of-sequence id."""
        if budget <= 0:
            return [], np.zeros(0)
        ids, probs = session.propose(budget, min_prob)
        draft = [int(t) for t in ids]
        for i, t in enumerate(draft):
            if not 0 <= t < self.vocab:
                return draft[:i], np.asarray(probs[:i], dtype=np.float64)
            if t in self.stop_ids:
                return draft[: i + 1], np.asarray(probs[: i + 1], dtype=np.float64)
        return draft, np.asarray(probs, dtype=np.float64)

    def stop_within(self, seq: torch.Tensor, n: int, emitted: list[int]) -> tuple[list[int], bool]:
        """``emitted`` (already written to ``seq[0, n:]``) cut after the first token at which
        the stopping criteria stop, and whether they did."""
        for i in range(len(emitted)):
            if bool(self.stopping_criteria(seq[:, : n + i + 1], None).any()):
                return emitted[: i + 1], True
        return emitted, False


def _finish(session: Any) -> None:
    """Tell a session its response is complete (``tasc_rs`` sessions learn it online)."""
    finish = getattr(session, "finish", None)
    if finish is not None:
        finish()


def _truncates_by_cost(session: Any) -> bool:
    """Whether a session cuts its drafts by a verify-cost profile (``tasc_rs`` sessions do)."""
    return hasattr(type(session), "verify_cost")


def _check_cache(cache: DynamicCache, expected: int) -> None:
    length = cache.get_seq_length()
    if length != expected:
        raise UnsupportedModelError(
            f"the model's KV cache holds {length} positions after the forward pass, "
            f"expected {expected}; "
            "TASC-spec needs a model that fills a transformers DynamicCache"
        )


_CROP_REMOVES = "tokens_to_remove" in inspect.signature(DynamicCache.crop).parameters


def _crop(cache: DynamicCache, new_length: int) -> None:
    """Drop cached positions beyond ``new_length`` (the crop API changed in transformers 5)."""
    try:
        if _CROP_REMOVES:
            cache.crop(new_length - cache.get_seq_length())
        else:
            cache.crop(new_length)
    except (ValueError, RuntimeError, NotImplementedError) as exc:
        raise UnsupportedModelError(f"the model's KV cache cannot be rolled back: {exc}") from exc


def check_model(model: Any) -> tuple[str, bool]:
    """Check that ``model`` can be verified with a rollback-able KV cache.

    Returns:
        The name of the forward argument that takes the cache, and whether ``logits_to_keep``
        is accepted.

    Raises:
        UnsupportedModelError: Not a decoder-only transformers causal LM with a KV cache.

    Example:
        >>> check_model(object())  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        tasc_rs.errors.UnsupportedModelError: ...
    """
    if not isinstance(model, PreTrainedModel) or not hasattr(model, "generate"):
        raise UnsupportedModelError(
            f"unknown architecture {type(model).__name__}: TASC-spec needs a transformers "
            "causal LM "
            "(a PreTrainedModel with generate(), e.g. from AutoModelForCausalLM)"
        )
    if getattr(model.config, "is_encoder_decoder", False):
        raise UnsupportedModelError(
            f"{type(model).__name__} is an encoder-decoder model; "
            "TASC-spec supports decoder-only causal LMs"
        )
    params = inspect.signature(model.forward).parameters
    cache_kw = (
        "cache" if "cache" in params else "past_key_values" if "past_key_values" in params else None
    )
    if cache_kw is None or (
        getattr(model.config, "use_cache", True) is False and "use_cache" not in params
    ):
        raise UnsupportedModelError(
            f"{type(model).__name__}.forward takes no KV cache; "
            "TASC-spec verifies drafts against a cache"
        )
    return cache_kw, "logits_to_keep" in params


def _stop_ids(generation_config: GenerationConfig) -> frozenset[int]:
    """The end-of-sequence ids generation stops at."""
    eos = getattr(generation_config, "_eos_token_tensor", None)
    if eos is None:
        eos = generation_config.eos_token_id
    if eos is None:
        return frozenset()
    if isinstance(eos, torch.Tensor):
        return frozenset(int(t) for t in eos.reshape(-1).tolist())
    return frozenset(int(t) for t in (eos if isinstance(eos, (list, tuple)) else [eos]))


def _pad_id(generation_config: GenerationConfig) -> int:
    pad = getattr(generation_config, "_pad_token_tensor", None)
    if pad is not None:
        return int(pad)
    if generation_config.pad_token_id is not None:
        return int(generation_config.pad_token_id)
    eos = generation_config.eos_token_id
    return int(eos[0] if isinstance(eos, list) else eos) if eos is not None else 0


def _validate(generation_config: GenerationConfig, drafter: Any) -> None:
    if drafter is None or not hasattr(drafter, "session"):
        raise InvalidInputError(
            "speculative decoding needs drafter=<NgramDrafter> "
            "(an object with a session(prompt_ids) method)"
        )
    if (generation_config.num_beams or 1) > 1:
        raise InvalidInputError(
            f"num_beams={generation_config.num_beams} is not supported; TASC-spec needs 1"
        )
    wanted = [
        f
        for f in ("output_scores", "output_logits", "output_attentions", "output_hidden_states")
        if getattr(generation_config, f, False)
    ]
    if wanted:
        raise InvalidInputError(
            f"{', '.join(wanted)} not supported with TASC-spec; only sequences are returned"
        )
