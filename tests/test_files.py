"""What a service touches on disk: special files, links, modes, pickles (issue 15)."""

from __future__ import annotations

import io
import os
import pickle
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tasc_rs import NgramDrafter, TascIOError


def drafter() -> NgramDrafter:
    return NgramDrafter.from_corpus([[1, 2, 3, 4]] * 5)


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null", "/"])
def test_special_files_are_refused_at_once(path: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    t = time.monotonic()
    with pytest.raises(TascIOError, match="not a regular file"):
        NgramDrafter.load(path)
    assert time.monotonic() - t < 5


def test_a_fifo_without_writer_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.tasc"
    os.mkfifo(fifo)
    outcome: list[Any] = []

    def load() -> None:
        try:
            NgramDrafter.load(fifo)
        except TascIOError as e:
            outcome.append(e)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(timeout=10)
    assert not t.is_alive(), "load blocked on a FIFO"
    assert outcome and "not a regular file" in str(outcome[0])


def test_save_follows_links_and_keeps_modes(tmp_path: Path) -> None:
    target = tmp_path / "real.tasc"
    drafter().save(target)
    target.chmod(0o600)
    link = tmp_path / "link.tasc"
    link.symlink_to(target.name)
    bigger = NgramDrafter.from_corpus([[1, 2, 3, 4, 5, 6]] * 5)
    bigger.save(link)
    assert link.is_symlink(), "the link stays a link"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600, "the file keeps its mode"
    assert NgramDrafter.load(target).stats() == bigger.stats()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    dangling = tmp_path / "dangling.tasc"
    dangling.symlink_to("created.tasc")
    drafter().save(dangling)
    assert dangling.is_symlink() and (tmp_path / "created.tasc").is_file()


class OnlyTasc(pickle.Unpickler):
    """A restricted unpickler that allows the documented reconstructor and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("tasc_rs.drafter", "restore_drafter"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed")


def test_pickles_need_only_the_tasc_reconstructor() -> None:
    d = drafter()
    for protocol in range(3, pickle.HIGHEST_PROTOCOL + 1):  # 2 pickles bytes via _codecs
        data = pickle.dumps(d, protocol=protocol)
        back = OnlyTasc(io.BytesIO(data)).load()
        assert back.to_bytes() == d.to_bytes()
    # what a crafted pickle would need is refused by that allow-list
    evil = b"cbuiltins\ngetattr\n(cos\nsystem\n)R."
    with pytest.raises(pickle.UnpicklingError):
        OnlyTasc(io.BytesIO(evil)).load()
