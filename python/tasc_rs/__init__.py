"""tasc-rs: Task-Adaptive Sequence Compression for fast small language models.

The core (this module) needs only numpy: :class:`NgramDrafter` builds a task n-gram store in Rust
and proposes speculative-decoding drafts in microseconds. The Hugging Face layer
(``tasc_rs.hf``, install ``tasc-rs[hf]``) runs lossless speculative generation with it.

Example:
    >>> from tasc_rs import NgramDrafter
    >>> drafter = NgramDrafter.from_corpus([[1, 2, 3, 4]] * 5)
    >>> drafter.session([9, 1, 2]).propose(2)[0].tolist()
    [3, 4]
"""

from tasc_rs._core import (
    FORMAT_VERSION,
    MAX_K,
    MAX_WIDTH,
    BatchProposer,
    CorpusBuilder,
    DraftSession,
    NgramStore,
    TaskRouter,
    __version__,
)
from tasc_rs.aliases import Respelling, bpe_respelling, space_aliases
from tasc_rs.drafter import NgramDrafter, TokenIds
from tasc_rs.errors import (
    ArgumentTypeError,
    DrafterFileError,
    DtypeError,
    InvalidConfigError,
    InvalidInputError,
    TascError,
    TascIOError,
    UnsupportedModelError,
)
from tasc_rs.multitask import MultiTaskDrafter

__all__ = [
    "FORMAT_VERSION",
    "MAX_K",
    "MAX_WIDTH",
    "ArgumentTypeError",
    "BatchProposer",
    "CorpusBuilder",
    "DraftSession",
    "DrafterFileError",
    "DtypeError",
    "InvalidConfigError",
    "InvalidInputError",
    "MultiTaskDrafter",
    "NgramDrafter",
    "NgramStore",
    "Respelling",
    "TascError",
    "TascIOError",
    "TaskRouter",
    "TokenIds",
    "UnsupportedModelError",
    "__version__",
    "bpe_respelling",
    "space_aliases",
]
