"""BatchProposer: drafts for an engine batch, requests followed by their tokens across steps.

The reference is one DraftSession per request (the per-request API): whatever the engine does
with its rows (moving, swapping, finishing, partial prefills, identical prompts), each row's
draft must equal the draft of a fresh session over that row's tokens.
"""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasc_rs import (
    DtypeError,
    InvalidConfigError,
    InvalidInputError,
    NgramDrafter,
    TascError,
)

STOP = 0
WIDTH = 256


def corpus(seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    base = [[5, 6, 7, 8, 9, STOP], [5, 6, 7, 10, 11, STOP], [12, 13, 5, 6, 7, STOP]]
    return [s[: rng.randint(2, len(s))] for s in base for _ in range(4)] + base * 3


def fresh_draft(
    drafter: NgramDrafter, tokens: list[int], k: int, stop: int | None = None, **kw: object
) -> list[int]:
    """A fresh session's draft, ended after its first ``stop`` token as a batch proposer
    given that stop token ends it (the engine drops what follows one)."""
    session = drafter.session(tokens)
    for name, value in kw.items():
        setattr(session, name, value)
    draft = session.propose(k)[0].tolist()
    return draft[: draft.index(stop) + 1] if stop in draft else draft


class Engine:
    """A toy engine batch: a persistent int32 buffer whose rows hold requests and move."""

    def __init__(self, rows: int = 8) -> None:
        self.buf = np.zeros((rows, WIDTH), dtype=np.int32)
        self.num = np.zeros(rows, dtype=np.int32)
        self.reqs: list[list[int]] = []

    def load(self, reqs: list[list[int]]) -> None:
        self.reqs = reqs
        for i, r in enumerate(reqs):
            self.buf[i, : len(r)] = r
            self.num[i] = len(r)


def test_docstring_shape_and_empty_rows() -> None:
    d = NgramDrafter.from_corpus([[1, 2, 3, 4]] * 5)
    bp = d.batch_proposer()
    buf = np.zeros((3, 16), dtype=np.int32)
    buf[0, :3] = [9, 1, 2]
    buf[2, :2] = [1, 2]
    out = bp.propose([[2], [], [2]], np.array([3, 5, 2], dtype=np.int32), buf, k=2)
    assert out == [[3, 4], [], [3, 4]]
    assert bp.stats()["live"] == 2
    # max_len caps each draft at the room left in its row
    assert bp.propose([[2]], np.array([3], dtype=np.int32), buf, k=8, max_len=4) == [[3]]
    assert bp.propose([[2]], np.array([3], dtype=np.int32), buf, k=8, max_len=3) == [[]]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_rows_follow_their_requests_like_sessions(seed: int) -> None:
    rng = random.Random(seed)
    drafter = NgramDrafter.from_corpus(corpus(seed % 7), min_count=1)
    bp = drafter.batch_proposer(max_requests=64, stop_tokens=[STOP])
    pool = [[rng.randint(1, 14) for _ in range(rng.randint(1, 40))] for _ in range(4)]
    engine = Engine(rows=16)
    running: list[list[int]] = []
    for _step in range(30):
        # finish some requests, admit new ones (sometimes an identical prompt), shuffle rows;
        # up to 12 rows, so steps both below and above the parallel threshold (8) occur
        running = [r for r in running if rng.random() > 0.15 and len(r) < WIDTH - 20]
        while len(running) < 12 and rng.random() < 0.8:
            running.append([*rng.choice(pool), rng.randint(1, 14)])
        if rng.random() < 0.3:
            rng.shuffle(running)
        engine.load(running)
        sampled = [[r[-1]] for r in running]
        prefill = {i for i in range(len(running)) if rng.random() < 0.1}
        for i in prefill:
            sampled[i] = []
        k = rng.randint(1, 6)
        out = bp.propose(sampled, engine.num, engine.buf, k)
        assert len(out) == len(running)
        for i, r in enumerate(running):
            if i in prefill:
                assert out[i] == []
            else:
                assert out[i] == fresh_draft(drafter, r, k, stop=STOP), (i, r)
        # each request gains 1-3 tokens: part of the draft, then the target's own token
        for i, r in enumerate(running):
            if i not in prefill:
                r.extend(out[i][: rng.randint(0, len(out[i]))])
                r.append(rng.randint(1, 14))
    stats = bp.stats()
    assert stats["live"] <= 64
    assert stats["invalid_rows"] == 0


def test_settings_reach_the_drafts() -> None:
    drafter = NgramDrafter.from_corpus(corpus(), min_count=1)
    tokens = [3, 5, 6]
    buf = np.zeros((1, WIDTH), dtype=np.int32)
    buf[0, :3] = tokens
    for kw in (
        {"min_prob": 0.6},
        {"corpus_weight": 0.2},
        {"mixing": "longer_match"},
        {"verify_cost": [1.0, 1.5, 2.5, 4.0]},
    ):
        bp = drafter.batch_proposer(**kw)  # type: ignore[arg-type]
        got = bp.propose([[6]], np.array([3]), buf, 6)
        assert got == [fresh_draft(drafter, tokens, 6, **kw)], kw


def test_stop_token_and_staleness_learn_each_response_once() -> None:
    drafter = NgramDrafter.from_corpus([[1, 2, 3]] * 5)
    drafter.online_capacity = 1000
    bp = drafter.batch_proposer(stop_tokens=[STOP], stale_steps=4)
    engine = Engine(rows=2)
    a = [40, 41, 42]
    b = [50, 51]
    engine.load([a, b])
    bp.propose([[42], [51]], engine.num, engine.buf, 4)
    a += [43, 44, STOP]
    b += [52]
    engine.load([a, b])
    bp.propose([[43, 44, STOP], [52]], engine.num, engine.buf, 4)
    assert drafter.online_stats()["responses"] == 1  # a ended with the stop token
    # the learned response drafts for a new request that starts like it
    c = [7, 42]
    engine.load([c])
    assert bp.propose([[42]], engine.num, engine.buf, 3) == [[43, 44, STOP]]
    for _ in range(12):
        engine.load([c])
        bp.propose([[42]], engine.num, engine.buf, 3)
    # b went stale and was learned once; a was not learned twice
    assert drafter.online_stats()["responses"] == 2
    assert bp.stats()["stale"] >= 2


def test_capacity_bounds_the_states() -> None:
    drafter = NgramDrafter.from_corpus([[1, 2, 3]] * 5)
    bp = drafter.batch_proposer(max_requests=3)
    engine = Engine(rows=1)
    for r in range(10):
        engine.load([[100 + r] * 40])
        bp.propose([[100 + r]], engine.num, engine.buf, 2)
    s = bp.stats()
    assert s["live"] == 3 and s["dropped"] == 7 and s["created"] == 10


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (([[1]], [3], np.zeros((1, 8), dtype=np.float32), 2), DtypeError, "int32"),
        (([[1]], [3], np.zeros(8, dtype=np.int32), 2), DtypeError, "2-D"),
        (([[1]], [3], np.zeros((8, 8), dtype=np.int32)[:, ::2], 2), InvalidInputError, "contig"),
        (([[1]], [9], np.zeros((1, 8), dtype=np.int32), 2), InvalidInputError, "width"),
        (([[1]], [-1], np.zeros((1, 8), dtype=np.int32), 2), InvalidInputError, "negative"),
        (([[1], [1]], [3, 3], np.zeros((1, 8), dtype=np.int32), 2), InvalidInputError, "rows"),
        (([[1]], [], np.zeros((1, 8), dtype=np.int32), 2), InvalidInputError, "entries"),
        (([[1]], [3], np.zeros((1, 8), dtype=np.int32), -1), InvalidConfigError, "k"),
        (([[1]], np.zeros(2), np.zeros((1, 8), dtype=np.int32), 2), DtypeError, "num_tok"),
        ((5, [3], np.zeros((1, 8), dtype=np.int32), 2), DtypeError, "sampled"),
    ],
)
def test_bad_input_raises_tasc_errors(args: tuple, error: type, match: str) -> None:
    bp = NgramDrafter.from_corpus([[1, 2, 3]] * 5).batch_proposer()
    with pytest.raises(error, match=match):
        bp.propose(*args)


def test_negative_ids_in_a_row_skip_that_row_only() -> None:
    drafter = NgramDrafter.from_corpus([[1, 2, 3, 4]] * 5)
    bp = drafter.batch_proposer()
    buf = np.zeros((2, 8), dtype=np.int32)
    buf[0, :3] = [1, -7, 2]
    buf[1, :2] = [1, 2]
    assert bp.propose([[2], [2]], [3, 2], buf, 2) == [[], [3, 4]]
    assert bp.stats()["invalid_rows"] == 1


@pytest.mark.parametrize("accept", [True, False])
def test_acceptance_is_measured_from_the_rows(accept: bool) -> None:
    """The tokens a row gains the next step tell how much of its draft the target agreed with;
    the batch cut then drafts more for a model that accepts and less for one that rejects."""
    drafter = NgramDrafter.from_corpus([[5, 6, 7, 8, 9, 10, 11, 12]] * 5, min_count=1)
    proposer = drafter.batch_proposer(step_overhead=4.0, min_prob=0.0, stop_tokens=[STOP])
    buf = np.zeros((4, WIDTH), dtype=np.int32)
    rows = [[5, 6] for _ in range(4)]
    gained = [2] * 4
    cycle = [5, 6, 7, 8, 9, 10, 11, 12]
    for _ in range(40):
        num = np.array([len(r) for r in rows], dtype=np.int32)
        for i, r in enumerate(rows):
            buf[i, : len(r)] = r
        drafts = proposer.propose([[1] * g for g in gained], num, buf, 4)
        for i, (row, draft) in enumerate(zip(rows, drafts, strict=True)):
            before = len(row)
            if accept:
                row.extend(draft)
            nxt = cycle[(cycle.index(row[-1]) + 1) % len(cycle)]
            if not accept and draft and nxt == draft[0]:
                nxt = cycle[(cycle.index(nxt) + 1) % len(cycle)]  # anything but the draft
            row.append(nxt)
            gained[i] = len(row) - before
    stats = proposer.stats()
    assert stats["verified_drafted_tokens"] > 0
    rates = stats["acceptance_by_prob"]
    assert len(rates) == 10 and all(0.0 <= r <= 1.0 for r in rates)
    if accept:  # the rows follow the corpus: every draft token had probability 1 (the top bin)
        assert stats["accepted_tokens"] == stats["verified_drafted_tokens"]
        assert rates[-1] > 0.95
        assert all(len(d) == 4 for d in drafts)
    else:
        assert stats["accepted_tokens"] == 0
        assert min(rates) < 0.2  # the bin(s) the drafts fell in
        assert sum(map(len, drafts)) == 0  # drafts that always fail stop being drafted


@pytest.mark.parametrize(
    "kw",
    [
        {"max_requests": 0},
        {"stale_steps": -1},
        {"stop_tokens": [-3]},
        {"min_prob": 2.0},
        {"corpus_weight": -0.5},
        {"mixing": "sometimes"},
        {"verify_cost": []},
        {"threads": 0},
        {"threads": 65},
    ],
)
def test_bad_settings_raise(kw: dict) -> None:
    with pytest.raises(InvalidConfigError):
        NgramDrafter.from_corpus([[1, 2, 3]] * 5).batch_proposer(**kw)


def test_threads_draft_a_large_batch_like_one_thread() -> None:
    """Batches of 96 rows or more are drafted on a pool; the drafts (and the state they leave,
    seen through the following steps) are the same as with the calling thread alone."""
    drafter = NgramDrafter.from_corpus(corpus(), min_count=1)
    rng = random.Random(3)
    reqs = [[rng.choice([5, 6, 7, 12, 13]) for _ in range(rng.randint(2, 9))] for _ in range(100)]
    outs = {}
    for threads in (1, 4):
        bp = drafter.batch_proposer(threads=threads, max_requests=128)
        engine = Engine(rows=100)
        engine.load([list(r) for r in reqs])
        steps = []
        for step in range(6):
            sampled = [[1]] * 100 if step == 0 else [[r[-1]] for r in engine.reqs]
            drafts = bp.propose(sampled, engine.num, engine.buf, 4)
            steps.append(drafts)
            for i, r in enumerate(engine.reqs):  # every row accepts its first drafted token
                r.append(drafts[i][0] if drafts[i] else 5)
                engine.buf[i, len(r) - 1] = r[-1]
                engine.num[i] = len(r)
        outs[threads] = steps
        assert bp.stats()["rows"] == 600
    assert outs[1] == outs[4]
    assert any(d for step in outs[1] for d in step)


def test_shared_between_threads() -> None:
    drafter = NgramDrafter.from_corpus(corpus(), min_count=1)
    drafter.online_capacity = 10_000
    bp = drafter.batch_proposer(stop_tokens=[STOP], max_requests=16)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        engine = Engine(rows=4)
        try:
            for _ in range(300):
                reqs = [[rng.randint(1, 14) for _ in range(rng.randint(1, 30))] for _ in range(4)]
                engine.load(reqs)
                out = bp.propose([[r[-1]] for r in reqs], engine.num, engine.buf, 4)
                assert len(out) == 4
        except (TascError, AssertionError) as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert bp.stats()["steps"] == 1200
    bp.reset()
    assert bp.stats()["live"] == 0


def test_a_fortran_ordered_buffer_is_refused() -> None:
    d = NgramDrafter.from_corpus(corpus(), min_count=1, vocab_size=64)
    p = d.batch_proposer()
    buf = np.asfortranarray(np.zeros((3, WIDTH), dtype=np.int32))
    with pytest.raises(InvalidInputError, match="C-contiguous"):
        p.propose([[5], [5], [5]], np.array([2, 2, 2], dtype=np.int32), buf, 4)


def test_rows_holding_ids_past_the_vocabulary_get_no_draft() -> None:
    d = NgramDrafter.from_corpus(corpus(), min_count=1, vocab_size=64)
    p = d.batch_proposer(min_prob=0.0)
    buf = np.zeros((2, WIDTH), dtype=np.int32)
    buf[0, :4] = [5, 6, 70, 6]  # 70 >= vocab_size: a session refuses it, the row drafts nothing
    buf[1, :2] = [5, 6]
    drafts = p.propose([[6], [6]], np.array([4, 2], dtype=np.int32), buf, 4)
    assert drafts[0] == []
    assert drafts[1] == fresh_draft(d, [5, 6], 4, min_prob=0.0)
    assert p.stats()["invalid_rows"] == 1
    with pytest.raises(InvalidInputError):
        d.session([5, 6, 70])


def test_a_forked_child_drafts_large_batches_on_its_own_pool() -> None:
    """A batch of 96+ rows starts the drafting pool; a fork's child has none of its threads,
    so its next large batch must not wait on them (it did: the child hung)."""
    import os
    import time
    import warnings

    d = NgramDrafter.from_corpus(corpus(), min_count=1, vocab_size=64)
    p = d.batch_proposer(threads=2)
    rows = 128
    buf = np.zeros((rows, WIDTH), dtype=np.int32)
    buf[:, :2] = [5, 6]
    lens = np.full(rows, 2, dtype=np.int32)
    first = p.propose([[6]] * rows, lens, buf, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: one more large batch, then report how it went
        try:
            buf[:, 2] = 7
            out = p.propose([[7]] * rows, lens + 1, buf, 4)
            os._exit(0 if len(out) == rows else 1)
        except BaseException:
            os._exit(2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on its first large batch")
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(first) == rows
