"""The background saver behind ``Learner.autosave``: learned state kept across restarts."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Protocol

from tasc_rs.errors import InvalidConfigError, TascError


class Learner(Protocol):
    """What the saver needs of a drafter (``Learner``)."""

    def online_stats(self) -> dict[str, int]: ...
    def save_learned(self, path: str | os.PathLike[str]) -> None: ...
    def load_learned(self, path: str | os.PathLike[str]) -> None: ...


_log = logging.getLogger("tasc_rs")
#: How often the thread looks at the drafter's learned-token count (seconds).
_POLL = 0.5


class Autosave:
    """Loads ``path`` into ``drafter`` (an ``NgramDrafter``) once, then saves it there every
    ``every_tokens`` learned tokens or ``every_seconds`` (when something was learned), and at
    exit."""

    def __init__(
        self,
        drafter: Learner,
        path: str | os.PathLike[str],
        every_tokens: int,
        every_seconds: float,
    ) -> None:
        if isinstance(every_tokens, bool) or not isinstance(every_tokens, int) or every_tokens < 1:
            raise InvalidConfigError(f"every_tokens must be an int >= 1, got {every_tokens!r}")
        if (
            isinstance(every_seconds, bool)
            or not isinstance(every_seconds, (int, float))
            or not every_seconds > 0
        ):
            raise InvalidConfigError(f"every_seconds must be a number > 0, got {every_seconds!r}")
        self.path = Path(os.fspath(path))
        self.every_tokens, self.every_seconds = every_tokens, float(every_seconds)
        self._drafter = weakref.ref(drafter)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        if self.path.exists():
            try:
                drafter.load_learned(self.path)
                _log.info("tasc_rs: loaded the learned state in %s", self.path)
            except TascError as e:
                _log.warning("tasc_rs: ignoring the learned state in %s: %s", self.path, e)
        self._saved = self._learned(drafter)
        self._thread = threading.Thread(target=self._run, name="tasc-autosave", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    @staticmethod
    def _learned(drafter: Learner) -> int:
        return int(drafter.online_stats()["learned_tokens"])

    def save_now(self) -> bool:
        """Saves if the drafter learned anything since the last save; True if it saved."""
        drafter = self._drafter()
        if drafter is None:
            return False
        with self._lock:
            learned = self._learned(drafter)
            if learned == self._saved:
                return False
            try:
                drafter.save_learned(self.path)
            except TascError as e:
                _log.warning("tasc_rs: cannot save the learned state to %s: %s", self.path, e)
                return False
            self._saved = learned
            return True

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(_POLL):
            drafter = self._drafter()
            if drafter is None:
                return
            new = self._learned(drafter) - self._saved
            del drafter
            due = time.monotonic() - last >= self.every_seconds
            if new >= self.every_tokens or (new > 0 and due):
                self.save_now()
                last = time.monotonic()

    def stop(self, save: bool = True) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        atexit.unregister(self._at_exit)
        if save:
            self.save_now()

    def _at_exit(self) -> None:
        self._stop.set()
        self.save_now()
