"""Differential tests: the Rust drafter proposes exactly what the pure-Python reference does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from reference_ngram import ReferenceDrafter

from tasc_rs import NgramDrafter

tokens = st.integers(min_value=0, max_value=6)
corpora = st.lists(st.lists(tokens, max_size=12), min_size=1, max_size=12).filter(lambda c: any(c))
settings_ = st.fixed_dictionaries(
    {
        "n_max": st.integers(1, 5),
        "min_count": st.integers(1, 3),
        "corpus_weight": st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 0.6180339887]),
        "min_prob": st.sampled_from([0.0, 0.0, 0.2, 0.5]),
    }
)


@settings(max_examples=400, deadline=None)
@given(corpus=corpora, cfg=settings_, context=st.lists(tokens, max_size=20), k=st.integers(1, 10))
def test_stateless_propose_matches_reference(corpus, cfg, context, k):
    ref = ReferenceDrafter(corpus, **cfg)
    drafter = NgramDrafter.from_corpus(corpus, **cfg, preset="paper")
    ids, probs = drafter.propose(context, k)
    assert (ids.tolist(), probs.tolist()) == ref.propose(context, k)


@settings(max_examples=150, deadline=None)
@given(
    corpus=corpora,
    cfg=settings_,
    prompt=st.lists(tokens, max_size=10),
    steps=st.lists(st.lists(tokens, max_size=4), max_size=5),
    k=st.integers(1, 8),
)
def test_incremental_session_matches_reference(corpus, cfg, prompt, steps, k):
    ref = ReferenceDrafter(corpus, **cfg)
    drafter = NgramDrafter.from_corpus(corpus, **cfg, preset="paper")
    session = drafter.session(prompt)
    context = list(prompt)
    for accepted in [[], *steps]:
        session.extend(accepted)
        context += accepted
        ids, probs = session.propose(k)
        assert (ids.tolist(), probs.tolist()) == ref.propose(context, k)
    assert session.tokens().tolist() == context


@settings(max_examples=100, deadline=None)
@given(corpus=corpora, cfg=settings_, context=st.lists(tokens, max_size=20))
def test_round_trip_through_bytes_keeps_proposals(corpus, cfg, context):
    drafter = NgramDrafter.from_corpus(corpus, **cfg, preset="paper")
    loaded = NgramDrafter.from_bytes(drafter.to_bytes())
    a, pa = drafter.propose(context, 6)
    b, pb = loaded.propose(context, 6)
    assert a.tolist() == b.tolist() and pa.tolist() == pb.tolist()
    assert loaded.stats() == drafter.stats()
