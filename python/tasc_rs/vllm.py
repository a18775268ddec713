"""TASC-spec inside vLLM: a speculative-decoding proposer for vLLM's ``custom_class`` route.

vLLM verifies the drafts (with its own lossless rejection sampler) and owns the batch, the KV
cache and the scheduling; tasc-rs only drafts. Each engine step vLLM calls
:meth:`TascProposer.propose` once for the whole batch, and one native call drafts for every row
(reading vLLM's token buffer in place, without the GIL).

Offline::

    from vllm import LLM, SamplingParams
    from tasc_rs.vllm import speculative_config

    llm = LLM(model="my-model", dtype="float32",
              speculative_config=speculative_config("task.tasc", k=8))
    out = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=128))

Server (the drafter reaches the engine process through the environment)::

    TASC_VLLM_DRAFTER=task.tasc python -m vllm.entrypoints.openai.api_server --model my-model \\
        --speculative-config '{"method": "custom_class",
                               "model": "tasc_rs.vllm.TascProposer", "num_speculative_tokens": 8}'

vLLM passes the proposer nothing but its ``VllmConfig`` and refuses unknown keys in
``speculative_config``, so the drafter and its settings are found, first match wins, in:

1. ``$TASC_VLLM_CONFIG``: a JSON object, or the path of a JSON file holding one;
2. ``$TASC_VLLM_DRAFTER``: the path of a drafter file (settings at their defaults);
3. ``tasc_vllm.json``, else ``drafter.tasc``, in the served model's directory;
4. the ``config`` class attribute of a subclass (``class Mine(TascProposer): config = {...}``),
   named in ``speculative_config`` as ``"model": "my_module.Mine"``.

A JSON config names the ``drafter`` file (relative paths are read from the JSON file's folder)
and optionally the settings of :data:`DEFAULTS`. Unknown keys are refused. Everything is checked
when the engine starts: a missing or corrupt drafter file, or one built with another vocabulary,
stops start-up with a clear error rather than failing mid-request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from tasc_rs._core import MAX_K
from tasc_rs.aliases import bpe_respelling, space_aliases
from tasc_rs.drafter import NgramDrafter
from tasc_rs.errors import InvalidConfigError, TascError
from tasc_rs.multitask import MAGIC as MULTI_MAGIC
from tasc_rs.multitask import MultiTaskDrafter

__all__ = [
    "CONFIG_ENV",
    "CPU_STEP_OVERHEAD",
    "DEFAULTS",
    "DRAFTER_ENV",
    "ProposerSettings",
    "TascProposer",
    "resolve_settings",
    "settings_from_options",
    "speculative_config",
]

CONFIG_ENV = "TASC_VLLM_CONFIG"
DRAFTER_ENV = "TASC_VLLM_DRAFTER"
MODEL_DIR_CONFIG = "tasc_vllm.json"
MODEL_DIR_DRAFTER = "drafter.tasc"


@dataclass(frozen=True)
class ProposerSettings:
    """How :class:`TascProposer` drafts inside vLLM.

    Attributes:
        drafter: Path of the drafter file (``NgramDrafter.save``).
        min_prob: A draft stops before its first token whose mixed probability is lower (0.1,
            as vLLM's suffix decoding: on the CPU backend the batch cut, which knows what a
            position costs, shortens drafts further). A draft also ends with a stop token:
            the engine drops whatever follows one.
        corpus_weight: lambda, the task side's weight (``None``: the drafter's own).
        mixing: ``"longer_match"`` (the side with the longer matched context gets the larger
            weight) or ``"fixed"`` (the paper's).
        online_capacity: Tokens of finished responses learned online (0: off).
        max_requests: Most per-request states kept (default: 4x vLLM's ``max_num_seqs``).
        stale_steps: A request not seen for this many engine steps is finished and learned.
            vLLM schedules every running request in every step, and often does not show the
            proposer a request's last step (measured on e2e_nlg: 6 to 13 of 18 finished
            requests never showed their EOS), so a request missing from 2 steps is taken as
            finished: its response is learned while the next requests, often alike, are still
            decoding. A request that comes back (preempted) is followed as a new one.
        stop_token_ids: Extra token ids that end a response (the model's EOS ids are added).
        verify_cost: Relative cost of verifying 0, 1, ... drafted tokens; when set, each draft
            is cut where expected tokens per unit of cost peak (see ``DraftSession``).
        step_overhead: The fixed cost of an engine step in units of one verified position;
            each step's drafts are then cut together, keeping the positions that raise the
            batch's expected tokens per unit of cost. A token's chance of acceptance is read
            from the engine itself: how often the target agreed with recent drafted tokens of
            the same probability (10 bins; the tokens a row gains show it, also for tokens the
            cut removed), since the drafter's probabilities are not acceptance rates (a
            fine-tuned model accepts more than they say, a few-shot base model often fewer).
            ``"auto"`` (default): on vLLM's CPU backend (where a large batch's verified
            positions cost), measured from the engine's own steps (the time between calls
            against the positions verified), starting from :data:`CPU_STEP_OVERHEAD`; else
            ``None`` (no batch cut: on a GPU verifying k positions per row costs little more
            than one). A number: that overhead, fixed.
        token_aliases: Whether each request's context reads a word's token with and without its
            leading space as one (:func:`tasc_rs.space_aliases` of the served model's
            tokenizer): an answer that copies a span of the prompt after ``=`` or a quote
            writes its first word without the space, and the rest of the span is then still
            found in the prompt. Needs the tokenizer on this machine (vLLM has fetched it).
        respelling: Whether each request's context also counts the prompt's words in their
            other spelling, split as the tokenizer splits them there
            (:func:`tasc_rs.bpe_respelling`: byte-level BPE tokenizers only): a copied word of
            several tokens (`` char`` ``lotte`` in the prompt, ``ch`` ``arl`` ``otte`` after
            ``=``) is then found after its first token. Needs the tokenizer, as above.
        learned_state: A file that keeps what the proposer learns online across restarts
            (``NgramDrafter.autosave``): loaded at start (a damaged file, or one of another
            drafter, is logged once and ignored), saved atomically every
            ``save_every_tokens`` learned tokens or ``save_every_seconds`` seconds and at
            exit. ``None`` (default): nothing kept. Tensor- and pipeline-parallel ranks learn
            alike (they draft on the same tokens): rank 0 saves, the others only load.
            Data-parallel engines (or servers) each learn from their own requests: give each
            its own file (on one file, the last save wins).
        save_every_tokens: Tokens learned between saves of ``learned_state``.
        save_every_seconds: Longest time between saves of ``learned_state`` (when something
            was learned).
        neighbours: How many similar past requests each request drafts from
            (``NgramDrafter.neighbours``; a drafter built from (request, answer) pairs, and the
            pairs the server learns online): where their answers agree on the next token more
            than the mixture does, it is drafted. 0: none.
        measure_step_cost: Whether the overhead is measured (``None``: only with ``"auto"``).
        threads: Threads that draft batches of 96 rows or more in parallel (``None``: on a
            GPU the machine's cores, at most 8; on vLLM's CPU backend 1, the engine's thread
            only: the batch cut keeps chains short there, and the model's own threads, still
            spinning after the forward pass, would compete with a pool). They run only while
            the engine waits for the drafts.
        mmap: Whether the drafter file is memory-mapped and its n-gram trie read in place
            (``NgramDrafter.load(mmap=True)``): tensor-parallel ranks and engines on one
            machine then share one copy of it instead of holding one each. The file must not be
            rewritten in place while served (replace it by renaming, as ``save`` does); files
            of format version 3 or older and multi-task files cannot be mapped (an error at
            start).
    """

    drafter: Path
    min_prob: float = 0.1
    corpus_weight: float | None = None
    mixing: str = "longer_match"
    online_capacity: int = 1 << 20
    max_requests: int | None = None
    stale_steps: int = 2
    stop_token_ids: tuple[int, ...] = ()
    verify_cost: tuple[float, ...] | None = field(default=None)
    step_overhead: float | str | None = "auto"
    token_aliases: bool = True
    respelling: bool = True
    neighbours: int = 8
    learned_state: Path | None = None
    save_every_tokens: int = 1 << 16
    save_every_seconds: float = 60.0
    measure_step_cost: bool | None = None
    threads: int | None = None
    mmap: bool = False


#: Fixed cost of a vLLM CPU engine step in verified positions, fitted on SmolLM2-135M, float32,
#: 2 cores (``bench_vllm.py stepcost``: 1-16 rows verifying 0-8 drafted tokens each cost
#: 17.4 ms + 0.78 ms per verified position, within 10%).
CPU_STEP_OVERHEAD = 22.0


#: The settings a config may give, with their defaults (the tuned TASC-spec of benches/).
DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in fields(ProposerSettings) if f.name != "drafter"
}

#: The paper's configuration (fixed mixing, no early stop, no online learning).
PAPER: dict[str, Any] = {
    "min_prob": 0.0,
    "mixing": "fixed",
    "online_capacity": 0,
    "step_overhead": None,
    "token_aliases": False,
    "respelling": False,
    "neighbours": 0,
}


def _settings_from(config: Mapping[str, Any], base: Path | None, where: str) -> ProposerSettings:
    """Validates a config mapping (``where`` names its origin in errors)."""
    if not isinstance(config, Mapping):
        raise InvalidConfigError(f"{where}: expected a JSON object, got {type(config).__name__}")
    known = {f.name for f in fields(ProposerSettings)} | {"preset"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise InvalidConfigError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    values = dict(config)
    preset = values.pop("preset", "tuned")
    if preset == "paper":
        values = {**PAPER, **values}
    elif preset != "tuned":
        raise InvalidConfigError(f"{where}: preset must be 'tuned' or 'paper', got {preset!r}")
    drafter = values.pop("drafter", None)
    if not isinstance(drafter, (str, os.PathLike)) or not os.fspath(drafter):
        raise InvalidConfigError(f"{where}: 'drafter' (the path of a drafter file) is required")
    path = Path(os.fspath(drafter)).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    checks: dict[str, tuple[type | tuple[type, ...], bool]] = {
        "min_prob": ((int, float), False),
        "corpus_weight": ((int, float), True),
        "mixing": (str, False),
        "online_capacity": (int, False),
        "max_requests": (int, True),
        "stale_steps": (int, False),
        "threads": (int, True),
        "measure_step_cost": (bool, True),
        "token_aliases": (bool, False),
        "respelling": (bool, False),
        "mmap": (bool, False),
        "neighbours": (int, False),
        "save_every_tokens": (int, False),
        "save_every_seconds": ((int, float), False),
    }
    for name, (types, nullable) in checks.items():
        if name not in values:
            continue
        v = values[name]
        if (v is None and not nullable) or (
            v is not None
            and ((isinstance(v, bool) and types is not bool) or not isinstance(v, types))
        ):
            raise InvalidConfigError(f"{where}: {name} has the wrong type: {v!r}")
    # the drafter's ranges; JSON holds more (1e999 reads as inf, 10**40 as an int)
    limits = {
        "min_prob": (0.0, 1.0),
        "corpus_weight": (0.0, 1.0),
        "online_capacity": (0, 1 << 40),
        "max_requests": (1, 1 << 24),
        "stale_steps": (1, 1 << 32),
        "threads": (1, 1 << 10),
        "neighbours": (0, 256),
        "save_every_tokens": (1, 1 << 40),
        "save_every_seconds": (1e-3, 1e9),
    }
    for name, (lo, hi) in limits.items():
        v = values.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not lo <= v <= hi:
            bound = f">= {lo}" if not v >= lo else f"<= {hi}"
            raise InvalidConfigError(f"{where}: {name} must be {bound}, got {v!r}")
    overhead = values.get("step_overhead")
    if not (
        overhead is None
        or overhead == "auto"
        or (isinstance(overhead, (int, float)) and not isinstance(overhead, bool) and overhead >= 0)
    ):
        raise InvalidConfigError(
            f"{where}: step_overhead must be a number >= 0, null or 'auto', got {overhead!r}"
        )
    for name in ("stop_token_ids", "verify_cost"):
        v = values.get(name)
        if v is None:
            continue
        if isinstance(v, (str, bytes)) or not isinstance(v, Sequence):
            raise InvalidConfigError(f"{where}: {name} must be a list, got {v!r}")
        kind = int if name == "stop_token_ids" else (int, float)
        if any(isinstance(x, bool) or not isinstance(x, kind) for x in v):
            raise InvalidConfigError(f"{where}: {name} must be a list of numbers, got {v!r}")
        values[name] = tuple(v)
    learned = values.pop("learned_state", None)
    if learned is not None:
        if not isinstance(learned, (str, os.PathLike)) or not os.fspath(learned):
            raise InvalidConfigError(f"{where}: learned_state must be a file path, got {learned!r}")
        learned = Path(os.fspath(learned)).expanduser()
        if not learned.is_absolute() and base is not None:
            learned = base / learned
        if learned.exists() and not learned.is_file():
            raise InvalidConfigError(f"{where}: learned_state {learned} is not a regular file")
    return ProposerSettings(drafter=path, learned_state=learned, **values)


def resolve_settings(
    model: str | None = None, class_config: Mapping[str, Any] | None = None
) -> tuple[ProposerSettings, str]:
    """Finds the drafter and its settings (see the module docs); returns them and their origin.

    Args:
        model: The served model's name or directory (``vllm_config.model_config.model``).
        class_config: A subclass's ``config`` attribute, used when nothing else is set.

    Raises:
        InvalidConfigError: nothing names a drafter, or a config is malformed.
    """
    raw = os.environ.get(CONFIG_ENV, "").strip()
    if raw:
        if raw.startswith("{"):
            try:
                config = json.loads(raw)
            except (json.JSONDecodeError, RecursionError) as e:
                raise InvalidConfigError(f"${CONFIG_ENV} is not valid JSON: {e}") from None
            return _settings_from(config, None, f"${CONFIG_ENV}"), f"${CONFIG_ENV}"
        path = Path(raw).expanduser()
        return _read_config_file(path, f"${CONFIG_ENV}={raw}"), str(path)
    drafter = os.environ.get(DRAFTER_ENV, "").strip()
    if drafter:
        return _settings_from({"drafter": drafter}, None, f"${DRAFTER_ENV}"), f"${DRAFTER_ENV}"
    if model and Path(model).is_dir():
        folder = Path(model)
        if (folder / MODEL_DIR_CONFIG).is_file():
            path = folder / MODEL_DIR_CONFIG
            return _read_config_file(path, str(path)), str(path)
        if (folder / MODEL_DIR_DRAFTER).is_file():
            path = folder / MODEL_DIR_DRAFTER
            return _settings_from({"drafter": str(path)}, None, str(path)), str(path)
    if class_config:
        return _settings_from(class_config, None, "TascProposer.config"), "TascProposer.config"
    raise InvalidConfigError(
        "tasc_rs.vllm: no drafter given. Set $TASC_VLLM_DRAFTER to a drafter file (tasc build "
        f"... -o task.tasc), or $TASC_VLLM_CONFIG to a JSON config, or put {MODEL_DIR_DRAFTER} "
        f"or {MODEL_DIR_CONFIG} in the model's directory"
    )


def settings_from_options(options: Any) -> ProposerSettings:
    """The settings given as vLLM 0.34's ``speculative_config["speculator_options"]`` (a JSON
    object of the :class:`ProposerSettings` fields; relative paths are read from the working
    directory).

    Raises:
        InvalidConfigError: not a mapping, or a malformed or unknown setting.
    """
    if not isinstance(options, Mapping):
        raise InvalidConfigError(
            f"speculator_options must be a JSON object of settings, got {type(options).__name__}"
        )
    return _settings_from(options, None, "speculator_options")


#: The longest config file read: a config is a few hundred bytes.
MAX_CONFIG_BYTES = 1 << 20


def _read_config_file(path: Path, where: str) -> ProposerSettings:
    try:
        # a FIFO or device named here must neither block start-up nor be read without bound
        if not path.is_file():
            raise InvalidConfigError(f"{where}: not a regular file")
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise InvalidConfigError(f"{where}: larger than {MAX_CONFIG_BYTES} bytes")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidConfigError(f"{where}: cannot read the config file: {e}") from None
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise InvalidConfigError(f"{where}: not valid JSON: {e}") from None
    return _settings_from(config, path.parent, where)


def speculative_config(
    drafter: str | os.PathLike[str] | None = None, k: int = 8, **settings: Any
) -> dict[str, Any]:
    """The ``speculative_config`` that makes vLLM draft with tasc-rs.

    With ``drafter`` (and any :data:`DEFAULTS` setting as a keyword), the choice is stored in
    ``$TASC_VLLM_CONFIG`` of this process, which vLLM's engine processes inherit: call it before
    building the ``LLM``. Without it, the drafter is found as the module docs describe. On vLLM
    0.32-0.33 it names the ``custom_class`` route; on vLLM >= 0.34, which removed that route,
    the registered method ``"tasc"`` (:mod:`tasc_rs.vllm_v2`) with the settings as
    ``speculator_options``.

    Example:
        >>> speculative_config(k=4)["method"]
        'custom_class'
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidConfigError(f"k must be an int in 1..{MAX_K}, got {k!r}")
    if drafter is not None and not os.fspath(drafter):
        raise InvalidConfigError("drafter must be the path of a drafter file, got ''")
    config: dict[str, Any] | None = None
    if drafter is not None:
        config = {"drafter": str(Path(os.fspath(drafter)).expanduser().resolve()), **settings}
        _settings_from(config, None, "speculative_config")  # fail here, not in the engine
        os.environ[CONFIG_ENV] = json.dumps(config)
    elif settings:
        raise InvalidConfigError("settings need a drafter path: speculative_config(path, ...)")
    from tasc_rs.vllm_v2 import METHOD, has_speculator_registry, register

    if has_speculator_registry():  # vLLM >= 0.34: no custom_class route, a registered method
        register()
        out: dict[str, Any] = {"method": METHOD, "num_speculative_tokens": k}
        if config is not None:
            out["speculator_options"] = config
        return out
    return {
        "method": "custom_class",
        "model": f"{TascProposer.__module__}.{TascProposer.__qualname__}",
        "num_speculative_tokens": k,
    }


def _logger() -> logging.Logger:
    # A child of vLLM's logger shares its handlers and format when vLLM has configured them.
    return logging.getLogger("vllm.tasc_rs")


def _stop_ids(model_config: Any) -> set[int]:
    """The served model's end-of-sequence ids (config, generation config, tokenizer)."""
    ids: set[int] = set()

    def add(value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            for v in value:
                add(v)

    add(getattr(getattr(model_config, "hf_config", None), "eos_token_id", None))
    try:
        gen = model_config.try_get_generation_config()
        add(gen.get("eos_token_id") if isinstance(gen, Mapping) else None)
    except Exception:
        pass
    return ids


def _tokenizer(model_config: Any) -> Any | None:
    """The served model's tokenizer, or ``None`` if it cannot be loaded here."""
    name = getattr(model_config, "tokenizer", None) or getattr(model_config, "model", None)
    if not name:
        return None
    try:
        from transformers import AutoTokenizer

        # vLLM has fetched the tokenizer by now; never reach out to a hub from here
        return AutoTokenizer.from_pretrained(
            name,
            local_files_only=True,
            revision=getattr(model_config, "tokenizer_revision", None),
            trust_remote_code=bool(getattr(model_config, "trust_remote_code", False)),
        )
    except Exception:
        return None


def check_vocabulary(
    drafter: NgramDrafter, model_config: Any, where: str, tokenizer: Any | None
) -> None:
    """Refuses a drafter built with another vocabulary than the served model's (``tokenizer``:
    the served model's, ``None`` if it cannot be loaded here).

    Raises:
        InvalidConfigError: the drafter's ``vocab_size`` differs from the model tokenizer's
            size, or exceeds the model's vocabulary.
    """
    own = drafter.vocab_size
    if own is None:
        _logger().warning(
            "tasc_rs: the drafter %s records no vocabulary size; cannot check that it was "
            "built with this model's tokenizer",
            where,
        )
        return
    tokens = None if tokenizer is None else len(tokenizer)
    if tokens is not None and own != tokens:
        raise InvalidConfigError(
            f"the drafter {where} was built with a vocabulary of {own} tokens, but the served "
            f"model's tokenizer has {tokens}: build the drafter with this model's tokenizer "
            "(tasc build --tokenizer ...)"
        )
    get_size = getattr(model_config, "get_vocab_size", None)
    size = get_size() if callable(get_size) else None
    if isinstance(size, int) and own > size:
        raise InvalidConfigError(
            f"the drafter {where} was built with a vocabulary of {own} tokens, more than the "
            f"served model's {size}"
        )


class TascProposer:
    """vLLM ``custom_class`` proposer drafting with a tasc-rs :class:`NgramDrafter`.

    vLLM builds it as ``TascProposer(vllm_config)`` in each worker process and calls
    :meth:`propose` once per engine step. Greedy output is token-identical to vLLM without
    speculation and sampling keeps the target distribution: vLLM verifies every draft.

    Attributes:
        config: Settings used when neither the environment nor the model directory gives any
            (set it in a subclass).
    """

    config: ClassVar[Mapping[str, Any] | None] = None

    def __init__(self, vllm_config: Any) -> None:
        spec = vllm_config.speculative_config
        model_config = vllm_config.model_config
        self.k = int(spec.num_speculative_tokens)
        if not 1 <= self.k <= MAX_K:
            raise InvalidConfigError(
                f"tasc_rs.vllm: num_speculative_tokens must be in 1..{MAX_K} (the longest draft "
                f"tasc-rs makes), got {self.k}"
            )
        self.max_model_len = int(model_config.max_model_len)
        options = getattr(spec, "speculator_options", None)  # vLLM >= 0.34
        if options is not None:
            settings, origin = settings_from_options(options), "speculator_options"
        else:
            settings, origin = resolve_settings(getattr(model_config, "model", None), self.config)
        self.settings = settings
        try:
            multi = _starts_with(settings.drafter, MULTI_MAGIC)
            if multi and settings.mmap:
                raise InvalidConfigError(
                    "mmap applies to single-task drafter files; a multi-task file is read whole"
                )
            self.multi: MultiTaskDrafter | None = (
                MultiTaskDrafter.load(settings.drafter) if multi else None
            )
            drafter = (
                NgramDrafter.load(settings.drafter, mmap=settings.mmap)
                if self.multi is None
                else None
            )
        except TascError as e:
            raise type(e)(f"tasc_rs.vllm: cannot load the drafter ({origin}): {e}") from None
        tokenizer = _tokenizer(model_config)
        # one drafter per task (a multi-task file), keyed by task name; None: a single drafter
        drafters: dict[str | None, NgramDrafter] = (
            {None: drafter} if drafter is not None else dict(_tasks(self.multi))
        )
        for task, d in drafters.items():
            where = str(settings.drafter) + ("" if task is None else f" (task {task})")
            check_vocabulary(d, model_config, where, tokenizer)
            d.online_capacity = settings.online_capacity
            d.neighbours = settings.neighbours
            if settings.learned_state is not None and settings.online_capacity > 0:
                state = settings.learned_state
                state = state if task is None else state.with_name(f"{state.name}.{task}")
                if _parallel_rank() == 0:
                    d.autosave(
                        state,
                        every_tokens=settings.save_every_tokens,
                        every_seconds=settings.save_every_seconds,
                    )
                else:  # the ranks learn alike: rank 0 keeps the file, the others read it
                    _load_learned(d, state)
        if settings.token_aliases or settings.respelling:
            if tokenizer is None:
                _logger().warning(
                    "tasc_rs: cannot load the served model's tokenizer here; drafting without "
                    "token aliases and respelling"
                )
            else:
                aliases = space_aliases(tokenizer) if settings.token_aliases else None
                respelling = bpe_respelling(tokenizer) if settings.respelling else None
                for d in drafters.values():
                    if aliases is not None:
                        d.token_aliases = aliases
                    if respelling is not None:
                        d.respelling = respelling
        if self.multi is not None:
            # requests like no task draft from their context alone
            drafters[""] = self.multi._context_drafter()
        self.drafters = drafters
        self.drafter = next(iter(drafters.values()))
        max_num_seqs = int(getattr(vllm_config.scheduler_config, "max_num_seqs", 256) or 256)
        stop = _stop_ids(model_config) | set(settings.stop_token_ids)
        device = getattr(getattr(vllm_config, "device_config", None), "device_type", None)
        overhead = settings.step_overhead
        measure = settings.measure_step_cost
        if measure is None:
            measure = overhead == "auto"
        if overhead == "auto":
            overhead = CPU_STEP_OVERHEAD if device == "cpu" else None
        measure = bool(measure) and overhead is not None  # nothing to refine without a cut
        self._batches = {
            task: d.batch_proposer(
                max_requests=settings.max_requests or 4 * max_num_seqs,
                stale_steps=settings.stale_steps,
                stop_tokens=sorted(stop),
                corpus_weight=settings.corpus_weight,
                min_prob=settings.min_prob,
                mixing=settings.mixing,
                verify_cost=settings.verify_cost,
                step_overhead=None if overhead is None else float(overhead),
                measure_step_cost=measure,
                threads=1 if settings.threads is None and device == "cpu" else settings.threads,
            )
            for task, d in self.drafters.items()
        }
        self._batch = self._batches[next(iter(self._batches))]
        self._routes = _Routes(4 * max_num_seqs)
        self._failures = 0
        if device == "cpu":
            _logger().warning(
                "tasc_rs: on vLLM's CPU backend (0.32) sampling with any speculative method, "
                "vLLM's own ngram included, does not keep the target distribution (measured); "
                "greedy decoding is exact. Sample without speculation on CPU."
            )
        _logger().info(
            "tasc_rs: drafting with %s (from %s): k=%d, min_prob=%s, mixing=%s, "
            "online_capacity=%d, step_overhead=%s (measured: %s), stop ids %s, "
            "%d token aliases; %r",
            settings.drafter,
            origin,
            self.k,
            settings.min_prob,
            settings.mixing,
            settings.online_capacity,
            overhead,
            measure,
            sorted(stop),
            len(self.drafter.token_aliases),
            self._batch if self.multi is None else self.multi,
        )

    def propose(
        self,
        sampled_token_ids: Sequence[Sequence[int]],
        num_tokens_no_spec: Any,
        token_ids_cpu: Any,
        slot_mappings: Any = None,
        **_: Any,
    ) -> list[list[int]]:
        """Drafts for every row of the batch: one list of token ids per row (``[]``: none).

        A drafting failure never fails the request: it is logged and the step runs without
        drafts.
        """
        try:
            if self.multi is None:
                return self._batch.propose(
                    sampled_token_ids,
                    num_tokens_no_spec,
                    token_ids_cpu,
                    self.k,
                    self.max_model_len,
                )
            return self._propose_by_task(sampled_token_ids, num_tokens_no_spec, token_ids_cpu)
        except Exception:
            self._failures += 1
            if self._failures == 1 or self._failures % 1000 == 0:
                _logger().exception(
                    "tasc_rs: drafting failed (%d times so far); this step runs without drafts",
                    self._failures,
                )
            return [[] for _ in sampled_token_ids]

    def _propose_by_task(
        self, sampled: Sequence[Sequence[int]], num_tokens: Any, token_ids: Any
    ) -> list[list[int]]:
        """A multi-task file's step: each row routed to its task (once per request) and the
        batch drafted by each task's proposer on its own rows."""
        import numpy as np

        multi = self.multi
        assert multi is not None
        num = np.asarray(num_tokens)
        buf = np.asarray(token_ids)
        groups: dict[str, list[int]] = {}
        for i in range(len(sampled)):
            n = int(num[i])
            task = self._routes.task(buf[i, :n], multi) if n > 0 else ""
            groups.setdefault(task, []).append(i)
        out: list[list[int]] = [[] for _ in sampled]
        for task, rows in groups.items():
            lens = num[rows]
            # only the group's valid columns are copied, not the engine's whole buffer
            width = max(int(lens.max()), 1)
            drafts = self._batches[task].propose(
                [sampled[i] for i in rows], lens, buf[rows, :width], self.k, self.max_model_len
            )
            for i, draft in zip(rows, drafts, strict=True):
                out[i] = draft
        return out

    def load_model(self, *args: Any, **kwargs: Any) -> None:
        """No model to load (vLLM's CPU runner calls this unconditionally)."""

    def forget(self) -> None:
        """Forgets every request and everything learned online (vLLM 0.34 asks for this after
        its warm-up requests)."""
        for d in self.drafters.values():
            d.forget()
        for batch in self._batches.values():
            batch.reset()

    def stats(self) -> dict[str, Any]:
        """The batch proposer's counters (see ``BatchProposer.stats``) and ``failures``; with
        a multi-task file, each task's under ``tasks`` (``""``: requests like no task) and the
        first task's at the top level."""
        out: dict[str, Any] = {**self._batch.stats(), "failures": self._failures}
        if self.multi is not None:
            out["tasks"] = {task: b.stats() for task, b in self._batches.items()}
        return out


def _parallel_rank() -> int:
    """This worker's rank among its engine's tensor- and pipeline-parallel ranks (0 outside a
    distributed vLLM worker). Every rank runs a proposer on the same token buffers, so their
    drafters learn alike (tests/vllm/test_tensor_parallel.py); rank 0 alone saves."""
    try:
        from vllm.distributed import parallel_state as ps

        if not ps.model_parallel_is_initialized():
            return 0
        tp = int(ps.get_tensor_model_parallel_rank())
        pp = int(ps.get_pp_group().rank_in_group)
        return pp * int(ps.get_tensor_model_parallel_world_size()) + tp
    except Exception:  # no vLLM here, or one without these functions: a single process
        return 0


def _load_learned(drafter: NgramDrafter, path: Path) -> None:
    """Loads a learned state if there is one; a damaged or foreign one is logged and ignored."""
    if not path.exists():
        return
    try:
        drafter.load_learned(path)
    except TascError as e:
        _logger().warning("tasc_rs: ignoring the learned state in %s: %s", path, e)


def _starts_with(path: Path, magic: bytes) -> bool:
    """Whether the regular file at ``path`` starts with ``magic`` (False for anything else:
    the drafter loader then reports what is wrong)."""
    try:
        if not path.is_file():
            return False
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


def _tasks(multi: MultiTaskDrafter | None) -> list[tuple[str, NgramDrafter]]:
    return [] if multi is None else [(t, multi[t]) for t in multi]


class _Routes:
    """Each running request's task, routed once: a request is known by its first 64 tokens and
    the 32 before the length it was first seen at (its prompt's end); the oldest entries go
    first beyond ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.known: OrderedDict[bytes, list[tuple[int, bytes, str]]] = OrderedDict()

    def task(self, row: Any, multi: MultiTaskDrafter) -> str:
        n = len(row)
        head = hashlib.blake2b(row[:64].tobytes(), digest_size=8).digest()
        for at, tail, task in self.known.get(head, ()):
            if (
                at <= n
                and hashlib.blake2b(row[max(0, at - 32) : at].tobytes(), digest_size=8).digest()
                == tail
            ):
                self.known.move_to_end(head)
                return task
        task = multi.route(row) or ""
        tail = hashlib.blake2b(row[max(0, n - 32) : n].tobytes(), digest_size=8).digest()
        entries = self.known.setdefault(head, [])
        entries.append((n, tail, task))
        if len(entries) > self.capacity:  # requests sharing their first 64 tokens
            del entries[0]
        self.known.move_to_end(head)
        while len(self.known) > self.capacity:
            self.known.popitem(last=False)
        return task
