"""Drafter files read in place from a memory mapping (``NgramDrafter.load(mmap=True)``,
issue 27): the same drafts as a loaded drafter, one copy of the trie for every process that
maps the file, and a mapped drafter unharmed by saves over its file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tasc_rs import ArgumentTypeError, NgramDrafter


def pairs(n: int, seed: int) -> tuple[list[list[int]], list[list[int]]]:
    """(request, answer) pairs of a slot-filling shape: answers copy a name from the request."""
    rng = np.random.default_rng(seed)
    requests, answers = [], []
    for _ in range(n):
        name = rng.integers(100, 400, size=int(rng.integers(1, 4))).tolist()
        verb = int(rng.integers(10, 20))
        requests.append([1, verb, 2, *name, 3])
        answers.append([40, verb + 30, 41, *name, 42, int(rng.integers(50, 60)), 0])
    return requests, answers


def test_a_mapped_drafter_drafts_as_a_loaded_one(tmp_path: Path) -> None:
    requests, answers = pairs(300, seed=1)
    built = NgramDrafter.from_pairs(requests, answers, vocab_size=500, min_count=1)
    path = tmp_path / "task.tasc"
    built.save(path)
    loaded, mapped = NgramDrafter.load(path), NgramDrafter.load(path, mmap=True)
    assert mapped.stats()["mapped"] and not loaded.stats()["mapped"]
    assert {k: v for k, v in mapped.stats().items() if k != "mapped"} == {
        k: v for k, v in loaded.stats().items() if k != "mapped"
    }
    assert mapped.to_bytes() == loaded.to_bytes() == built.to_bytes()
    new_requests, new_answers = pairs(40, seed=2)
    drafted = 0
    for request, answer in zip(new_requests, new_answers, strict=True):
        sessions = [d.session(request) for d in (loaded, mapped)]
        for i in range(len(answer)):
            chains = [s.propose(8) for s in sessions]
            assert np.array_equal(chains[0], chains[1]), (request, answer[:i])
            drafted += len(chains[0])
            for s in sessions:
                s.extend([answer[i]])
        for s in sessions:
            s.finish()
    assert drafted > 0
    # what the mapped drafter learned restores into the loaded one: one drafter, two readings
    loaded.restore_learned(mapped.learned_state())
    assert loaded.online_stats()["responses"] == mapped.online_stats()["responses"] > 0


def test_a_save_over_the_mapped_file_leaves_the_mapped_drafter_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "task.tasc"
    first = NgramDrafter.from_corpus([[1, 2, 3, 4, 5]] * 4, vocab_size=50, min_count=1)
    first.save(path)
    mapped = NgramDrafter.load(path, mmap=True)
    NgramDrafter.from_corpus([[1, 2, 9, 9, 9, 8]] * 4, vocab_size=50, min_count=1).save(path)
    assert mapped.to_bytes() == first.to_bytes()
    assert mapped.propose([1, 2], k=3, corpus_weight=1.0)[0].tolist() == [3, 4, 5]
    again = NgramDrafter.load(path, mmap=True)
    assert again.propose([1, 2], k=3, corpus_weight=1.0)[0].tolist() == [9, 9, 9]


def test_mmap_takes_a_bool() -> None:
    with pytest.raises(ArgumentTypeError, match="mmap must be a bool"):
        NgramDrafter.load("x.tasc", mmap=1)  # type: ignore[arg-type]


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tasc_rs import NgramDrafter

    def anon_kb():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])

    before = anon_kb()
    d = NgramDrafter.load(sys.argv[1], mmap=sys.argv[2] == "1")
    d.propose([1, 2, 3], k=4)
    maps = Path("/proc/self/maps").read_text()
    print(anon_kb() - before, int(sys.argv[1] in maps))
    """
)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_mapped_drafter_keeps_its_trie_out_of_the_process_heap(tmp_path: Path) -> None:
    """The trie of a mapped drafter is the file's pages (shared between processes), not the
    process's own memory: loading it adds little anonymous memory, loading it whole adds its
    size."""
    rng = np.random.default_rng(0)
    corpus = [rng.integers(0, 30_000, size=200).tolist() for _ in range(2_000)]
    path = tmp_path / "big.tasc"
    NgramDrafter.from_corpus(corpus, vocab_size=30_000, min_count=1).save(path)
    size_kb = path.stat().st_size // 1024
    assert size_kb > 4_000

    def child(mmap: bool) -> tuple[int, bool]:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), "1" if mmap else "0"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return int(out[0]), out[1] == "1"

    (whole_kb, whole_maps), (mapped_kb, mapped_maps) = child(False), child(True)
    assert mapped_maps and not whole_maps
    assert whole_kb > size_kb // 2, (whole_kb, size_kb)
    assert mapped_kb < size_kb // 10, (mapped_kb, size_kb)
