"""One drafter for several tasks: a task store per task, and each request routed to its task.

A service often serves several tasks from one model. :class:`MultiTaskDrafter` keeps one
:class:`~tasc_rs.NgramDrafter` per task (each with its own store, copy pointer, neighbours and
online learning) and a :class:`~tasc_rs._core.TaskRouter` over their training requests: a
request's task is the one its most similar past requests belong to (``rust/router.rs``), or the
one named with ``session(prompt, task=...)``. A request like none of them drafts from its
context alone rather than from a wrong task's store. Saved as one file (:meth:`save`).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tasc_rs._core import DraftSession, TaskRouter
from tasc_rs.drafter import DEFAULT_PRESET, NgramDrafter, TokenIds
from tasc_rs.errors import DrafterFileError, DtypeError, InvalidInputError

#: First bytes of a multi-task drafter file (a single drafter's start ``TASCNGR``).
MAGIC = b"TASCMULT"
#: Version of the multi-task container this build writes and reads.
MULTI_VERSION = 1
_MAX_NAME = 256


class MultiTaskDrafter:
    """Several tasks' drafters and the router that picks a request's task.

    Example:
        >>> m = MultiTaskDrafter({"slurp": slurp, "sql": sql})  # doctest: +SKIP
        >>> m.route(prompt_ids)  # doctest: +SKIP
        'sql'
        >>> s = m.session(prompt_ids)  # that task's session (or context only)  # doctest: +SKIP
        >>> s = m.session(prompt_ids, task="slurp")  # named  # doctest: +SKIP
    """

    __slots__ = ("_context_only", "_drafters", "_router")

    def __init__(self, drafters: Mapping[str, NgramDrafter]) -> None:
        """Raises:
        InvalidInputError: no drafters, a name that is not a non-empty string of at most 256
            bytes, or drafters of different vocabularies.
        DtypeError: a value that is not an ``NgramDrafter``.
        """
        if not isinstance(drafters, Mapping) or not drafters:
            raise InvalidInputError("MultiTaskDrafter needs a mapping of task name -> drafter")
        for name, d in drafters.items():
            if not isinstance(name, str) or not name or len(name.encode()) > _MAX_NAME:
                raise InvalidInputError(
                    f"task names must be non-empty strings of at most {_MAX_NAME} bytes, "
                    f"got {name!r}"
                )
            if not isinstance(d, NgramDrafter):
                raise DtypeError(f"task {name!r}: expected an NgramDrafter, got {type(d).__name__}")
        vocab = {d.vocab_size for d in drafters.values()}
        if len(vocab) > 1:
            raise InvalidInputError(
                f"the tasks' drafters have different vocabularies ({sorted(map(str, vocab))}): "
                "build them with one tokenizer"
            )
        self._drafters = dict(drafters)
        self._router = TaskRouter.from_stores([d._store for d in self._drafters.values()])
        self._context_only: NgramDrafter | None = None

    @property
    def tasks(self) -> list[str]:
        """The task names, in the order they were given."""
        return list(self._drafters)

    def __getitem__(self, task: str) -> NgramDrafter:
        """The drafter of ``task``.

        Raises:
            InvalidInputError: an unknown task.
        """
        try:
            return self._drafters[task]
        except (KeyError, TypeError):
            raise InvalidInputError(
                f"unknown task {task!r}; tasks: {', '.join(self._drafters)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._drafters)

    def __len__(self) -> int:
        return len(self._drafters)

    def route(self, prompt_ids: TokenIds) -> str | None:
        """The task of a prompt: the one its most similar training requests belong to, or
        ``None`` when it resembles none of them (best similarity under
        ``TaskRouter.min_score``). A task whose drafter was built from answers alone (no
        requests) is never chosen: name it in :meth:`session`."""
        task, _, _ = self._router.route(prompt_ids)
        return None if task is None else self.tasks[task]

    def session(self, prompt_ids: TokenIds, task: str | None = None) -> DraftSession:
        """A drafting session for ``prompt_ids`` with ``task``'s drafter (default: the routed
        task's; a prompt like no task's requests drafts from its context alone).

        Raises:
            InvalidInputError: an unknown task, or bad prompt ids.
        """
        name = self.route(prompt_ids) if task is None else task
        if name is None:
            return self._context_drafter().session(prompt_ids)
        return self[name].session(prompt_ids)

    def _context_drafter(self) -> NgramDrafter:
        """A drafter with no task: every draft comes from the request's own context."""
        if self._context_only is None:
            first = next(iter(self._drafters.values()))
            d = NgramDrafter.from_corpus(
                [[0]],
                n_max=first.n_max,
                min_count=1,
                corpus_weight=0.0,
                vocab_size=first.vocab_size,
                online_capacity=0,
            )
            d.token_aliases = first.token_aliases
            if first.respelling is not None:
                d.respelling = first.respelling
            self._context_only = d
        return self._context_only

    def to_bytes(self) -> bytes:
        """The multi-task file: each task's name and drafter file (see :meth:`save`)."""
        parts = [MAGIC, struct.pack("<II", MULTI_VERSION, len(self._drafters))]
        for name, d in self._drafters.items():
            raw, data = name.encode(), d.to_bytes()
            parts += [struct.pack("<I", len(raw)), raw, struct.pack("<Q", len(data)), data]
        body = b"".join(parts)
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(
        cls, data: bytes, *, preset: str = DEFAULT_PRESET, **settings: Any
    ) -> MultiTaskDrafter:
        """Inverse of :meth:`to_bytes`; each drafter as ``NgramDrafter.from_bytes`` loads it
        (``preset`` and its keyword settings).

        Raises:
            DrafterFileError: not a multi-task file, or a damaged one.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DtypeError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if data[: len(MAGIC)] != MAGIC:
            raise DrafterFileError("not a multi-task drafter file (bad magic)")
        if len(data) < len(MAGIC) + 12:
            raise DrafterFileError("multi-task drafter file truncated")
        body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
        if zlib.crc32(body) != crc:
            raise DrafterFileError("multi-task drafter file damaged (checksum mismatch)")
        version, count = struct.unpack_from("<II", body, len(MAGIC))
        if version != MULTI_VERSION:
            raise DrafterFileError(
                f"unsupported multi-task file version {version}; this build reads {MULTI_VERSION}"
            )
        at, drafters = len(MAGIC) + 8, {}
        for i in range(count):
            try:
                (n,) = struct.unpack_from("<I", body, at)
                if n == 0 or n > _MAX_NAME:
                    raise DrafterFileError(f"a name of {n} bytes")
                name = body[at + 4 : at + 4 + n].decode()
                at += 4 + n
                (size,) = struct.unpack_from("<Q", body, at)
                at += 8
                if at + size > len(body) or name in drafters:
                    raise DrafterFileError(f"{name!r}: bad size or a repeated name")
                drafters[name] = NgramDrafter.from_bytes(
                    body[at : at + size], preset=preset, **settings
                )
                at += size
            except (struct.error, UnicodeDecodeError, DrafterFileError) as e:
                raise DrafterFileError(f"multi-task drafter file, task {i}: {e}") from None
        if at != len(body) or not drafters:
            raise DrafterFileError("multi-task drafter file damaged (trailing bytes or no task)")
        return cls(drafters)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes every task's drafter and name to one file, atomically (a temporary file in
        the same directory, synced, renamed over ``path``). Settings that a drafter file does
        not hold (online learning, aliases, respelling) are not saved.

        Raises:
            DrafterFileError: ``path`` names something other than a regular file, or the
                write fails.
        """
        target = Path(os.fspath(path))
        if target.exists() and not target.is_file():
            raise DrafterFileError(f"{target}: not a regular file; refusing to replace it")
        tmp = target.with_name(f".{target.name[:200]}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(self.to_bytes())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise DrafterFileError(f"{target}: cannot write: {e.strerror or e}") from None

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, preset: str = DEFAULT_PRESET, **settings: Any
    ) -> MultiTaskDrafter:
        """Reads a file written by :meth:`save` (see :meth:`from_bytes`).

        Raises:
            DrafterFileError: unreadable, not a multi-task file, or damaged.
        """
        try:
            data = Path(os.fspath(path)).read_bytes()
        except OSError as e:
            raise DrafterFileError(f"{os.fspath(path)}: cannot read: {e.strerror or e}") from None
        return cls.from_bytes(data, preset=preset, **settings)

    def __repr__(self) -> str:
        return f"MultiTaskDrafter(tasks={self.tasks}, requests={len(self._router)})"
