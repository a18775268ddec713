"""Entry points: ``model.generate(custom_generate=...)`` and the direct :func:`generate` function.

transformers (>= 4.56) lets ``generate`` take a callable as ``custom_generate``: it prepares the
generation config, logits processors and stopping criteria exactly as for a normal call and then
hands them to the callable, which runs the decoding loop. :func:`speculative_decoding` is that
callable, so EOS ids, ``max_new_tokens``/``max_length``, temperature/top-k/top-p and any custom
``LogitsProcessor``/``StoppingCriteria`` behave exactly as in plain ``generate``.

Two transformers details the direct :func:`generate` papers over: with a callable
``custom_generate``, transformers does not pass ``streamer`` or ``tokenizer`` to it. So
:func:`generate` forwards the streamer as ``tasc_streamer`` and turns ``stop_strings`` into a
``StopStringCriteria`` itself. Prefer :func:`generate`; use the ``model.generate`` route when code
must go through ``model.generate``.

Example:
    >>> from tasc_rs import NgramDrafter  # doctest: +SKIP
    >>> from tasc_rs.hf import generate, speculative_decoding  # doctest: +SKIP
    >>> out = generate(model, input_ids, drafter, max_new_tokens=64)  # doctest: +SKIP
    >>> out.sequences, out.stats.tokens_per_forward  # doctest: +SKIP
    >>> same = model.generate(input_ids, custom_generate=speculative_decoding,  # doctest: +SKIP
    ...                       drafter=drafter, max_new_tokens=64, do_sample=False)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList
from transformers.generation.stopping_criteria import StopStringCriteria

from tasc_rs._args import float_arg, int_arg
from tasc_rs._core import MAX_K, MAX_WIDTH
from tasc_rs.drafter import DEFAULT_TREE_WIDTH
from tasc_rs.errors import DtypeError, InvalidInputError
from tasc_rs.hf.adaptive import get_defaults
from tasc_rs.hf.batched import BatchDecoder
from tasc_rs.hf.decoding import (
    _ROWWISE_PROCESSORS,
    Drafter,
    _Decoder,
    _pad_id,
    _stop_ids,
    _validate,
    check_model,
)
from tasc_rs.hf.stats import SpecStats


@dataclass
class SpecOutput:
    """Result of :func:`generate`.

    Attributes:
        sequences: ``(batch, length)`` prompt plus generated ids, like ``model.generate``.
        stats: Counters and timings of the run.
    """

    sequences: torch.Tensor
    stats: SpecStats


@torch.no_grad()
def speculative_decoding(
    model: Any,
    input_ids: torch.Tensor,
    logits_processor: LogitsProcessorList,
    stopping_criteria: StoppingCriteriaList,
    generation_config: GenerationConfig,
    synced_gpus: bool = False,
    streamer: Any = None,
    drafter: Drafter | None = None,
    num_draft_tokens: int | None = None,
    draft_min_prob: float | None = None,
    verify_cost: Sequence[float] | str | None = "auto",
    spec_stats: SpecStats | None = None,
    generator: torch.Generator | None = None,
    tasc_streamer: Any = None,
    draft_tree_width: int | None = None,
    **model_kwargs: Any,
) -> Any:
    """TASC-spec decoding loop, in the shape of transformers' ``custom_generate`` callables.

    Pass it to ``model.generate(..., custom_generate=speculative_decoding, drafter=d)``; the extra
    keyword arguments below reach it through ``generate``.

    Args:
        model: The target causal LM (passed by ``generate``).
        input_ids: ``(batch, prompt_len)`` prompt ids, left-padded per ``attention_mask``. A
            batch is decoded together: one forward pass per step verifies every live row's
            draft (see :mod:`tasc_rs.hf.batched`); a streamer needs a batch of 1.
        logits_processor: Prepared by ``generate`` (temperature, top-k, top-p, ...).
        stopping_criteria: Prepared by ``generate`` (max length, EOS ids, stop strings, ...).
        generation_config: The merged generation config.
        synced_gpus: Unsupported; must be False.
        streamer: Ignored (transformers does not forward it to callables); see ``tasc_streamer``.
        drafter: Object with ``session(prompt_ids)``, e.g. ``tasc_rs.NgramDrafter``.
        num_draft_tokens: Longest draft ``k``; default from :func:`tasc_rs.hf.calibrate`.
        draft_min_prob: Stop drafting when the mixed probability drops below this; default
            from :func:`tasc_rs.hf.calibrate`.
        verify_cost: Relative cost of verifying 0, 1, ... drafted tokens, given to drafter
            sessions that cut drafts by expected tokens per unit of cost (``tasc_rs`` sessions,
            see ``DraftSession.verify_cost``). ``"auto"`` (default) uses the profile measured
            by :func:`tasc_rs.hf.calibrate`; such sessions then draft up to its longest measured
            length with no threshold, unless ``num_draft_tokens`` / ``draft_min_prob`` are
            given. ``None`` turns the truncation off.
        spec_stats: A :class:`SpecStats` to add this run's counters to.
        generator: ``torch.Generator`` for sampling (seeded runs are reproducible for a fixed
            ``num_draft_tokens`` and ``draft_min_prob``); None uses torch's global RNG.
        tasc_streamer: A transformers streamer (``put``/``end``); receives the prompt first.
        draft_tree_width: Children per node of drafted token trees (:mod:`tasc_rs.hf.tree`);
            1 drafts chains. Default: :data:`DEFAULT_TREE_WIDTH`. Trees need a session with
            ``propose_tree`` (``tasc_rs`` sessions) and eager or SDPA attention; batches of
            more than one row draft chains.
        **model_kwargs: ``attention_mask`` and the rest of what ``generate`` prepared.

    Returns:
        A ``(batch, length)`` tensor, or a ``GenerateDecoderOnlyOutput`` when
        ``return_dict_in_generate`` is set.

    Raises:
        InvalidInputError: Missing drafter or unsupported option (beam search, output scores).
        UnsupportedModelError: Model without a rollback-able KV cache, or not a causal LM.
    """
    _validate(generation_config, drafter)
    if synced_gpus:
        raise InvalidInputError("synced_gpus is not supported by TASC-spec")
    cache = model_kwargs.get("cache", model_kwargs.get("past_key_values"))
    if cache is not None and cache.get_seq_length() > 0:
        raise InvalidInputError(
            "TASC-spec starts from an empty cache; do not pass a pre-filled cache"
        )
    cache_kw, keep_kw = check_model(model)
    # Sessions that cut drafts by cost draft up to cost_k tokens with threshold cost_min_prob;
    # others use num_draft_tokens and draft_min_prob. Explicit values win in both cases.
    if num_draft_tokens is not None:
        num_draft_tokens = int_arg("num_draft_tokens", num_draft_tokens, 0, MAX_K)
    if draft_min_prob is not None:
        draft_min_prob = float_arg("min_prob", draft_min_prob, 0.0, 1.0)
    cost_k, cost_min_prob = num_draft_tokens, draft_min_prob or 0.0
    profile: tuple[float, ...] | None = None
    if num_draft_tokens is None or draft_min_prob is None or verify_cost == "auto":
        defaults = get_defaults(model)
        if num_draft_tokens is None:
            num_draft_tokens, cost_k = defaults.num_draft_tokens, defaults.max_draft_tokens
        if draft_min_prob is None:
            draft_min_prob = defaults.min_prob
        if verify_cost == "auto":
            profile = defaults.verify_cost or None
    if verify_cost is not None and not isinstance(verify_cost, str):
        profile = _check_profile(verify_cost)
    elif isinstance(verify_cost, str) and verify_cost != "auto":
        raise InvalidInputError(
            f"verify_cost must be 'auto', None or a sequence of costs, got {verify_cost!r}"
        )
    tree_width = DEFAULT_TREE_WIDTH
    if draft_tree_width is not None:
        tree_width = int_arg("tree_width", draft_tree_width, 1, MAX_WIDTH)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InvalidInputError(
            f"generator must be a torch.Generator, got {type(generator).__name__}"
        )
    max_length = stopping_criteria.max_length or generation_config.max_length
    stats = SpecStats()
    decoder = _Decoder(
        model=model,
        cache_kw=cache_kw,
        keep_kw=keep_kw,
        logits_processor=logits_processor,
        rowwise=all(isinstance(p, _ROWWISE_PROCESSORS) for p in logits_processor),
        stopping_criteria=stopping_criteria,
        max_length=int(max_length),
        do_sample=bool(generation_config.do_sample),
        generator=generator,
        k=int(num_draft_tokens),
        min_prob=draft_min_prob,
        verify_cost=profile,
        cost_k=int(cost_k),
        cost_min_prob=cost_min_prob,
        stats=stats,
        streamer=tasc_streamer,
        vocab=int(model.get_output_embeddings().weight.shape[0]),
        tree_width=tree_width,
        stop_ids=_stop_ids(generation_config),
    )
    mask = model_kwargs.get("attention_mask")
    starts = [_left_padding(mask, b) for b in range(input_ids.shape[0])]
    if input_ids.shape[0] == 1:
        if tasc_streamer is not None:
            tasc_streamer.put(input_ids.cpu())
        rows = [decoder.decode_row(input_ids[0], starts[0], drafter)]
        if tasc_streamer is not None:
            tasc_streamer.end()
        stats.rows = [dataclasses.replace(stats, rows=[])]
    else:
        if tasc_streamer is not None:
            raise InvalidInputError("a streamer needs a batch of 1 (as in model.generate)")
        batch_cost = profile
        if verify_cost == "auto" and profile is not None:
            batch_cost = get_defaults(model, batch=input_ids.shape[0]).verify_cost or None
        rows, row_stats = BatchDecoder(decoder, batch_cost).decode(
            input_ids, starts, drafter, _pad_id(generation_config)
        )
        stats.rows = row_stats
        for r in row_stats:
            stats += r
        # the batch's own count: one forward pass per step for all rows
        stats.forward_passes = max((r.forward_passes for r in row_stats), default=0)
    if spec_stats is not None:
        spec_stats += stats
    sequences = _assemble(input_ids, rows, _pad_id(generation_config))
    if generation_config.return_dict_in_generate:
        from transformers.generation.utils import GenerateDecoderOnlyOutput

        return GenerateDecoderOnlyOutput(sequences=sequences)
    return sequences


def _left_padding(mask: torch.Tensor | None, row: int) -> int:
    """Number of leading padding positions of ``row``; only left padding is supported."""
    if mask is None:
        return 0
    valid = mask[row].bool()
    start = int(valid.long().argmax()) if bool(valid.any()) else int(valid.shape[0])
    if not bool(valid[start:].all()):
        raise InvalidInputError(
            f"attention_mask row {row} has gaps or right padding; "
            "decoder-only models need left padding "
            "(tokenizer.padding_side = 'left')"
        )
    return start


def _assemble(input_ids: torch.Tensor, rows: list[list[int]], pad_id: int) -> torch.Tensor:
    """Append each row's new ids to its (possibly padded) prompt, right-padding with ``pad_id``."""
    width = max(len(r) for r in rows)
    out = torch.full(
        (input_ids.shape[0], input_ids.shape[1] + width), pad_id, dtype=input_ids.dtype
    )
    out = out.to(input_ids.device)
    out[:, : input_ids.shape[1]] = input_ids
    for b, row in enumerate(rows):
        if row:
            out[b, input_ids.shape[1] : input_ids.shape[1] + len(row)] = torch.tensor(
                row, dtype=input_ids.dtype
            )
    return out


def _check_profile(verify_cost: Sequence[float]) -> tuple[float, ...]:
    """A verify-cost profile as floats: at least one value, each finite and positive."""
    try:
        profile = tuple(float(c) for c in verify_cost)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"verify_cost must be a sequence of numbers, got {verify_cost!r}"
        ) from None
    if not profile or not all(math.isfinite(c) and c > 0 for c in profile):
        raise InvalidInputError(
            f"verify_cost needs at least one cost, each finite and positive, got {profile}"
        )
    return profile


def generate(
    model: Any,
    input_ids: torch.Tensor,
    drafter: Drafter,
    *,
    num_draft_tokens: int | None = None,
    min_prob: float | None = None,
    verify_cost: Sequence[float] | str | None = "auto",
    tokenizer: Any = None,
    streamer: Any = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    tree_width: int | None = None,
    **generate_kwargs: Any,
) -> SpecOutput:
    """Generate with TASC-spec; same arguments and outputs as ``model.generate`` plus statistics.

    Greedy output (``do_sample=False``) is token-identical to ``model.generate``; sampled output
    has the same distribution (see :mod:`tasc_rs.hf.decoding` for why).

    Args:
        model: A transformers causal LM with a KV cache.
        input_ids: ``(batch, prompt_len)`` or 1-D prompt ids.
        drafter: ``tasc_rs.NgramDrafter`` (or anything with ``session(prompt_ids)``).
        num_draft_tokens: Longest draft; default measured on this device (:func:`calibrate`).
        min_prob: Stop drafting below this mixed probability; default measured likewise.
        verify_cost: ``"auto"`` (default): ``tasc_rs`` sessions cut each draft to the length
            with the most expected tokens per unit of the verify cost measured on this device;
            ``None``: off; or an explicit profile (see :func:`speculative_decoding`).
        tokenizer: Needed only for ``stop_strings``.
        streamer: A transformers streamer (e.g. ``TextStreamer``).
        generator: ``torch.Generator`` for sampling.
        seed: Shortcut for a fresh generator seeded with ``seed`` on the model's device.
        tree_width: Children per node of drafted token trees; 1 drafts chains (see
            :func:`speculative_decoding`).
        **generate_kwargs: Anything ``model.generate`` takes: ``max_new_tokens``, ``do_sample``,
            ``temperature``, ``top_k``, ``top_p``, ``eos_token_id``, ``stop_strings``,
            ``attention_mask``, ``generation_config``, ``logits_processor``, ...

    Returns:
        :class:`SpecOutput` with ``sequences`` and ``stats``.

    Example:
        >>> out = generate(model, ids, drafter, max_new_tokens=32)  # doctest: +SKIP
        >>> print(out.stats.summary())  # doctest: +SKIP
    """
    if not isinstance(input_ids, torch.Tensor):
        raise DtypeError(
            f"input_ids must be a torch.Tensor of token ids, got {type(input_ids).__name__}"
        )
    if input_ids.dim() == 1:
        input_ids = input_ids.unsqueeze(0)
    if input_ids.dim() != 2 or input_ids.is_floating_point() or input_ids.dtype == torch.bool:
        raise DtypeError(
            "input_ids must be a 1-D or 2-D (batch, length) integer tensor, "
            f"got {input_ids.dim()}-D {input_ids.dtype}"
        )
    if seed is not None:
        if generator is not None:
            raise InvalidInputError("pass either generator or seed, not both")
        generator = torch.Generator(device=model.device).manual_seed(int_arg("seed", seed, 0))
    stop_strings = generate_kwargs.pop("stop_strings", None)
    config = generate_kwargs.get("generation_config") or model.generation_config
    stop_strings = stop_strings or getattr(config, "stop_strings", None)
    if stop_strings:
        if tokenizer is None:
            raise InvalidInputError("stop_strings needs tokenizer=<the model's tokenizer>")
        criteria = StoppingCriteriaList(generate_kwargs.pop("stopping_criteria", None) or [])
        criteria.append(StopStringCriteria(tokenizer, stop_strings))
        generate_kwargs["stopping_criteria"] = criteria
        if "generation_config" in generate_kwargs:
            cfg = GenerationConfig.from_dict(generate_kwargs["generation_config"].to_dict())
            cfg.stop_strings = None
            generate_kwargs["generation_config"] = cfg
    stats = SpecStats()
    sequences = model.generate(
        input_ids.to(model.device),
        custom_generate=speculative_decoding,
        drafter=drafter,
        num_draft_tokens=num_draft_tokens,
        draft_min_prob=min_prob,
        verify_cost=verify_cost,
        spec_stats=stats,
        generator=generator,
        tasc_streamer=streamer,
        draft_tree_width=tree_width,
        **generate_kwargs,
    )
    if not isinstance(sequences, torch.Tensor):
        sequences = sequences.sequences
    return SpecOutput(sequences=sequences, stats=stats)
