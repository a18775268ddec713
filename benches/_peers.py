"""The peer drafters, each wrapped in the drafter protocol of ``tasc_rs.hf`` (benchmarks only).

Every adapter opens a *session* for a prompt, takes accepted tokens with ``extend`` and answers
``propose(k, min_prob)`` with up to ``k`` draft ids, so the same verification loop
(``tasc_rs.hf.generate``) and the same microbenchmark drive every method and only the drafter
differs. The peers are used through their public APIs, installed from the registries (see
``benches/setup_peers.sh``); none of their code lives here. A peer that is not installed is
reported by :func:`available` with the import error, and the benchmarks skip it.

- ``suffix``: ArcticInference's ``SuffixDecodingCache`` (vLLM's defaults: tree depth 24, minimum
  token probability 0.1, spec factor 1.0). The task corpus goes into its global tree as cached
  responses, the prompt into the per-request tree, and each response is added as it grows (so
  later requests also draft from earlier responses, as in serving).
- ``hf-lookup``: transformers' ``PromptLookupCandidateGenerator`` (max n-gram 2, its default).
- ``llama-lookup``: llama-cpp-python's ``LlamaPromptLookupDecoding`` (max n-gram 2, default).
- ``vllm-ngram``: vLLM's n-gram proposer kernel (numba KMP,
  ``_find_longest_matched_ngram_and_propose_tokens``; n-gram 1..4). ``NgramProposer`` itself needs
  a full ``VllmConfig`` with a model config, so the per-request kernel it calls is used directly.

The three prompt-lookup peers search the live context only; they take no corpus.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class _Context:
    """A growing int32 token buffer (amortised O(1) append, zero-copy views)."""

    def __init__(self, prompt: Any) -> None:
        ids = np.asarray(prompt, dtype=np.int32).ravel()
        self.buf = np.empty(max(1024, 2 * len(ids)), dtype=np.int32)
        self.buf[: len(ids)] = ids
        self.n = len(ids)

    def extend(self, ids: Any) -> None:
        ids = np.asarray(ids, dtype=np.int32).ravel()
        if self.n + len(ids) > len(self.buf):
            bigger = np.empty(2 * (self.n + len(ids)), dtype=np.int32)
            bigger[: self.n] = self.buf[: self.n]
            self.buf = bigger
        self.buf[self.n : self.n + len(ids)] = ids
        self.n += len(ids)

    def view(self) -> np.ndarray:
        return self.buf[: self.n]


_EMPTY = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))


def _draft(ids: Any) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids, dtype=np.int64).ravel()
    return ids, np.ones(len(ids), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# ArcticInference SuffixDecoding


class SuffixDrafter:
    """``SuffixDecodingCache`` with the task corpus cached as earlier responses."""

    name = "suffix"

    def __init__(
        self,
        corpus: Sequence[Sequence[int]],
        max_depth: int = 24,
        min_token_prob: float = 0.1,
        max_spec_factor: float = 1.0,
        max_spec_offset: float = 0.0,
    ) -> None:
        from arctic_inference.suffix_decoding import SuffixDecodingCache

        self.cache = SuffixDecodingCache(max_tree_depth=max_depth, max_cached_requests=-1)
        self.max_depth = max_depth
        self.params = (max_spec_factor, max_spec_offset, min_token_prob)
        self._ids = itertools.count()
        empty = np.empty(0, dtype=np.int32)
        for doc in corpus:
            rid = f"corpus-{next(self._ids)}"
            self.cache.start_request(rid, empty)
            self.cache.add_active_response(rid, np.asarray(doc, dtype=np.int32))
            self.cache.stop_request(rid)
        self._active: str | None = None

    def session(self, prompt_ids: Any) -> SuffixSession:
        if self._active is not None and self._active in self.cache.active_requests:
            self.cache.stop_request(self._active)
        rid = f"req-{next(self._ids)}"
        self._active = rid
        ctx = _Context(prompt_ids)
        self.cache.start_request(rid, ctx.view().copy())
        return SuffixSession(self, rid, ctx)


class SuffixSession:
    def __init__(self, owner: SuffixDrafter, rid: str, ctx: _Context) -> None:
        self.owner, self.rid, self.ctx = owner, rid, ctx

    def extend(self, ids: Any) -> None:
        ids = np.asarray(ids, dtype=np.int32).ravel()
        self.ctx.extend(ids)
        self.owner.cache.add_active_response(self.rid, ids)

    def finish(self) -> None:
        """End the request; its response stays in the global tree (online learning)."""
        if self.rid in self.owner.cache.active_requests:
            self.owner.cache.stop_request(self.rid)

    def close(self) -> None:
        """End the request and forget its response (the microbenchmark reuses its contexts)."""
        cache = self.owner.cache
        if self.rid in cache.active_requests:
            cache.stop_request(self.rid)
        if self.rid in cache.cached_requests:
            cache.evict_cached_response(self.rid)

    def propose(self, k: int, min_prob: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        factor, offset, prob = self.owner.params
        ctx = self.ctx.view()[-self.owner.max_depth :]
        d = self.owner.cache.speculate(
            self.rid,
            ctx,
            max_spec_tokens=k,
            max_spec_factor=factor,
            max_spec_offset=offset,
            min_token_prob=prob,
        )
        return _draft(d.token_ids)


# ---------------------------------------------------------------------------------------------
# Prompt lookup: transformers, llama-cpp-python, vLLM


class _LookupDrafter:
    """A context-only proposer: ``fn(context int32 array, k) -> draft ids``."""

    name = "lookup"

    def __init__(self, fn: Callable[[np.ndarray, int], Any]) -> None:
        self.fn = fn

    def session(self, prompt_ids: Any) -> _LookupSession:
        return _LookupSession(self.fn, _Context(prompt_ids))


class _LookupSession:
    def __init__(self, fn: Callable[[np.ndarray, int], Any], ctx: _Context) -> None:
        self.fn, self.ctx = fn, ctx

    def extend(self, ids: Any) -> None:
        self.ctx.extend(ids)

    def propose(self, k: int, min_prob: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        if k <= 0:
            return _EMPTY
        return _draft(self.fn(self.ctx.view(), k))


def hf_lookup(max_ngram: int = 2) -> _LookupDrafter:
    """transformers' ``PromptLookupCandidateGenerator`` (a torch tensor per call)."""
    import torch
    from transformers.generation.candidate_generator import PromptLookupCandidateGenerator

    gens: dict[int, Any] = {}

    def fn(ctx: np.ndarray, k: int) -> Any:
        gen = gens.get(k)
        if gen is None:
            gen = gens[k] = PromptLookupCandidateGenerator(
                num_output_tokens=k, max_matching_ngram_size=max_ngram, max_length=1 << 30
            )
        ids = torch.from_numpy(ctx).long().unsqueeze(0)
        out, _ = gen.get_candidates(ids)
        return out[0, ctx.shape[0] :].numpy()

    d = _LookupDrafter(fn)
    d.name = "hf-lookup"
    return d


def llama_lookup(max_ngram: int = 2) -> _LookupDrafter:
    """llama-cpp-python's ``LlamaPromptLookupDecoding`` (numpy sliding windows)."""
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    def fn(ctx: np.ndarray, k: int) -> Any:
        return LlamaPromptLookupDecoding.find_candidate_pred_tokens(ctx, max_ngram, k)

    d = _LookupDrafter(fn)
    d.name = "llama-lookup"
    return d


def vllm_ngram(min_n: int = 1, max_n: int = 4) -> _LookupDrafter:
    """vLLM's n-gram proposer kernel (numba, compiled on first call)."""
    from vllm.v1.spec_decode.ngram_proposer import (
        _find_longest_matched_ngram_and_propose_tokens as kernel,
    )

    kernel(np.arange(16, dtype=np.int32), min_n, max_n, 1 << 30, 4)  # JIT compile now

    def fn(ctx: np.ndarray, k: int) -> Any:
        return kernel(ctx, min_n, max_n, 1 << 30, k)

    d = _LookupDrafter(fn)
    d.name = "vllm-ngram"
    return d


PEERS: dict[str, Callable[..., Any]] = {
    "hf-lookup": hf_lookup,
    "llama-lookup": llama_lookup,
    "vllm-ngram": vllm_ngram,
}


def available() -> dict[str, str | None]:
    """Peer name -> ``None`` if importable here, else the import error (for the results)."""
    checks = {
        "suffix": "arctic_inference.suffix_decoding",
        "hf-lookup": "transformers.generation.candidate_generator",
        "llama-lookup": "llama_cpp.llama_speculative",
        "vllm-ngram": "vllm.v1.spec_decode.ngram_proposer",
    }
    out: dict[str, str | None] = {}
    for name, module in checks.items():
        try:
            __import__(module)
            out[name] = None
        except Exception as e:  # any failure means "not available here"
            out[name] = f"{type(e).__name__}: {e}"
    return out


def versions() -> dict[str, str]:
    """Installed versions of tasc-rs and the peers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in [
        "tasc-rs",
        "arctic-inference",
        "transformers",
        "llama-cpp-python",
        "vllm",
        "numba",
        "torch",
    ]:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def status_lines(res: dict[str, Any]) -> list[str]:
    """For a results header: the versions sentence, then a "Not measured here" paragraph if any.

    ``res`` holds ``versions()`` under "versions" and ``available()`` under "available".
    """
    lines = ["Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()) + "."]
    missing = {k: v for k, v in res["available"].items() if v}
    if missing:
        lines += ["Not measured here: " + "; ".join(f"{k} ({v})" for k, v in missing.items()), ""]
    return lines
