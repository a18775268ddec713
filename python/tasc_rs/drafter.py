"""NgramDrafter: the TASC-spec draft model (task n-grams mixed with context n-grams).

The heavy lifting happens in Rust (:mod:`tasc_rs._core`); this class owns the Python-side policy:
accepting corpora in every shape users have them, paths, pickling and a readable repr.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tasc_rs._args import bool_arg, iterable_arg, pairs_arg, str_arg
from tasc_rs._core import BatchProposer, CorpusBuilder, DraftSession, NgramStore
from tasc_rs.aliases import Respelling
from tasc_rs.errors import ArgumentTypeError, DtypeError, InvalidConfigError, InvalidInputError

__all__ = ["DEFAULT_PRESET", "PRESETS", "NgramDrafter", "TokenIds", "restore_drafter"]

#: Token ids: a sequence of Python ints or a 1-D integer numpy array.
TokenIds = Sequence[int] | npt.NDArray[np.integer[Any]]

#: Named drafter configurations; any setting passed explicitly overrides its preset's value.
#:
#: - ``"tuned"`` (the default): what benches/RESULTS.md measures fastest across tasks, models and
#:   peers: 8-grams, lambda 0.9, the side with the longer matched context weighted higher
#:   (``mixing="longer_match"``), and online learning of every finished response (up to 1M
#:   tokens, oldest first out).
#: - ``"paper"``: TASC-spec as the paper specifies it (4-grams, lambda 0.75, p_min 5, fixed
#:   mixing, no online learning), to reproduce its numbers.
#:
#: Draft length and threshold are not part of a preset: the Hugging Face loop measures the
#: verify cost of the model on its device and cuts each draft to what pays (``verify_cost``).
PRESETS: dict[str, dict[str, Any]] = {
    "tuned": {
        "n_max": 8,
        "min_count": 5,
        "corpus_weight": 0.9,
        "min_prob": 0.0,
        "mixing": "longer_match",
        "online_capacity": 1 << 20,
        "neighbours": 8,
    },
    "paper": {
        "n_max": 4,
        "min_count": 5,
        "corpus_weight": 0.75,
        "min_prob": 0.0,
        "mixing": "fixed",
        "online_capacity": 0,
        "neighbours": 0,
    },
}
DEFAULT_PRESET = "tuned"

#: Children per node of the token trees ``tasc_rs.hf.generate`` drafts for one sequence by
#: default (1: chains). Measured (benches/e2e_peers.py): trees verify 7-17% more tokens per
#: forward than chains on SmolLM2 with the tuned drafter; the verify-cost cut keeps them small
#: on a CPU.
DEFAULT_TREE_WIDTH = 3


def preset_settings(preset: str, **overrides: Any) -> dict[str, Any]:
    """The settings of ``preset`` with every override that is not ``None`` applied.

    Raises:
        InvalidConfigError: an unknown preset name.
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        raise InvalidConfigError(f"unknown preset {preset!r}: choose one of {sorted(PRESETS)}")
    if overrides.get("mixing") is not None:
        str_arg("mixing", overrides["mixing"])
    settings = dict(PRESETS[preset])
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return settings


class NgramDrafter:
    """A TASC-spec drafter: proposes draft tokens for speculative decoding.

    The task store holds next-token counts for every context of up to ``n_max - 1`` tokens in the
    task's output corpus, pruned below ``min_count``. A draft is a greedy chain over
    ``p_mixed = corpus_weight * p_corpus + (1 - corpus_weight) * p_context``, where each side backs
    off to its longest matching context and ``p_context`` comes from the request's own tokens.
    Drafting stops after ``k`` tokens or before a token whose mixed probability is below
    ``min_prob``. The drafter is safe to share between threads; per-request state lives in a
    :class:`DraftSession`.

    Online learning (on in the default ``"tuned"`` preset, off in ``"paper"``): with
    ``online_capacity > 0`` every finished response (``session.finish()``, which
    ``tasc_rs.hf.generate`` calls) joins a bounded index that the task side reads as part of the
    corpus, so the drafter learns how the served model actually writes. The learned responses
    are not saved or pickled.

    Example:
        >>> from tasc_rs import NgramDrafter
        >>> corpus = [[5, 6, 7, 8, 2], [5, 6, 7, 9, 2]] * 5
        >>> drafter = NgramDrafter.from_corpus(corpus)
        >>> session = drafter.session([1, 5])
        >>> ids, probs = session.propose(4)
        >>> ids.tolist(), probs.round(2).tolist()
        ([6, 7, 8, 2], [0.9, 0.9, 0.45, 0.9])
        >>> session.extend(ids[:2])
    """

    __slots__ = ("__weakref__", "_autosave", "_respelling", "_store")

    def __init__(self, store: NgramStore) -> None:
        """Wraps a native store; use :meth:`from_corpus`, :meth:`from_flat` or :meth:`load`."""
        if not isinstance(store, NgramStore):
            raise TypeError(f"expected a tasc_rs._core.NgramStore, got {type(store).__name__}")
        self._store = store
        self._respelling: Respelling | None = None
        self._autosave: Any = None

    @property
    def mixing(self) -> str:
        """The mixing rule new sessions start with: ``"longer_match"`` (the tuned preset's: the
        side with the longer matched context gets the larger weight; see
        ``DraftSession.mixing``) or ``"fixed"`` (the paper's). Not saved with the drafter: a
        loaded drafter takes its preset's.

        Raises:
            InvalidConfigError: on setting any other name.
        """
        return self._store.mixing

    @mixing.setter
    def mixing(self, value: str) -> None:
        self._store.mixing = str_arg("mixing", value)

    @property
    def neighbours(self) -> int:
        """How many similar past requests a new session drafts from (default 8; 0: none).

        A drafter built from (request, answer) pairs (:meth:`from_pairs`) keeps the pairs; a
        session finds the training requests most like its prompt (rare tokens weigh most,
        tokens every request holds nothing) and, where their answers agree on the next token
        more than the task store and the context do, drafts it (``rust/neighbours.rs``). A
        drafter built from answers alone has no pairs: the setting then changes nothing. Not
        saved with the drafter (pickled with it).

        Raises:
            InvalidConfigError: not an int in 0..=256.
        """
        return self._store.neighbours

    @neighbours.setter
    def neighbours(self, value: int) -> None:
        self._store.neighbours = value

    @classmethod
    def from_corpus(
        cls,
        corpus: Iterable[TokenIds],
        *,
        preset: str = DEFAULT_PRESET,
        n_max: int | None = None,
        min_count: int | None = None,
        corpus_weight: float | None = None,
        min_prob: float | None = None,
        mixing: str | None = None,
        online_capacity: int | None = None,
        vocab_size: int | None = None,
    ) -> NgramDrafter:
        """Builds a drafter from token-id sequences (one per task output).

        Args:
            corpus: An iterable of sequences (lists of ints or 1-D integer arrays). It is consumed
                once and never held as Python objects, so a generator over a huge file works.
            preset: ``"tuned"`` (default) or ``"paper"``: the settings below that are not given
                (see :data:`PRESETS`).
            n_max: Largest n-gram order (contexts of up to ``n_max - 1`` tokens), 1..8.
            min_count: n-grams seen fewer times are pruned (the paper's p_min = 5).
            corpus_weight: lambda, the weight of the task distribution, in [0, 1].
            min_prob: default early-stop threshold on the mixed probability, in [0, 1].
            mixing: ``"longer_match"`` or ``"fixed"`` (see :attr:`mixing`).
            online_capacity: tokens of finished responses learned online (0: off; see
                :attr:`online_capacity`).
            vocab_size: if given, every id must be below it (checked here and at proposal time).

        Raises:
            InvalidConfigError: a setting is out of range.
            InvalidInputError: negative or out-of-range ids, or no tokens at all.
            DtypeError: a sequence holds something other than integers.
        """
        builder = CorpusBuilder(vocab_size)
        if isinstance(corpus, (str, bytes, np.ndarray)) and getattr(corpus, "ndim", 2) != 2:
            raise DtypeError(
                "corpus must be an iterable of token-id sequences "
                f"(got {type(corpus).__name__}); use from_flat for one flat array plus offsets"
            )
        for i, seq in enumerate(corpus):
            if isinstance(seq, (int, np.integer)):
                raise DtypeError(
                    f"corpus sequence {i} is a single int: corpus must be an iterable of "
                    "sequences, e.g. [[1, 2, 3], [4, 5]]"
                )
            try:
                builder.add(seq)
            except InvalidInputError as e:
                message = str(e).removeprefix("ids")
                raise type(e)(f"corpus sequence {i}{message}") from None
        return cls._built(builder, preset, locals())

    @classmethod
    def from_pairs(
        cls,
        requests: Iterable[TokenIds],
        answers: Iterable[TokenIds],
        *,
        preset: str = DEFAULT_PRESET,
        n_max: int | None = None,
        min_count: int | None = None,
        corpus_weight: float | None = None,
        min_prob: float | None = None,
        mixing: str | None = None,
        online_capacity: int | None = None,
        vocab_size: int | None = None,
    ) -> NgramDrafter:
        """Builds a drafter from (request, answer) pairs of token ids: the task store from the
        answers, as :meth:`from_corpus` does, plus the copy pointer, which learns where answers
        copy a value of their request (after which two request tokens, at which point of the
        answer) and drafts the live request's value there (``rust/copy.rs``), and the pairs
        themselves, whose answers draft for similar requests (:attr:`neighbours`,
        ``rust/neighbours.rs``). Saved with the drafter (file format 3 and later). Settings as in
        :meth:`from_corpus`.

        Each request should be tokenized as the prompt holds it (for a chat model, the user
        turn's text after its header, e.g. ``tokenizer.encode("\\n" + text)``); the copy pointer
        finds its anchors in the live prompt's tokens.

        Example:
            >>> d = NgramDrafter.from_pairs([[1, 2, 7, 8, 3]] * 5, [[7, 8, 4]] * 5, min_count=1)
            >>> d.session([1, 2, 5, 6, 3]).propose(2)[0].tolist()
            [5, 6]

        Raises:
            InvalidInputError: the two differ in length, or an id is out of range.
        """
        builder = CorpusBuilder(vocab_size)
        requests, answers = iterable_arg("requests", requests), iterable_arg("answers", answers)
        if len(requests) != len(answers):
            raise InvalidInputError(
                f"requests and answers differ in length ({len(requests)} != {len(answers)})"
            )
        for i, (request, answer) in enumerate(zip(requests, answers, strict=True)):
            try:
                builder.add_pair(request, answer)
            except InvalidInputError as e:
                raise type(e)(f"pair {i}: {e}") from None
        return cls._built(builder, preset, locals())

    @classmethod
    def _built(cls, builder: CorpusBuilder, preset: str, args: dict[str, Any]) -> NgramDrafter:
        """Counts ``builder``'s corpus with ``preset`` overridden by the given ``args``."""
        names = ("n_max", "min_count", "corpus_weight", "min_prob", "mixing", "online_capacity")
        s = preset_settings(preset, **{name: args[name] for name in names})
        store = NgramStore.build(
            builder, s["n_max"], s["min_count"], s["corpus_weight"], s["min_prob"]
        )
        return cls(store)._with_runtime(s)

    def _with_runtime(self, settings: dict[str, Any]) -> NgramDrafter:
        """Applies the settings that are not saved with a drafter (mixing, online learning)."""
        self.mixing = settings["mixing"]
        self.online_capacity = settings["online_capacity"]
        self.neighbours = settings["neighbours"]
        return self

    @classmethod
    def from_flat(
        cls,
        tokens: TokenIds,
        offsets: TokenIds,
        *,
        preset: str = DEFAULT_PRESET,
        n_max: int | None = None,
        min_count: int | None = None,
        corpus_weight: float | None = None,
        min_prob: float | None = None,
        mixing: str | None = None,
        online_capacity: int | None = None,
        vocab_size: int | None = None,
    ) -> NgramDrafter:
        """Builds a drafter from one flat id array and sequence boundaries.

        Sequence ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``; ``offsets`` starts at 0, never
        decreases and ends at ``len(tokens)``. Other arguments are as in :meth:`from_corpus`.

        Example:
            >>> import numpy as np
            >>> d = NgramDrafter.from_flat([1, 2, 3, 1, 2, 4], [0, 3, 6], n_max=4, min_count=1)
            >>> d.stats()["ngrams"]
            [4, 3, 2, 0]
        """
        builder = CorpusBuilder(vocab_size)
        builder.add_flat(tokens, offsets)
        return cls._built(builder, preset, locals())

    def session(self, prompt_ids: TokenIds) -> DraftSession:
        """Starts a per-request session whose context index holds ``prompt_ids``.

        Call ``session.propose(k)`` before each verification step,
        ``session.extend(accepted_ids)`` after it, and ``session.finish()`` at the end.
        """
        return self._store.session(prompt_ids)

    def batch_proposer(
        self,
        *,
        max_requests: int = 256,
        stale_steps: int = 64,
        stop_tokens: Sequence[int] = (),
        corpus_weight: float | None = None,
        min_prob: float | None = None,
        mixing: str | None = None,
        verify_cost: Sequence[float] | None = None,
        step_overhead: float | None = None,
        measure_step_cost: bool = False,
        threads: int | None = None,
    ) -> BatchProposer:
        """A proposer for a serving engine's batch: one native call per engine step drafts for
        every row, reading the engine's token buffer in place with the GIL released.

        Engines do not name requests, so the proposer keeps one incremental context index per
        request and recognises each row's request by its tokens (the row it held last step,
        else a hash of its first tokens; see ``rust/serving.rs``). A request whose last token is
        in ``stop_tokens``, or that no step has shown for ``stale_steps`` steps, is finished:
        its response is learned (when :attr:`online_capacity` > 0) and its state dropped. At
        most ``max_requests`` states are kept (the least recently seen go first).

        ``corpus_weight``, ``min_prob``, ``mixing`` and ``verify_cost`` default to this
        drafter's settings (see :meth:`DraftSession.propose`). With ``step_overhead`` (the fixed
        cost of an engine step in units of one verified position), each step's drafts are cut
        together: positions are kept in order of their path probability while they raise the
        batch's expected tokens per unit of step cost. With ``measure_step_cost`` the proposer
        times the engine itself (the time between calls is one step, fitted against the
        positions it verified, counting only steps where no request started or vanished) and,
        after 32 such steps spread over different draft lengths, cuts with the fitted
        overhead; ``step_overhead`` is then the prior. A batch of 96 rows or more is drafted
        by ``threads`` threads in parallel (default ``None``: the machine's cores, at most 8; 1:
        the calling thread only); the pool is built on the first such batch and idles between
        steps. ``tasc_rs.vllm.TascProposer`` drives one inside vLLM.

        Example:
            >>> import numpy as np
            >>> d = NgramDrafter.from_corpus([[1, 2, 3, 4]] * 5)
            >>> bp = d.batch_proposer()
            >>> buf = np.zeros((2, 16), dtype=np.int32)
            >>> buf[0, :3] = [9, 1, 2]
            >>> bp.propose([[2], []], np.array([3, 0], dtype=np.int32), buf, k=2)
            [[3, 4], []]

        Raises:
            InvalidConfigError: a setting is out of range.
        """
        return self._store.batch_proposer(
            max_requests=max_requests,
            stale_steps=stale_steps,
            stop_tokens=stop_tokens,
            corpus_weight=corpus_weight,
            min_prob=min_prob,
            mixing=mixing,
            verify_cost=None if verify_cost is None else list(verify_cost),
            step_overhead=step_overhead,
            measure_step_cost=measure_step_cost,
            threads=threads,
        )

    def propose(
        self,
        context_ids: TokenIds,
        k: int,
        *,
        min_prob: float | None = None,
        corpus_weight: float | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Drafts up to ``k`` tokens after ``context_ids`` without keeping state.

        Indexes the whole context on every call; for repeated drafting in one request use
        :meth:`session`, which is incremental.

        Returns:
            ``(ids, probs)``: int64 draft ids and float64 mixed probabilities, same length <= k.
        """
        return self._store.propose(context_ids, k, min_prob, corpus_weight)

    @property
    def online_capacity(self) -> int:
        """Most tokens of learned responses kept (oldest dropped first); 0 is off. The tuned
        preset (default) learns up to ``1 << 20`` tokens; the paper preset none."""
        return self._store.online_capacity

    @online_capacity.setter
    def online_capacity(self, capacity: int) -> None:
        self._store.online_capacity = capacity

    @property
    def token_aliases(self) -> list[tuple[int, int]]:
        """Pairs of token ids spelling one word (with and without its leading space, see
        :func:`tasc_rs.space_aliases`) that sessions and batch proposers read both ways: where
        the request's context has no match by a token, its partner's is read, so a span the
        answer copies from the prompt after ``=``, a quote or a newline is still found. Empty:
        exact tokens only (the default). Applies to sessions and proposers made afterwards;
        carried by pickling, not saved with the drafter.

        Raises:
            InvalidInputError: on setting ids that are negative or outside the vocabulary.
        """
        return self._store.token_aliases

    @token_aliases.setter
    def token_aliases(self, pairs: Iterable[tuple[int, int]] | None) -> None:
        self._store.set_token_aliases(None if pairs is None else pairs_arg("token_aliases", pairs))

    @property
    def respelling(self) -> Respelling | None:
        """A byte-level BPE vocabulary (:func:`tasc_rs.bpe_respelling`) with which sessions and
        batch proposers also count each word of the prompt in its other spelling, with or
        without its leading space, split as the tokenizer would split it: an answer that
        copies ``charlotte`` after ``=`` writes ``ch`` ``arl`` ``otte`` where the prompt had
        `` char`` ``lotte``, and the context then still finds the rest of the word. ``None``:
        off (the default). Applies to sessions and proposers made afterwards; carried by
        pickling, not saved with the drafter.

        Raises:
            InvalidInputError: on setting merges with ids outside the given vocabulary.
        """
        return self._respelling

    @respelling.setter
    def respelling(self, table: Respelling | None) -> None:
        if table is None:
            self._store.set_respelling(None)
        else:
            parts = iterable_arg("respelling", table)
            if len(parts) != 2:
                raise ArgumentTypeError("respelling must be (token_bytes, merges), a Respelling")
            token_bytes = iterable_arg("respelling.token_bytes", parts[0])
            if not all(isinstance(b, bytes) for b in token_bytes):
                raise ArgumentTypeError("respelling.token_bytes must hold bytes, one per token id")
            merges = pairs_arg("respelling.merges", parts[1])
            self._store.set_respelling(token_bytes, merges)
            table = Respelling(token_bytes, merges)
        self._respelling = table

    def learn(self, output_ids: TokenIds) -> None:
        """Adds one finished response to the online index (no-op while it is off)."""
        self._store.learn(output_ids)

    def forget(self) -> None:
        """Drops every learned response (and those still queued for the background learner)."""
        self._store.forget()

    def wait_learned(self, timeout: float | None = None) -> bool:
        """Waits until every finished response is learned; False if ``timeout`` seconds passed
        first (``None``: no limit).

        Learning is immediate, except when a response makes the online index evict at a large
        :attr:`online_capacity` (the rebuild takes about a microsecond per kept token): then a
        background thread learns it, so that no ``finish()`` or engine step waits, and drafts
        use it from the moment it is in. Saving the learned state waits for it by itself.

        Raises:
            InvalidConfigError: ``timeout`` negative or not finite.
        """
        return self._store.wait_learned(timeout)

    def save_learned(self, path: str | os.PathLike[str]) -> None:
        """Writes what the drafter learned while serving (the learned responses, the copy
        pointer's and the neighbours' outcomes, the served pairs) to ``path``, atomically: a
        process killed while saving leaves the previous file whole. The file is tied to this
        drafter: :meth:`load_learned` refuses it for another.

        Raises:
            TascIOError: the file cannot be written (or ``path`` is a device, FIFO or
                directory).
        """
        self._store.save_learned(path)

    def load_learned(self, path: str | os.PathLike[str]) -> None:
        """Replaces what the drafter learned with the state :meth:`save_learned` wrote.

        Raises:
            DrafterFileError: a damaged file, or one of another drafter (nothing changes).
            TascIOError: the file cannot be read.
        """
        self._store.load_learned(path)

    def learned_state(self) -> bytes:
        """What :meth:`save_learned` writes, as bytes (tied to this drafter)."""
        return self._store.learned_state()

    def restore_learned(self, data: bytes) -> None:
        """Replaces what the drafter learned with :meth:`learned_state` output.

        Raises:
            DrafterFileError: damaged, or of another drafter (nothing changes).
        """
        self._store.restore_learned(data)

    def autosave(
        self,
        path: str | os.PathLike[str],
        *,
        every_tokens: int = 1 << 16,
        every_seconds: float = 60.0,
    ) -> None:
        """Keeps what the drafter learns across restarts: loads ``path`` now if it exists (a
        damaged file, or one of another drafter, is logged once and ignored: the drafter starts
        without it), then saves to it from a background thread whenever ``every_tokens`` more
        tokens were learned or ``every_seconds`` passed with something new, and at interpreter
        exit. A ``kill -9`` loses at most the last interval. Calling it again replaces the
        previous autosave; :meth:`stop_autosave` stops it.

        Raises:
            InvalidConfigError: ``every_tokens`` < 1 or ``every_seconds`` not > 0.
        """
        from tasc_rs._autosave import Autosave

        self.stop_autosave()
        self._autosave = Autosave(self, path, every_tokens, every_seconds)

    def stop_autosave(self, save: bool = True) -> None:
        """Stops :meth:`autosave` (saving once more when ``save``); nothing if none runs."""
        if self._autosave is not None:
            self._autosave.stop(save)
            self._autosave = None

    def online_stats(self) -> dict[str, int]:
        """``capacity``, ``tokens`` and ``responses`` indexed now, ``learned`` ever, the
        ``pairs`` (prompt, response) kept for :attr:`neighbours`, responses ``pending`` for the
        background learner (:meth:`wait_learned`) and queued ones it ``dropped`` (more than a
        capacity's worth queued at once)."""
        return self._store.online_stats()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the drafter to ``path`` atomically (versioned binary format with a CRC32)."""
        self._store.save(path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        preset: str = DEFAULT_PRESET,
        mixing: str | None = None,
        online_capacity: int | None = None,
        mmap: bool = False,
    ) -> NgramDrafter:
        """Reads a drafter written by :meth:`save`.

        The counts and the n-gram settings come from the file; the settings not saved with it
        (``mixing``, ``online_capacity``) come from ``preset`` unless given.

        With ``mmap=True`` the file is memory-mapped read-only and the n-gram trie is read in
        place: every process that maps the same file shares one copy of it (tensor-parallel
        ranks, replicas on one machine), where ``load`` gives each process its own. Drafts are
        the same either way. The file must then not be rewritten in place while it is in use
        (``save`` replaces files by renaming, which is safe; ``cp new.tasc old.tasc`` is not:
        a truncated mapped file kills the process with SIGBUS). Files of format version 3 or
        older (written by earlier releases) cannot be mapped: load and save them once.

        Raises:
            DrafterFileError: the file is truncated, corrupted, foreign, of another version, or
                (with ``mmap``) older than version 4.
            TascIOError: the file cannot be read.
        """
        runtime = preset_settings(preset, mixing=mixing, online_capacity=online_capacity)
        return cls(NgramStore.load(path, bool_arg("mmap", mmap)))._with_runtime(runtime)

    def to_bytes(self) -> bytes:
        """The saved-file representation as bytes."""
        return self._store.to_bytes()

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        preset: str = DEFAULT_PRESET,
        mixing: str | None = None,
        online_capacity: int | None = None,
    ) -> NgramDrafter:
        """Inverse of :meth:`to_bytes`; unsaved settings as in :meth:`load`."""
        runtime = preset_settings(preset, mixing=mixing, online_capacity=online_capacity)
        return cls(NgramStore.from_bytes(data))._with_runtime(runtime)

    def stats(self) -> dict[str, Any]:
        """Counts and memory: ``ngrams`` (distinct kept n-grams per order 1..n_max),
        ``contexts`` (contexts with a kept next token per length 0..n_max-1),
        ``corpus_tokens``, ``sequences``, ``bytes`` (bytes of the store) and ``mapped``
        (whether those bytes are a memory-mapped file's pages, shared between processes, rather
        than this process's heap: :meth:`load` with ``mmap=True``)."""
        return self._store.stats()

    @property
    def n_max(self) -> int:
        return self._store.n_max

    @property
    def min_count(self) -> int:
        return self._store.min_count

    @property
    def corpus_weight(self) -> float:
        return self._store.corpus_weight

    @property
    def min_prob(self) -> float:
        return self._store.min_prob

    @property
    def vocab_size(self) -> int | None:
        return self._store.vocab_size

    def __reduce__(
        self,
    ) -> tuple[Any, tuple[bytes, str, int, list[tuple[int, int]], tuple[Any, ...] | None, int]]:
        # A module-level reconstructor: a restricted Unpickler.find_class that allows
        # ("tasc_rs.drafter", "restore_drafter") needs nothing else (no builtins.getattr).
        # The settings travel with it; the learned responses do not.
        return (
            restore_drafter,
            (
                self.to_bytes(),
                self.mixing,
                self.online_capacity,
                self.token_aliases,
                # plain lists, so that a restricted unpickler needs no class but restore_drafter
                None if self._respelling is None else tuple(self._respelling),
                self.neighbours,
            ),
        )

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"NgramDrafter(n_max={self.n_max}, min_count={self.min_count}, "
            f"corpus_weight={self.corpus_weight}, min_prob={self.min_prob}, "
            f"corpus_tokens={s['corpus_tokens']}, bytes={s['bytes']})"
        )


def restore_drafter(
    data: bytes,
    mixing: str | None = None,
    online_capacity: int | None = None,
    token_aliases: Iterable[tuple[int, int]] | None = None,
    respelling: tuple[Any, ...] | None = None,
    neighbours: int | None = None,
) -> NgramDrafter:
    """Rebuilds a drafter from :meth:`NgramDrafter.to_bytes` output and the settings not saved
    in it (default: the tuned preset's): what unpickling calls.

    To unpickle drafters with a restricted ``pickle.Unpickler``, allow exactly
    ``("tasc_rs.drafter", "restore_drafter")`` in its ``find_class``.

    Raises:
        DrafterFileError: ``data`` is not a valid drafter.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DtypeError(f"restore_drafter expects bytes, got {type(data).__name__}")
    drafter = NgramDrafter.from_bytes(bytes(data), mixing=mixing, online_capacity=online_capacity)
    if token_aliases:
        drafter.token_aliases = token_aliases
    if respelling is not None:
        drafter.respelling = respelling  # type: ignore[assignment]  # checked by the setter
    if neighbours is not None:
        drafter.neighbours = neighbours
    return drafter
