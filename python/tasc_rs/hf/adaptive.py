"""Pick the draft length ``k`` and the drafting threshold from the measured verify cost.

Verifying ``k`` draft tokens costs one forward pass over ``k + 1`` positions. On a GPU that is
nearly the price of one token, so long drafts are free; on a CPU (prototype numbers for
SmolLM2-135M on 2 cores: 8 tokens cost ~1.8x one token) each extra drafted token costs real
time, so drafts should be shorter and stop earlier when the drafter is unsure.

Two policies use the measurement:

- Cost-aware truncation (drafters that report probabilities and accept a ``verify_cost``
  profile, like :class:`tasc_rs.NgramDrafter` sessions): every draft is cut to the length with the
  most expected tokens per unit of verify cost, from the draft's own probabilities. The draft cap
  is then the longest measured length and no threshold is needed.
- A fixed ``k`` and threshold, for drafters without that support, chosen as follows.

Model: with a per-token acceptance ``alpha``, a draft of ``k`` yields
``E(k) = (1 - alpha**(k+1)) / (1 - alpha)`` tokens per forward, at relative cost
``r(k) = t(k) / t(1)``. We pick the ``k`` that maximizes ``E(k) / r(k)`` (the
shortest within 5% of the best, as the optimum is flat), and set the threshold
to a multiple of the average marginal cost of one more drafted token relative to a forward pass:
drafting a token is worth it only when its chance of being accepted pays for it.

Example:
    >>> from tasc_rs.hf import calibrate  # doctest: +SKIP
    >>> d = calibrate(model)  # doctest: +SKIP
    >>> d.num_draft_tokens, d.min_prob, d.verify_cost[:3]  # doctest: +SKIP
    (8, 0.33, (1.0, 1.1, 1.2))
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

CANDIDATE_K = (2, 4, 8, 12, 16, 24)
ASSUMED_ACCEPTANCE = 0.8
_NEAR_BEST = 0.95
_THRESHOLD_SCALE = 3.0
_MIN_PROB_RANGE = (0.1, 0.5)

_cache: weakref.WeakKeyDictionary[Any, dict[tuple[str, str, int], AdaptiveDefaults]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class AdaptiveDefaults:
    """Draft settings chosen for one model on one device.

    Attributes:
        num_draft_tokens: Longest draft ``k`` for a fixed-threshold drafter.
        min_prob: Stop drafting when the mixed n-gram probability drops below this.
        relative_cost: ``{k: t(k) / t(1)}`` as measured (empty when not measured).
    """

    num_draft_tokens: int
    min_prob: float
    relative_cost: dict[int, float] = field(default_factory=dict)

    @property
    def verify_cost(self) -> tuple[float, ...]:
        """Relative cost of verifying ``d = 0 .. max measured k`` drafted tokens, ``d = 0`` being
        1.0, linearly interpolated between the measured lengths and never decreasing (empty when
        not measured).
        This is the profile ``DraftSession.verify_cost`` takes."""
        if not self.relative_cost:
            return ()
        # Verifying more positions never costs less: a measured dip is noise (other processes,
        # frequency changes), so the measurements are fitted by the closest non-decreasing
        # sequence (pool adjacent violators) before interpolating. d = 0 is the reference, so
        # a length measured below it is noise too: without the floor the fit would pull d = 0
        # under 1.0.
        floored = {k: max(c, 1.0) for k, c in self.relative_cost.items()}
        measured = sorted({0: 1.0, **floored}.items())
        points = list(
            zip([k for k, _ in measured], _monotone([c for _, c in measured]), strict=True)
        )
        out = []
        for (k0, c0), (k1, c1) in itertools.pairwise(points):
            out += [c0 + (c1 - c0) * (d - k0) / (k1 - k0) for d in range(k0, k1)]
        out.append(points[-1][1])
        return tuple(round(c, 4) for c in out)

    @property
    def max_draft_tokens(self) -> int:
        """The draft cap under cost-aware truncation: the longest measured draft (or ``k``)."""
        return max(self.relative_cost, default=self.num_draft_tokens)


def _monotone(values: list[float]) -> list[float]:
    """The non-decreasing sequence closest to ``values`` in least squares (pool adjacent
    violators: a run that decreases is replaced by its mean)."""
    blocks: list[list[float]] = []  # [mean, size]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m1, n1), (m2, n2) = blocks[-2], blocks[-1]
            blocks[-2:] = [[(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2]]
    return [m for m, n in blocks for _ in range(int(n))]


def choose_defaults(
    relative_cost: dict[int, float], alpha: float = ASSUMED_ACCEPTANCE
) -> AdaptiveDefaults:
    """Pick ``k`` and ``min_prob`` from measured relative verify costs.

    Args:
        relative_cost: ``{k: t(k) / t(1)}`` for a few candidate ``k`` (1 not needed).
        alpha: Assumed probability that each drafted token is accepted.

    Returns:
        The chosen :class:`AdaptiveDefaults`.

    Example:
        >>> d = choose_defaults({2: 1.2, 4: 1.45, 8: 1.8, 12: 1.87, 16: 1.92})
        >>> d.num_draft_tokens, d.min_prob
        (12, 0.218)
        >>> choose_defaults({2: 1.0, 4: 1.0, 8: 1.01, 12: 1.02, 16: 1.03}).min_prob  # GPU-like
        0.1
    """

    def expected_tokens(k: int) -> float:
        return (1 - alpha ** (k + 1)) / (1 - alpha)

    score = {k: expected_tokens(k) / max(cost, 1e-9) for k, cost in relative_cost.items()}
    # The optimum is flat on CPUs; among near-best k prefer the shortest (less wasted compute).
    best_k = min(k for k in score if score[k] >= _NEAR_BEST * max(score.values()))
    marginal = max(relative_cost[best_k] - 1.0, 0.0) / best_k
    lo, hi = _MIN_PROB_RANGE
    min_prob = round(min(max(_THRESHOLD_SCALE * marginal, lo), hi), 3)
    return AdaptiveDefaults(best_k, min_prob, dict(relative_cost))


@torch.no_grad()
def measure_verify_cost(
    model: Any,
    candidates: tuple[int, ...] = CANDIDATE_K,
    context_len: int = 128,
    repeats: int = 5,
    batch: int = 1,
) -> dict[int, float]:
    """Time one cached forward pass over ``1`` and over ``k + 1`` tokens on the model's device.

    Args:
        model: A transformers causal LM.
        candidates: Draft lengths to time.
        context_len: Length of the random context already in the KV cache.
        repeats: Timings per size; the fastest is used (the least disturbed by other processes).
        batch: Rows in the batch (each step of a batch verifies ``k + 1`` positions per row).

    Returns:
        ``{k: t(k) / t(1)}``.

    Example:
        >>> measure_verify_cost(model)  # doctest: +SKIP
        {2: 1.1, 4: 1.3, 8: 1.8, 12: 1.9, 16: 2.0}
    """
    from tasc_rs.hf.decoding import _crop, check_model

    cache_kw, _ = check_model(model)
    from transformers import DynamicCache

    vocab = int(model.get_output_embeddings().weight.shape[0])
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, context_len + max(candidates) + 1), generator=gen).to(
        model.device
    )
    cache = DynamicCache(config=model.config)
    model(input_ids=ids[:, :context_len], use_cache=True, **{cache_kw: cache})

    sizes = [1, *(k + 1 for k in candidates)]
    times: dict[int, list[float]] = {n: [] for n in sizes}
    # Interleave the sizes round by round so that load from other processes hits all of them
    # alike; the first round only warms up kernels and allocators.
    for round_ in range(repeats + 1):
        for n in sizes:
            start = time.perf_counter()
            out = model(
                input_ids=ids[:, context_len : context_len + n], use_cache=True, **{cache_kw: cache}
            )
            out.logits[0, -1, 0].item()  # waits for the device
            if round_:
                times[n].append(time.perf_counter() - start)
            _crop(cache, context_len)
    base = min(times[1])
    return {k: min(times[k + 1]) / base for k in candidates}


def calibrate(model: Any, refresh: bool = False, batch: int = 1) -> AdaptiveDefaults:
    """Measure the verify cost of ``model`` on its device and choose draft defaults.

    Results are cached per model object, device and dtype in memory, and across processes in
    ``verify_cost.json`` under the tasc_rs cache directory (:func:`tasc_rs.embedded.cache_dir`),
    keyed by the model's configuration, device, dtype, batch size and CPU threads: only the
    first process on a machine pays the measurement (about a second on a CPU), not every
    service's first requests. ``TASC_RS_VERIFY_CACHE=0`` turns the file off; an unreadable or
    damaged file is measured over, never an error.

    Args:
        model: A transformers causal LM.
        refresh: Measure again even if a cached result exists (and store the new one).
        batch: Rows verified together (the batched loop calibrates at its batch size).

    Returns:
        The chosen :class:`AdaptiveDefaults`.

    Example:
        >>> defaults = calibrate(model)  # doctest: +SKIP
        >>> defaults.num_draft_tokens, defaults.min_prob  # doctest: +SKIP
        (8, 0.33)
    """
    key = (str(model.device), str(model.dtype), batch)
    per_model = _cache.setdefault(model, {})
    if refresh or key not in per_model:
        disk_key = _disk_key(model, batch)
        cost = None if refresh else _read_disk(disk_key)
        if cost is None:
            cost = measure_verify_cost(model, batch=batch)
            _write_disk(disk_key, cost)
        per_model[key] = choose_defaults(cost)
    return per_model[key]


#: Measurements the verify-cost file keeps (the most recent first out of the way last).
_DISK_ENTRIES = 256


def _disk_path() -> Path | None:
    if os.environ.get("TASC_RS_VERIFY_CACHE", "1") == "0":
        return None
    from tasc_rs.embedded import cache_dir

    return cache_dir() / "verify_cost.json"


def _disk_key(model: Any, batch: int) -> str:
    """What a measurement depends on: the model's configuration (architecture, sizes), the
    device (and its name on CUDA), dtype, batch size and the CPU threads torch uses."""
    config = getattr(model, "config", None)
    text = config.to_json_string(use_diff=False) if hasattr(config, "to_json_string") else ""
    device = str(model.device)
    if model.device.type == "cuda":
        device += ":" + torch.cuda.get_device_name(model.device)
    parts = [
        hashlib.sha256(text.encode()).hexdigest()[:16],
        device,
        str(model.dtype),
        f"batch={batch}",
        f"threads={torch.get_num_threads()}",
        f"torch={torch.__version__}",
    ]
    return "|".join(parts)


def _read_disk(key: str) -> dict[int, float] | None:
    path = _disk_path()
    if path is None:
        return None
    try:
        entry = json.loads(path.read_text()).get(key)
        cost = {int(k): float(v) for k, v in entry.items()} if isinstance(entry, dict) else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    if not cost or not all(v > 0 and v == v and v != float("inf") for v in cost.values()):
        return None
    return cost


def _write_disk(key: str, cost: dict[int, float]) -> None:
    """Adds a measurement to the file, atomically (a temporary file renamed over it); a file
    that cannot be written is skipped with one log line."""
    path = _disk_path()
    if path is None:
        return
    try:
        try:
            data = json.loads(path.read_text())
            data = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            data = {}
        data.pop(key, None)
        data[key] = {str(k): v for k, v in cost.items()}
        while len(data) > _DISK_ENTRIES:
            data.pop(next(iter(data)))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=0))
        os.replace(tmp, path)
    except OSError as e:
        logging.getLogger("tasc_rs").warning("tasc_rs: cannot save the verify cost: %s", e)


get_defaults = calibrate
