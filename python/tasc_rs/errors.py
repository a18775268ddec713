"""The tasc_rs exception hierarchy.

Every error tasc_rs raises on purpose is a :class:`TascError`. Errors caused by bad input also
subclass :class:`ValueError` (or :class:`TypeError` for wrong dtypes), and file-system errors
subclass :class:`OSError`, so existing ``except ValueError`` handlers keep working.

Example:
    >>> from tasc_rs import NgramDrafter, TascError
    >>> try:
    ...     NgramDrafter.from_corpus([[1, 2]], n_max=0)
    ... except TascError as e:
    ...     print(type(e).__name__)
    InvalidConfigError
"""

from __future__ import annotations

__all__ = [
    "ArgumentTypeError",
    "DrafterFileError",
    "DtypeError",
    "InvalidConfigError",
    "InvalidInputError",
    "TascError",
    "TascIOError",
    "UnsupportedModelError",
]


class TascError(Exception):
    """Base class of every error raised by tasc_rs."""


class InvalidConfigError(TascError, ValueError):
    """A setting is outside its allowed range (n_max, min_count, corpus_weight, min_prob, k...)."""


class ArgumentTypeError(InvalidConfigError, TypeError):
    """A setting of the wrong type: a bool or float where an int was expected, a string where a
    number was expected. The message names the argument."""


class InvalidInputError(TascError, ValueError):
    """Token ids or a corpus are invalid: negative or out-of-vocabulary ids, an empty corpus..."""


class DtypeError(InvalidInputError, TypeError):
    """Token ids of the wrong type: a float array, strings, nested lists where ids were expected."""


class DrafterFileError(TascError, ValueError):
    """A drafter file is truncated, corrupted, not a drafter file, or of an unsupported version."""


class TascIOError(TascError, OSError):
    """Reading or writing a file failed (missing file, permission, full disk)."""


class UnsupportedModelError(TascError):
    """A model cannot be used for speculative decoding (no KV cache, unknown architecture)."""
