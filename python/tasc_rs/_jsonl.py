"""Reading JSONL task files with errors a user can act on: every problem (not UTF-8, not JSON,
nested too deeply, a string with an unpaired surrogate) is an ``InvalidInputError`` that names
the file and line, never a bare ``UnicodeDecodeError`` or ``RecursionError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasc_rs.errors import InvalidInputError


def jsonl_values(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` for each non-blank line of a JSONL file.

    Raises:
        InvalidInputError: a line is not UTF-8 or not JSON.
        TascIOError/OSError: the file cannot be opened.
    """
    with Path(path).open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInputError(
                    f"{path}:{lineno}: not UTF-8 text (byte {raw[exc.start]:#04x} at column "
                    f"{exc.start + 1}); re-encode the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
            except RecursionError:
                raise InvalidInputError(f"{path}:{lineno}: JSON nested too deeply") from None


def text_field(path: str | Path, lineno: int, row: Any, field: str) -> str:
    """``row[field]`` as a string that encodes to UTF-8 (no unpaired surrogates).

    Raises:
        InvalidInputError: ``row`` is not an object with a string ``field``.
    """
    value = row.get(field) if isinstance(row, dict) else None
    if not isinstance(value, str):
        raise InvalidInputError(f"{path}:{lineno}: expected an object with a string {field!r}")
    return checked_text(value, f"{path}:{lineno}: {field!r}")


def checked_text(value: str, where: str) -> str:
    """``value`` unchanged if it encodes to UTF-8, else an ``InvalidInputError`` at ``where``."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{where} holds an unpaired surrogate ({value[exc.start]!a}), which is not text"
        ) from None
    return value
