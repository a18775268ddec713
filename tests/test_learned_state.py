"""What a drafter learns while serving survives restarts: saved atomically, loaded only into
the drafter it was learned with, never half-written by a killed process."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasc_rs import DrafterFileError, NgramDrafter

CORPUS = [[1, 2, 3, 4, 5]] * 5
REQUESTS = [[9, 8, 10 + i] for i in range(6)]
ANSWERS = [[1, 2, 3, 4, 5]] * 6


def drafter() -> NgramDrafter:
    return NgramDrafter.from_pairs(REQUESTS, ANSWERS, vocab_size=200, min_count=1)


def serve(d: NgramDrafter, n: int) -> None:
    """``n`` finished requests, each answered with a response the corpus never held."""
    for i in range(n):
        s = d.session([9, 8, 100 + i])
        s.extend([1, 2, 60 + i % 3, 70, 71])
        s.finish()


def test_learned_state_round_trips_into_a_fresh_drafter(tmp_path: Path) -> None:
    d = drafter()
    serve(d, 5)
    path = tmp_path / "learned.bin"
    d.save_learned(path)
    back = NgramDrafter.from_bytes(d.to_bytes())
    assert back.online_stats()["tokens"] == 0
    back.load_learned(path)
    stats = {k: v for k, v in d.online_stats().items() if k != "learned"}
    assert {k: v for k, v in back.online_stats().items() if k != "learned"} | {
        "learned_tokens": stats["learned_tokens"]
    } == stats
    for prompt in ([9, 8, 150], [7, 1, 2]):
        want = d.session(prompt).propose(6, min_prob=0.0)[0].tolist()
        assert back.session(prompt).propose(6, min_prob=0.0)[0].tolist() == want
    assert back.learned_state() == d.learned_state()
    # restoring replaces: the learned state is not added twice
    back.load_learned(path)
    assert back.online_stats()["tokens"] == d.online_stats()["tokens"]


def test_foreign_and_damaged_states_are_refused_and_change_nothing(tmp_path: Path) -> None:
    d = drafter()
    serve(d, 3)
    path = tmp_path / "learned.bin"
    d.save_learned(path)
    other = NgramDrafter.from_corpus(CORPUS, vocab_size=200, min_count=1)
    with pytest.raises(DrafterFileError, match="another drafter"):
        other.load_learned(path)
    data = path.read_bytes()
    fresh = drafter()
    serve(fresh, 1)
    before = fresh.online_stats()
    for bad in (data[:-3], data[:30] + bytes([data[30] ^ 4]) + data[31:], b"TASCNGR\0" + data[8:]):
        path.write_bytes(bad)
        with pytest.raises(DrafterFileError):
            fresh.load_learned(path)
        with pytest.raises(DrafterFileError):
            fresh.restore_learned(bad)
    assert fresh.online_stats() == before
    with pytest.raises(DrafterFileError):
        fresh.restore_learned(drafter().to_bytes())


def test_autosave_loads_saves_and_survives_a_bad_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "learned.bin"
    d = drafter()
    d.autosave(path, every_tokens=1, every_seconds=0.1)
    serve(d, 4)
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    d.stop_autosave()
    assert path.exists()
    again = drafter()
    again.autosave(path)
    assert again.online_stats()["tokens"] == d.online_stats()["tokens"] > 0
    again.stop_autosave(save=False)
    path.write_bytes(b"TASCLRN\0garbage")
    fresh = drafter()
    with caplog.at_level(logging.WARNING, logger="tasc_rs"):
        fresh.autosave(path)
    assert "ignoring the learned state" in caplog.text
    assert fresh.online_stats()["tokens"] == 0
    fresh.stop_autosave(save=False)
    with pytest.raises(Exception, match="every_tokens"):
        fresh.autosave(path, every_tokens=0)


_WRITER = """
import sys
from tasc_rs import NgramDrafter
d = NgramDrafter.from_bytes(open(sys.argv[1], "rb").read())
for i in range(10**6):
    s = d.session([9, 8, 100])
    s.extend([1] * (1 + i % 7) + [2])  # response i has 2 + i % 7 tokens
    s.finish()
    d.save_learned(sys.argv[2])
"""


def test_a_process_killed_while_saving_leaves_a_whole_state(tmp_path: Path) -> None:
    d = drafter()
    src, path = tmp_path / "drafter.tasc", tmp_path / "learned.bin"
    d.save(src)
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(src), str(path)])
        time.sleep(0.6 + 0.15 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        back = NgramDrafter.load(src)
        back.load_learned(path)  # never half-written
        stats = back.online_stats()
        k = stats["responses"]
        assert k >= 1
        # the first k responses of the writer, whole
        assert stats["tokens"] == sum(2 + i % 7 for i in range(k))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= 1  # at most the killed save's own temporary file
