"""Type stubs for the native module tasc_rs._core (Rust, PyO3)."""

import os
from typing import Any, final

import numpy as np
import numpy.typing as npt

_Ids = Any  # a sequence of ints or a 1-D integer array
_Draft = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]

__all__ = [
    "FORMAT_VERSION",
    "MAX_K",
    "MAX_N",
    "CorpusBuilder",
    "DraftSession",
    "NgramStore",
    "__version__",
]

__version__: str
FORMAT_VERSION: int
MAX_N: int
MAX_K: int

@final
class CorpusBuilder:
    """Accumulates token sequences (4 bytes a token) for ``NgramStore.build``."""

    def __new__(cls, vocab_size: int | None = None) -> CorpusBuilder: ...
    def add(self, ids: _Ids) -> None: ...
    def add_flat(self, tokens: _Ids, offsets: _Ids) -> None: ...
    @property
    def num_sequences(self) -> int: ...
    @property
    def num_tokens(self) -> int: ...
    @property
    def vocab_size(self) -> int | None: ...
    def __len__(self) -> int: ...

@final
class DraftSession:
    """Per-request drafting state: the context index over the prompt and accepted tokens."""

    def extend(self, ids: _Ids) -> None: ...
    def propose(
        self, k: int, min_prob: float | None = None, corpus_weight: float | None = None
    ) -> _Draft: ...
    @property
    def min_prob(self) -> float: ...
    @min_prob.setter
    def min_prob(self, value: float) -> None: ...
    @property
    def corpus_weight(self) -> float: ...
    @corpus_weight.setter
    def corpus_weight(self, value: float) -> None: ...
    def tokens(self) -> npt.NDArray[np.int64]: ...
    def __len__(self) -> int: ...

@final
class NgramStore:
    """The immutable task n-gram store with its drafting defaults."""

    @staticmethod
    def build(
        corpus: CorpusBuilder,
        n_max: int = 4,
        min_count: int = 5,
        corpus_weight: float = 0.75,
        min_prob: float = 0.0,
    ) -> NgramStore: ...
    def session(self, prompt: _Ids) -> DraftSession: ...
    def propose(
        self,
        context: _Ids,
        k: int,
        min_prob: float | None = None,
        corpus_weight: float | None = None,
    ) -> _Draft: ...
    def save(self, path: str | os.PathLike[str]) -> None: ...
    @staticmethod
    def load(path: str | os.PathLike[str]) -> NgramStore: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> NgramStore: ...
    def stats(self) -> dict[str, Any]: ...
    @property
    def n_max(self) -> int: ...
    @property
    def min_count(self) -> int: ...
    @property
    def corpus_weight(self) -> float: ...
    @property
    def min_prob(self) -> float: ...
    @property
    def vocab_size(self) -> int | None: ...
