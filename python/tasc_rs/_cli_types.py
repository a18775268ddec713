"""argparse value types for the ``tasc`` commands: every number checked for its range and every
input file for existence as the arguments are parsed, so a bad value is one ``tasc: error:``
line before any model loads, never a traceback after minutes of work.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
from collections.abc import Callable
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``tasc: error: <what> (see <cmd> --help)``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"tasc: error: {message} (see `{self.prog} --help`)\n")


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An int within ``[lo, hi]`` (either bound open when ``None``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{value} is out of range: {_range(lo, hi)}")
        return value

    parse.__name__ = "integer"
    return parse


def number(
    lo: float = -math.inf, hi: float = math.inf, *, open_lo: bool = False
) -> Callable[[str], float]:
    """A finite float within ``[lo, hi]`` (``(lo, hi]`` with ``open_lo``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        below = value <= lo if open_lo else value < lo
        if not math.isfinite(value) or below or value > hi:
            left = "(" if open_lo else "["
            raise argparse.ArgumentTypeError(f"{value} is out of range: {left}{lo}, {hi}]")
        return value

    parse.__name__ = "number"
    return parse


def _range(lo: int | None, hi: int | None) -> str:
    if hi is None:
        return f"must be >= {lo}"
    if lo is None:
        return f"must be <= {hi}"
    return f"allowed {lo}..{hi}"


def _path_argument(check: Callable[[str], str]) -> Callable[[str], str]:
    """``check`` with what the file system refuses (a name too long, a loop of links) reported
    as a bad argument: argparse turns only ``ArgumentTypeError`` into a usage error."""

    @functools.wraps(check)
    def checked(text: str) -> str:
        try:
            return check(text)
        except (OSError, ValueError) as e:
            shown = text if len(text) <= 80 else f"{text[:40]}...{text[-30:]} ({len(text)} chars)"
            reason = getattr(e, "strerror", None) or str(e)
            raise argparse.ArgumentTypeError(f"{shown}: {reason}") from None

    return checked


@_path_argument
def input_file(text: str) -> str:
    """A path to an existing, readable regular file."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: not a regular file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text}: not readable")
    return text


def task_file(text: str) -> tuple[str, str]:
    """``NAME=FILE``: a task's name and its JSONL corpus (an existing, readable file)."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=FILE")
    return name, input_file(path)


@_path_argument
def output_file(text: str) -> str:
    """A file path whose directory exists and is writable (checked before any work starts)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"{text}: not writable")
    return text


@_path_argument
def output_dir(text: str) -> str:
    """A directory to create: its parent must exist or be creatable, itself absent or empty."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        raise argparse.ArgumentTypeError(f"{text}: exists and is not empty; choose a new one")
    return text


@_path_argument
def model_ref(text: str) -> str:
    """A model directory, or a name the Hugging Face cache may hold (``org/name``).

    Something shaped like a path (absolute, ``./``, ``~``, more than one ``/``) must exist.
    """
    if Path(text).expanduser().exists():
        return str(Path(text).expanduser())
    looks_like_path = (
        text.startswith(("/", ".", "~")) or text.count("/") > 1 or text.endswith(os.sep)
    )
    if looks_like_path:
        raise argparse.ArgumentTypeError(f"{text}: no such directory")
    return text
