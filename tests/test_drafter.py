"""Behaviour of the NgramDrafter API: shapes, dtypes, persistence and every documented error."""

from __future__ import annotations

import errno
import pickle

import numpy as np
import pytest

import tasc_rs
from tasc_rs import (
    DrafterFileError,
    DtypeError,
    InvalidConfigError,
    InvalidInputError,
    NgramDrafter,
    TascError,
    TascIOError,
)

CORPUS = [[5, 6, 7, 8, 2], [5, 6, 7, 9, 2], [5, 6, 7, 8, 2]] * 3


@pytest.fixture
def drafter() -> NgramDrafter:
    return NgramDrafter.from_corpus(CORPUS, min_count=2, vocab_size=16, preset="paper")


def test_proposes_the_task_chain_as_numpy(drafter: NgramDrafter) -> None:
    ids, probs = drafter.session([5]).propose(4)
    assert ids.dtype == np.int64 and probs.dtype == np.float64
    assert ids.tolist() == [6, 7, 8, 2]
    # 8 follows (6, 7) in 6 of 9 outputs; the context [5] alone says nothing about it.
    assert probs[2] == pytest.approx(0.75 * 6 / 9)
    assert ids.flags.owndata or ids.base is not None


def test_session_extend_changes_the_draft(drafter: NgramDrafter) -> None:
    s = drafter.session([5, 6, 7])
    s.extend([9])
    assert s.propose(1)[0].tolist() == [2]
    assert len(s) == 4
    assert s.tokens().tolist() == [5, 6, 7, 9]


def test_context_outweighs_corpus_when_weight_is_low(drafter: NgramDrafter) -> None:
    ctx = [5, 6, 7, 9, 2, 5, 6, 7, 9, 2, 5, 6, 7]
    assert drafter.propose(ctx, 1, corpus_weight=0.75)[0].tolist() == [8]
    assert drafter.propose(ctx, 1, corpus_weight=0.25)[0].tolist() == [9]


def test_min_prob_stops_early(drafter: NgramDrafter) -> None:
    ids, probs = drafter.propose([5], 4, min_prob=0.6)
    assert ids.tolist() == [6, 7]
    assert (probs >= 0.6).all()
    s = drafter.session([5])
    s.min_prob = 0.6
    assert s.propose(4)[0].tolist() == [6, 7]


def test_verify_cost_cuts_drafts_to_the_best_expected_value(drafter: NgramDrafter) -> None:
    s = drafter.session([5])
    full_ids, probs = s.propose(4)
    assert s.verify_cost is None
    # Each drafted token costs a fifth of a forward pass: a token is worth drafting only while
    # the chance that the whole prefix up to it is accepted pays for it.
    cost = 1.0 + 0.2 * np.arange(5)
    s.verify_cost = cost  # any float sequence, numpy included
    assert s.verify_cost == pytest.approx(cost.tolist())
    path = np.cumprod(probs)
    value = (1 + np.concatenate([[0.0], np.cumsum(path)])) / cost
    best = int(np.argmax(value))
    assert 0 < best < len(full_ids)  # this corpus makes the cut land inside the draft
    ids, cut_probs = s.propose(4)
    assert ids.tolist() == full_ids[:best].tolist()
    assert cut_probs.tolist() == probs[:best].tolist()
    s.verify_cost = [1.0]  # free verification keeps everything
    assert s.propose(4)[0].tolist() == full_ids.tolist()
    s.verify_cost = None
    assert s.propose(4)[0].tolist() == full_ids.tolist()


def test_trees_branch_where_the_task_splits(drafter: NgramDrafter) -> None:
    s = drafter.session([5, 6])
    ids, parents, probs = s.propose_tree(6, width=2)
    assert ids.dtype == np.int64 and parents.dtype == np.int64 and probs.dtype == np.float64
    assert len(ids) == len(parents) == len(probs) <= 6
    # after [5, 6, 7] the corpus continues with 8 (2/3) or 9 (1/3): both are drafted
    assert ids[0] == 7 and parents[0] == -1
    after_7 = {int(t) for t, p in zip(ids, parents, strict=True) if p == 0}
    assert after_7 == {8, 9}
    assert all(-1 <= p < i for i, p in enumerate(parents))
    # path probabilities never grow down the list (nodes are kept best first)
    paths: list[float] = []
    for p, q in zip(parents, probs, strict=True):
        paths.append((1.0 if p < 0 else paths[p]) * q)
    assert paths == sorted(paths, reverse=True)
    # width 1 is the chain, cut by the same verify cost
    chain_ids, chain_probs = s.propose(6)
    tree_ids, tree_parents, tree_probs = s.propose_tree(6, width=1)
    assert tree_ids.tolist() == chain_ids.tolist()
    assert tree_probs.tolist() == chain_probs.tolist()
    assert tree_parents.tolist() == list(range(-1, len(chain_ids) - 1))
    s.verify_cost = 1.0 + 0.2 * np.arange(7)
    assert s.propose_tree(6, width=1)[0].tolist() == s.propose(6)[0].tolist()
    assert len(s.propose_tree(6, width=2)[0]) < 6  # unlikely branches do not pay


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_nodes": 0}, InvalidConfigError),
        ({"max_nodes": 5, "width": 0}, InvalidConfigError),
        ({"max_nodes": 5, "width": tasc_rs.MAX_WIDTH + 1}, InvalidConfigError),
        ({"max_nodes": 5, "width": 2.5}, TypeError),
        ({"max_nodes": 5, "min_prob": 1.5}, InvalidConfigError),
    ],
)
def test_bad_tree_arguments(drafter: NgramDrafter, kwargs: dict, error: type) -> None:
    with pytest.raises(error, match=r"max_nodes|width|min_prob|k "):
        drafter.session([5]).propose_tree(**kwargs)


@pytest.mark.parametrize("bad", [[], [1.0, 0.0], [1.0, float("nan")], [1.0, -2.0], "abc"])
def test_bad_verify_cost_is_rejected_and_keeps_the_old_one(drafter: NgramDrafter, bad) -> None:
    s = drafter.session([5])
    s.verify_cost = [1.0, 1.1]
    with pytest.raises((InvalidConfigError, TypeError)):
        s.verify_cost = bad
    assert s.verify_cost == [1.0, 1.1]


def test_online_learning_drafts_from_finished_responses(drafter: NgramDrafter) -> None:
    response = [5, 11, 12, 13, 2]  # never seen in the corpus
    s = drafter.session([1])
    s.extend(response)
    assert s.finish() == 0  # online learning is off by default
    assert drafter.online_stats()["tokens"] == 0
    drafter.online_capacity = 100
    before = drafter.session([5, 11]).propose(3)[0].tolist()
    s = drafter.session([1])
    s.extend(response)
    assert s.finish() == 5 and s.finish() == 0  # a second finish learns nothing
    assert drafter.online_stats() == {
        "capacity": 100,
        "tokens": 5,
        "responses": 1,
        "learned": 1,
        "learned_tokens": 5,
        "pairs": 0,
        "pending": 0,
        "dropped": 0,
    }
    after = drafter.session([5, 11]).propose(3)[0].tolist()
    assert after == [12, 13, 2] != before
    assert drafter.propose([5, 11], 3)[0].tolist() == after  # stateless proposals too
    clone = pickle.loads(pickle.dumps(drafter))  # learned responses are not saved, settings are
    assert clone.online_capacity == 100 and clone.mixing == drafter.mixing
    assert clone.online_stats()["tokens"] == 0
    assert clone.session([5, 11]).propose(3)[0].tolist() == before
    drafter.forget()
    assert drafter.session([5, 11]).propose(3)[0].tolist() == before
    drafter.learn(np.array(response))
    assert drafter.online_stats()["responses"] == 1
    drafter.online_capacity = 0
    assert drafter.online_stats()["tokens"] == 0


def test_longer_match_mixing_prefers_the_longer_context() -> None:
    corpus = [[1, 2], [1, 2], [4, 1, 2]] * 3
    d = NgramDrafter.from_corpus(corpus, n_max=3, min_count=1, preset="paper")
    prompt = [3, 1, 9, 3, 1]  # (3, 1) -> 9 in the prompt: longer than the corpus's (1) -> 2
    assert d.session(prompt).propose(1)[0].tolist() == [2]
    d.mixing = "longer_match"
    s = d.session(prompt)
    assert s.mixing == "longer_match"
    ids, probs = s.propose(1)
    assert ids.tolist() == [9] and probs[0] == pytest.approx(0.75)
    with pytest.raises(InvalidConfigError):
        d.mixing = "longest"
    with pytest.raises(InvalidConfigError):
        s.mixing = "longest"
    assert s.mixing == "longer_match"


def test_bad_online_settings(drafter: NgramDrafter) -> None:
    for bad in (-1, 1.5, "10", True):
        with pytest.raises(InvalidConfigError, match="online_capacity"):
            drafter.online_capacity = bad
    drafter.online_capacity = 10
    with pytest.raises(InvalidInputError):
        drafter.learn([5, 99])  # outside vocab_size
    assert drafter.online_stats()["tokens"] == 0


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint32, np.uint16, np.int16, np.uint8])
def test_accepts_every_integer_dtype(drafter: NgramDrafter, dtype: type) -> None:
    ids, _ = drafter.propose(np.array([5, 6], dtype=dtype), 2)
    assert ids.tolist() == [7, 8]
    built = NgramDrafter.from_corpus(
        [np.array(s, dtype=dtype) for s in CORPUS], min_count=2, preset="paper"
    )
    assert built.stats() == NgramDrafter.from_corpus(CORPUS, min_count=2, preset="paper").stats()


def test_non_contiguous_arrays_are_read_correctly(drafter: NgramDrafter) -> None:
    ctx = np.array([5, 0, 6, 0], dtype=np.int64)[::2]
    assert drafter.propose(ctx, 1)[0].tolist() == [7]


def test_flat_corpus_equals_list_corpus() -> None:
    tokens = np.concatenate([np.array(s) for s in CORPUS])
    offsets = np.cumsum([0] + [len(s) for s in CORPUS])
    a = NgramDrafter.from_flat(tokens, offsets, min_count=2, preset="paper")
    b = NgramDrafter.from_corpus(iter(CORPUS), min_count=2, preset="paper")
    assert a.to_bytes() == b.to_bytes()


def test_stats_report_orders_and_memory(drafter: NgramDrafter) -> None:
    s = drafter.stats()
    assert s["corpus_tokens"] == 45 and s["sequences"] == 9
    assert s["ngrams"][0] == 6  # unigrams 5, 6, 7, 8, 9, 2
    assert len(s["ngrams"]) == 4 and len(s["contexts"]) == 4
    assert s["bytes"] > 0


def test_save_load_round_trip(drafter: NgramDrafter, tmp_path) -> None:
    path = tmp_path / "task.tasc"
    drafter.save(path)
    loaded = NgramDrafter.load(str(path))
    assert loaded.stats() == drafter.stats()
    for ctx in ([5], [5, 6, 7], [1, 2], []):
        a, b = drafter.propose(ctx, 5), loaded.propose(ctx, 5)
        assert a[0].tolist() == b[0].tolist() and a[1].tolist() == b[1].tolist()
    assert (loaded.vocab_size, loaded.min_count) == (16, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["task.tasc"]


def test_pickle_round_trip(drafter: NgramDrafter) -> None:
    clone = pickle.loads(pickle.dumps(drafter))
    assert clone.to_bytes() == drafter.to_bytes()


def test_corrupted_truncated_and_foreign_files(drafter: NgramDrafter, tmp_path) -> None:
    data = drafter.to_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "flipped": data[:40] + bytes([data[40] ^ 1]) + data[41:],
        "foreign": b"PK\x03\x04 not a drafter",
        "version": data[:8] + (99).to_bytes(4, "little") + data[12:],
        "empty": b"",
    }
    for name, blob in cases.items():
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(DrafterFileError):
            NgramDrafter.load(path)
    with pytest.raises(DrafterFileError, match="version 99"):
        NgramDrafter.from_bytes(cases["version"])
    with pytest.raises(TascIOError) as info:
        NgramDrafter.load(tmp_path / "missing.tasc")
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(tmp_path / "missing.tasc")


def test_failed_save_keeps_the_existing_file(drafter: NgramDrafter, tmp_path) -> None:
    path = tmp_path / "keep.tasc"
    drafter.save(path)
    before = path.read_bytes()
    with pytest.raises(TascIOError):
        drafter.save(tmp_path / "no-such-dir" / "x.tasc")
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_max": 0},
        {"n_max": 9},
        {"n_max": -1},
        {"min_count": 0},
        {"corpus_weight": 1.5},
        {"corpus_weight": -0.1},
        {"corpus_weight": float("nan")},
        {"min_prob": 2.0},
        {"vocab_size": 0},
        {"vocab_size": -5},
    ],
)
def test_bad_settings_raise_invalid_config(kwargs: dict) -> None:
    with pytest.raises(InvalidConfigError):
        NgramDrafter.from_corpus(CORPUS, **kwargs, preset="paper")


def test_bad_k_and_overrides(drafter: NgramDrafter) -> None:
    s = drafter.session([5])
    for k in (0, -1, 10**6):
        with pytest.raises(InvalidConfigError, match="k"):
            s.propose(k)
        with pytest.raises(InvalidConfigError):
            drafter.propose([5], k)
    with pytest.raises(InvalidConfigError):
        s.propose(2, corpus_weight=3.0)
    with pytest.raises(InvalidConfigError):
        s.min_prob = -1.0
    assert s.min_prob == 0.0


def test_bad_ids_are_reported_with_position(drafter: NgramDrafter) -> None:
    with pytest.raises(InvalidInputError, match=r"token id 16 at position 1 .*vocab_size 16"):
        drafter.session([5, 16])
    with pytest.raises(InvalidInputError, match="negative"):
        drafter.propose([-1], 2)
    with pytest.raises(InvalidInputError, match="corpus sequence 1"):
        NgramDrafter.from_corpus([[1, 2], [3, -4]], preset="paper")
    with pytest.raises(InvalidInputError):
        NgramDrafter.from_corpus([[1, 2**40]], preset="paper")
    with pytest.raises(InvalidInputError):
        NgramDrafter.from_corpus([[1, 99]], vocab_size=50, preset="paper")


def test_failed_extend_keeps_the_session(drafter: NgramDrafter) -> None:
    s = drafter.session([5, 6])
    before = s.propose(3)
    with pytest.raises(InvalidInputError):
        s.extend([7, 100])
    assert len(s) == 2
    after = s.propose(3)
    assert before[0].tolist() == after[0].tolist()


def test_empty_corpus_is_an_error() -> None:
    for corpus in ([], [[]], [[], []]):
        with pytest.raises(InvalidInputError, match="no tokens"):
            NgramDrafter.from_corpus(corpus, preset="paper")


def test_wrong_dtypes_raise_dtype_error(drafter: NgramDrafter) -> None:
    bad_ids = [np.array([5.0, 6.0]), [5, 6.5], ["a"], "56", [True, 1], [[5, 6]]]
    for ids in bad_ids:
        with pytest.raises(DtypeError):
            drafter.propose(ids, 2)
    with pytest.raises(InvalidInputError, match="1-D"):
        drafter.propose(np.array([[5, 6]]), 2)
    with pytest.raises(DtypeError):
        NgramDrafter.from_corpus([np.array([1.0, 2.0])], preset="paper")
    with pytest.raises(InvalidInputError, match="single int"):
        NgramDrafter.from_corpus([1, 2, 3], preset="paper")
    with pytest.raises(DtypeError):
        NgramDrafter.from_corpus("12345", preset="paper")


def test_bad_offsets(drafter: NgramDrafter) -> None:
    for offsets in ([0, 2], [1, 3], [0, 3, 2, 3], [0, -1, 3]):
        with pytest.raises(InvalidInputError):
            NgramDrafter.from_flat([1, 2, 3], offsets, preset="paper")


def test_errors_share_one_root_and_python_bases() -> None:
    for cls in (InvalidConfigError, InvalidInputError, DrafterFileError):
        assert issubclass(cls, TascError) and issubclass(cls, ValueError)
    assert issubclass(DtypeError, TypeError) and issubclass(TascIOError, OSError)


def test_unigram_only_drafter_and_corpus_fallback() -> None:
    d = NgramDrafter.from_corpus(
        [[1, 2, 2, 3]], n_max=1, min_count=1, corpus_weight=1.0, preset="paper"
    )
    ids, probs = d.propose([7], 3)
    assert ids.tolist() == [2, 2, 2] and probs.tolist() == [0.5, 0.5, 0.5]


def test_repr_and_version(drafter: NgramDrafter) -> None:
    assert "NgramDrafter(n_max=4" in repr(drafter)
    assert tasc_rs.__version__ and tasc_rs.FORMAT_VERSION == 4


def test_the_tuned_preset_is_the_default_and_the_paper_one_reproducible(tmp_path) -> None:
    from tasc_rs.drafter import PRESETS

    default = NgramDrafter.from_corpus(CORPUS)
    tuned = PRESETS["tuned"]
    assert (default.n_max, default.min_count, default.corpus_weight) == (
        tuned["n_max"],
        tuned["min_count"],
        tuned["corpus_weight"],
    )
    assert (default.mixing, default.online_capacity) == ("longer_match", 1 << 20)
    paper = NgramDrafter.from_corpus(CORPUS, preset="paper")
    assert (paper.n_max, paper.corpus_weight, paper.mixing, paper.online_capacity) == (
        4,
        0.75,
        "fixed",
        0,
    )
    # explicit settings win over the preset's, the others stay the preset's
    mixed = NgramDrafter.from_corpus(CORPUS, preset="paper", n_max=6, online_capacity=10)
    assert (mixed.n_max, mixed.corpus_weight, mixed.online_capacity) == (6, 0.75, 10)
    with pytest.raises(InvalidConfigError, match="unknown preset 'fast'"):
        NgramDrafter.from_corpus(CORPUS, preset="fast")
    # a loaded drafter takes the unsaved settings from its preset (or as given)
    path = tmp_path / "p.tasc"
    paper.save(path)
    assert NgramDrafter.load(path).mixing == "longer_match"
    loaded = NgramDrafter.load(path, preset="paper")
    assert (loaded.mixing, loaded.online_capacity, loaded.n_max) == ("fixed", 0, 4)
    assert NgramDrafter.from_bytes(paper.to_bytes(), online_capacity=7).online_capacity == 7
