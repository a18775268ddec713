"""Argument checks for the Python entry points, matching what the native module does: ints are
ints (never bools or floats), floats are real numbers (never bools), ranges are inclusive, and
every error is a ``TascError`` that names the argument.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from tasc_rs.errors import ArgumentTypeError, InvalidConfigError


def int_arg(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int within ``[lo, hi]`` (either bound may be open)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    number: int = int(value)
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        allowed = f"{'' if lo is None else lo}..{'' if hi is None else hi}"
        raise InvalidConfigError(f"{name}={number} is out of range: allowed {allowed}")
    return number


def float_arg(name: str, value: Any, lo: float = -math.inf, hi: float = math.inf) -> float:
    """``value`` as a finite float within ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    number: float = float(value)
    if not (math.isfinite(number) and lo <= number <= hi):
        raise InvalidConfigError(f"{name}={number} is out of range: allowed [{lo}, {hi}]")
    return number
