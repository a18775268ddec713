"""Similar past requests: a drafter built from (request, answer) pairs drafts, at a branch of the
task, what the answers of the requests most like the live one say; the served model's finished
(prompt, response) pairs join them online; saved with the drafter (file format 3)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tasc_rs import ArgumentTypeError, InvalidConfigError, NgramDrafter

# Requests "1 <kind word> <own token>": kind 10 (8 pairs) answers 50 60 70 71, kind 11 (4 pairs)
# answers 50 61 70 71. After 50 the task store says 60; a kind-11 request's neighbours say 61.
REQUESTS = [[1, 10, 100 + i] for i in range(8)] + [[1, 11, 120 + i] for i in range(4)]
ANSWERS = [[50, 60, 70, 71]] * 8 + [[50, 61, 70, 71]] * 4
KIND_11 = [1, 11, 199]


def paired(**kw: Any) -> NgramDrafter:
    return NgramDrafter.from_pairs(REQUESTS, ANSWERS, vocab_size=200, min_count=1, **kw)


def after_50(d: NgramDrafter, prompt: list[int]) -> int:
    s = d.session(prompt)
    s.extend([50])
    return int(s.propose(1, min_prob=0.0)[0][0])


def test_the_requests_neighbours_decide_the_branch() -> None:
    d = paired()
    assert d.neighbours == 8 and d.stats()["pairs"] == 12
    assert after_50(d, KIND_11) == 61
    assert after_50(d, [1, 10, 198]) == 60
    d.neighbours = 0
    assert after_50(d, KIND_11) == 60
    # answers alone keep no pairs: the setting changes nothing there
    plain = NgramDrafter.from_corpus(ANSWERS, vocab_size=200, min_count=1)
    assert plain.stats()["pairs"] == 0
    assert after_50(plain, KIND_11) == 60


def test_a_batch_proposer_drafts_from_neighbours_too() -> None:
    d = paired()
    p = d.batch_proposer(min_prob=0.0)
    buf = np.zeros((2, 16), dtype=np.int32)
    rows = [[*KIND_11, 50], [1, 10, 198, 50]]
    for i, row in enumerate(rows):
        buf[i, : len(row)] = row
    drafts = p.propose([[50], [50]], np.array([4, 4], dtype=np.int32), buf, 1)
    assert [dr[:1] for dr in drafts] == [[61], [60]]


def test_finished_pairs_are_learned_bounded_and_forgotten() -> None:
    d = paired()
    d.online_capacity = 1000
    assert d.online_stats()["pairs"] == 0
    # a kind no training request has (word 12): the served model answers it with 63
    assert after_50(d, [1, 12, 199]) == 60
    for i in range(6):
        kind = 12 if i % 2 else 10
        s = d.session([1, kind, 150 + i])
        s.extend([50, 63 if kind == 12 else 60, 70, 71])
        s.finish()
    assert d.online_stats()["pairs"] == 6
    assert after_50(d, [1, 12, 199]) == 63
    # bounded by online_capacity (pairs of 3 request + 3 lead + 4 response tokens)
    d.online_capacity = 25
    assert d.online_stats()["pairs"] == 2
    d.forget()
    assert d.online_stats()["pairs"] == 0
    # online learning off: nothing kept
    d.online_capacity = 0
    s = d.session(KIND_11)
    s.extend([50, 61])
    s.finish()
    assert d.online_stats()["pairs"] == 0


def test_saved_loaded_and_pickled_with_the_pairs(tmp_path: Path) -> None:
    d = paired()
    d.neighbours = 3
    path = tmp_path / "pairs.tasc"
    d.save(path)
    assert int.from_bytes(path.read_bytes()[8:12], "little") == 4
    back = NgramDrafter.load(path)
    assert back.stats()["pairs"] == 12 and back.neighbours == 8  # the preset's: not saved
    assert after_50(back, KIND_11) == 61
    again = pickle.loads(pickle.dumps(d))
    assert again.neighbours == 3 and after_50(again, KIND_11) == 61
    assert NgramDrafter.load(path, preset="paper").neighbours == 0


@pytest.mark.parametrize("bad", [-1, 257, 10**30])
def test_out_of_range_settings_are_refused(bad: int) -> None:
    d = paired()
    with pytest.raises(InvalidConfigError, match="neighbours"):
        d.neighbours = bad
    assert d.neighbours == 8


@pytest.mark.parametrize("bad", ["8", 2.0, True, None])
def test_wrong_types_are_refused(bad: Any) -> None:
    with pytest.raises(ArgumentTypeError, match="neighbours"):
        paired().neighbours = bad


def test_trees_take_the_vote_and_width_one_is_the_chain() -> None:
    s = paired().session(KIND_11)
    s.extend([50])
    chain = s.propose(3, min_prob=0.0)[0].tolist()
    assert chain[0] == 61
    ids, _, _ = s.propose_tree(3, width=1, min_prob=0.0)
    assert ids.tolist() == chain
    ids, parents, _ = s.propose_tree(6, width=2, min_prob=0.0)
    assert ids.tolist()[0] == 61 and parents.tolist()[0] == -1
    assert 60 in ids.tolist()  # the task store's branch is the second child
