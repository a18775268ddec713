"""Argument checks for the Python entry points, matching what the native module does: ints are
ints (never bools or floats), floats are real numbers (never bools), ranges are inclusive, and
every error is a ``TascError`` that names the argument.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
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


def str_arg(name: str, value: Any) -> str:
    """``value`` as a str."""
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{name} must be a str, got {type(value).__name__} {value!r}")
    return value


def bool_arg(name: str, value: Any) -> bool:
    """``value`` as a bool (never an int or a string)."""
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def pairs_arg(name: str, value: Any) -> list[tuple[int, int]]:
    """``value`` as a list of ``(int, int)`` pairs (ranges are the native module's to check)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ArgumentTypeError(
            f"{name} must be an iterable of (int, int) pairs, got {type(value).__name__}"
        )
    out = []
    for i, pair in enumerate(value):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Iterable):
            raise ArgumentTypeError(f"{name}[{i}] must be an (int, int) pair, got {pair!r}")
        items = list(pair)
        if len(items) != 2:
            raise ArgumentTypeError(f"{name}[{i}] must be an (int, int) pair, got {pair!r}")
        out.append((int_arg(f"{name}[{i}][0]", items[0]), int_arg(f"{name}[{i}][1]", items[1])))
    return out


def iterable_arg(name: str, value: Any) -> list[Any]:
    """``value``, an iterable that is not a string, as a list."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ArgumentTypeError(f"{name} must be an iterable, got {type(value).__name__}")
    return list(value)
