"""TASC-ft enrichment: the Rust loop against the pure-Python reference, the binding, errors."""

from __future__ import annotations

import _thread
import math
import signal
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_enrich import enrich_reference, prefix_collision_score

from tasc_rs import CorpusBuilder, InvalidConfigError, InvalidInputError
from tasc_rs._core import enrich_vocabulary
from tasc_rs.errors import DtypeError
from tasc_rs.ft import enrich_ids

# Short strings over few letters so that prefix collisions, duplicates and nesting all happen.
VOCABS = [
    [b"a", b"b", b"ab", b"c", b" ", b"ba", b"abc"],
    [b" in", b" the", b" therapy", b"rapy", b"x", b" th", b"e"],
    ["é".encode(), b"caf", b"\xc3", b"\xa9", b" ", b"z"],
]

vocabs = st.sampled_from(VOCABS)
settings_ = st.fixed_dictionaries(
    {
        "budget": st.integers(0, 10),
        "n_max": st.integers(2, 6),
        "alpha": st.sampled_from([1.0, 0.5, 0.3, 0.2, 0.05]),
        "min_count": st.integers(1, 3),
        "byte_level": st.booleans(),
        "boundaries": st.sampled_from(["", "a", " ", "b "]),
    }
)


@st.composite
def corpora(draw: st.DrawFn) -> tuple[list[list[int]], list[bytes]]:
    vocab = draw(vocabs)
    ids = st.integers(0, len(vocab) - 1)
    seqs = draw(st.lists(st.lists(ids, max_size=14), min_size=1, max_size=8))
    if not any(seqs):
        seqs[0] = [0, 1]
    return seqs, vocab


@settings(max_examples=300, deadline=None)
@given(data=corpora(), cfg=settings_)
def test_rust_loop_matches_reference(data, cfg):
    seqs, vocab = data
    ref = enrich_reference(seqs, vocab, **cfg)
    got = enrich_ids(seqs, vocab, strict=False, **cfg)
    assert [t.parts for t in got.tokens] == [t.parts for t in ref]
    assert [t.string for t in ref] == [t.text.encode() for t in got.tokens]
    assert [t.score for t in got.tokens] == [t.score for t in ref]
    assert [t.count for t in got.tokens] == [t.count for t in ref]
    assert [t.tokens_after for t in got.tokens] == [t.tokens_after for t in ref]
    assert [t.pcs for t in got.tokens] == pytest.approx([t.pcs for t in ref])
    assert got.exhausted == (len(ref) < cfg["budget"])


@settings(max_examples=100, deadline=None)
@given(data=corpora(), budget=st.integers(1, 8))
def test_apply_reproduces_the_merged_corpus_and_truncation_is_a_smaller_budget(data, budget):
    seqs, vocab = data
    full = enrich_ids(seqs, vocab, budget, min_count=1, alpha=1.0, strict=False)
    tokens, offsets = full._native.corpus()
    for i, seq in enumerate(seqs):
        assert full.apply(seq).tolist() == tokens[offsets[i] : offsets[i + 1]].tolist()
    for m in range(len(full.tokens) + 1):
        smaller = enrich_ids(seqs, vocab, m, min_count=1, alpha=1.0, strict=False)
        cut = full.truncate(m)
        assert cut.tokens == smaller.tokens
        assert list(map(repr, cut.skipped)) == list(map(repr, smaller.skipped))  # NaN-safe
        assert cut.compression_curve() == smaller.compression_curve()
        assert [cut.apply(s).tolist() for s in seqs] == [smaller.apply(s).tolist() for s in seqs]


def test_paper_example_prefix_collision_is_filtered():
    vocab = [b" in", b" the", b" therapy"]
    seqs = [[0, 1]] * 3 + [[0, 2]] * 2
    # " in the" is aligned 3 times and cuts " therapy" twice: PCS = 2 / 5.
    assert prefix_collision_score(seqs, vocab, b" in the") == pytest.approx(0.4)
    filtered = enrich_ids(seqs, vocab, budget=1, alpha=0.3)
    assert filtered.tokens[0].text == " in therapy"
    assert filtered.skipped[0].text == " in the"
    assert filtered.skipped[0].reason == "prefix_collision"
    assert filtered.skipped[0].pcs == pytest.approx(0.4)
    unfiltered = enrich_ids(seqs, vocab, budget=1, alpha=1.0)
    assert unfiltered.tokens[0].text == " in the"


def test_result_fields_and_numpy_outputs():
    b = CorpusBuilder()
    for seq in ([0, 1, 2], [0, 1, 2], [0, 1]):
        b.add(np.array(seq, dtype=np.int32))
    e = enrich_vocabulary(b, [b"a", b"b", b"c"], budget=2, min_count=1, alpha=1.0)
    assert len(e) == 2 and e.base_vocab_size == 3 and e.initial_tokens == 8
    assert e.ids().dtype == np.int64 and e.ids().tolist() == [3, 4]
    assert e.strings() == [b"abc", b"ab"]
    assert e.parts() == [[0, 1, 2], [0, 1]]
    assert e.tokens_after().tolist() == [4, 3]
    assert e.pcs().dtype == np.float64
    assert e.apply([0, 1, 2, 0, 1]).tolist() == [3, 4]
    assert e.apply([0, 1, 2, 0, 1], 1).tolist() == [3, 0, 1]
    assert "added=2" in repr(e)


def test_skipped_candidates_are_reported():
    vocab = [b"a", b"b", b"ab", b"\xc3", b"\xa9"]
    r = enrich_ids([[0, 1, 3, 4]] * 3, vocab, budget=1, n_max=2, min_count=1, alpha=1.0)
    reasons = {s.reason for s in r.skipped}
    assert reasons == {"duplicate_string", "not_utf8"}
    assert all(math.isnan(s.pcs) for s in r.skipped)
    assert r.tokens[0].text == "é"
    vocab = [b"caf", "é".encode(), b"x", b"\xc3", b"\xa9"]
    garbled = enrich_ids(
        [[0, 1]] * 3 + [[3, 4]] * 2, vocab, budget=1, byte_level=True, strict=False, alpha=1.0
    )
    assert [s.reason for s in garbled.skipped][:1] == ["byte_level_decode"]


def test_empty_corpus_and_bad_ids_are_input_errors():
    with pytest.raises(InvalidInputError, match="no tokens"):
        enrich_ids([[]], [b"a"], budget=1)
    with pytest.raises(InvalidInputError, match="out of range"):
        enrich_ids([[0, 7]], [b"a", b"b"], budget=1)
    with pytest.raises(InvalidInputError, match="negative"):
        enrich_ids([[0, -1]], [b"a", b"b"], budget=1)
    with pytest.raises(InvalidInputError, match="vocabulary is empty"):
        enrich_vocabulary(CorpusBuilder(), [], 1)
    with pytest.raises(DtypeError):
        enrich_ids([[0, 1]], ["a", "b"], budget=1)  # type: ignore[list-item]


def test_budget_beyond_candidates_is_an_error_unless_not_strict():
    with pytest.raises(InvalidInputError, match="budget 5 exceeds the candidates"):
        enrich_ids([[0, 1]] * 2, [b"a", b"b"], budget=5)
    partial = enrich_ids([[0, 1]] * 2, [b"a", b"b"], budget=5, strict=False)
    assert partial.exhausted and len(partial.tokens) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"budget": -1}, "budget"),
        ({"n_max": 1}, "n_max"),
        ({"n_max": 9}, "n_max"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"min_count": 0}, "min_count"),
        ({"boundaries": "é"}, "boundaries"),
    ],
)
def test_bad_settings_are_config_errors(kwargs, match):
    args = {"budget": 1, **kwargs}
    with pytest.raises(InvalidConfigError, match=match):
        enrich_ids([[0, 1]] * 2, [b"a", b"b"], **args)


def test_truncate_rejects_negative_budget():
    r = enrich_ids([[0, 1]] * 2, [b"a", b"b"], budget=1)
    with pytest.raises(InvalidInputError):
        r.truncate(-1)
    assert r.truncate(0).compression_ratio() == 1.0


def test_docstring_examples_run() -> None:
    import doctest
    import importlib

    module = importlib.import_module("tasc_rs.ft.enrichment")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_copied_words_are_held_out_of_merges() -> None:
    from tasc_rs.ft.enrichment import copied_token_mask, split_held_out

    offsets = [(0, 5), (5, 7), (7, 10), (10, 18)]
    mask = copied_token_mask("city=PARis, unit=c", "Weather in Paris", offsets)
    assert mask == [False, True, True, False]  # case-insensitive, every overlapping token
    assert copied_token_mask("a_b=x", "a b x", [(0, 4), (4, 5)]) == [False, True]  # \w+ runs
    assert split_held_out([7, 8, 9], [True, True, False]) == [[7], [8], [9]]
    assert split_held_out([], []) == []
    # Held-out tokens never enter a merge but still count in the corpus length.
    seqs = split_held_out([0, 1, 0, 1], [False, False, True, False])
    r = enrich_ids(seqs * 2, [b"a", b"b"], budget=1, n_max=2, alpha=1.0)
    assert r.initial_tokens == 8 and r.tokens[0].count == 2 and r.compression_curve()[-1] == 6


def test_ctrl_c_stops_a_long_enrichment_while_it_runs() -> None:
    # A loop long enough to be running when the interrupt arrives; the KeyboardInterrupt comes
    # from inside the native call (its note says how far it got), not after it returned.
    rng = np.random.default_rng(0)
    sequences = [rng.integers(0, 200, size=100) for _ in range(20_000)]
    strings = [bytes([65 + i % 26, 97 + i // 26]) for i in range(200)]
    # interrupt_main does nothing unless SIGINT has Python's own handler; an earlier test or
    # library may have replaced it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            enrich_ids(sequences, strings, budget=100_000, strict=False, alpha=1.0)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    notes = getattr(info.value, "__notes__", [])
    assert any(n.startswith("enrichment stopped after adding") for n in notes), notes


def test_a_long_run_of_one_token_enriches_fully() -> None:
    # Each new token is four of the previous one; counting its occurrences used to walk every
    # position for every byte (4x the time per token added).
    result = enrich_ids([[0] * 200_000], [b"a", b"b"], budget=8, alpha=1.0)
    assert [len(t.text) for t in result.tokens] == [4**i for i in range(1, 9)]
