"""Many threads drafting from one shared drafter: same answers as one thread, no deadlock."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tasc_rs import NgramDrafter


@pytest.mark.timeout(120)
def test_thread_pool_proposals_match_single_thread() -> None:
    rng = random.Random(7)
    corpus = [[rng.randrange(50) for _ in range(rng.randrange(5, 60))] for _ in range(2000)]
    drafter = NgramDrafter.from_corpus(corpus, min_count=2, preset="paper")
    contexts = [[rng.randrange(50) for _ in range(rng.randrange(0, 300))] for _ in range(64)]

    def work(ctx: list[int]) -> list[tuple[list[int], list[float]]]:
        out = []
        session = drafter.session(ctx[: len(ctx) // 2])
        session.extend(ctx[len(ctx) // 2 :])
        for _ in range(20):
            ids, probs = session.propose(8)
            out.append((ids.tolist(), probs.tolist()))
            stateless = drafter.propose(ctx, 8)
            assert stateless[0].tolist() == ids.tolist()
            session.extend(ids[:1] if len(ids) else [0])
            ctx = [*ctx, *(ids[:1].tolist() if len(ids) else [0])]
        return out

    expected = [work(c) for c in contexts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            assert list(pool.map(work, contexts)) == expected


@pytest.mark.timeout(120)
def test_concurrent_builds_and_saves(tmp_path) -> None:
    corpus = [[i % 7, (i * 3) % 11, i % 5] for i in range(5000)]

    def build(i: int) -> bytes:
        d = NgramDrafter.from_corpus(corpus, min_count=1 + i % 3, preset="paper")
        d.save(tmp_path / f"d{i}.tasc")
        return NgramDrafter.load(tmp_path / f"d{i}.tasc").to_bytes()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(build, range(12)))
    for i, data in enumerate(results):
        assert data == results[i % 3]


@pytest.mark.timeout(120)
def test_concurrent_saves_to_one_path_leave_a_valid_file(tmp_path) -> None:
    drafters = [
        NgramDrafter.from_corpus([[i, i + 1, i + 2]] * 3, min_count=1, preset="paper")
        for i in range(8)
    ]
    path = tmp_path / "shared.tasc"
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(5):
            list(pool.map(lambda d: d.save(path), drafters))
            loaded = NgramDrafter.load(path).to_bytes()
            assert loaded in {d.to_bytes() for d in drafters}
    assert [p.name for p in tmp_path.iterdir()] == ["shared.tasc"]


@pytest.mark.timeout(120)
def test_learning_while_other_threads_draft() -> None:
    rng = random.Random(3)
    corpus = [[rng.randrange(50) for _ in range(20)] for _ in range(500)]
    drafter = NgramDrafter.from_corpus(corpus, min_count=2, preset="paper")
    drafter.online_capacity = 5_000  # small enough that eviction runs during the test
    responses = [[rng.randrange(50) for _ in range(40)] for _ in range(400)]

    def learn(r: list[int]) -> int:
        s = drafter.session([1, 2, 3])
        s.extend(r)
        return s.finish()

    def draft(i: int) -> int:
        s = drafter.session(responses[i % len(responses)][:10])
        return sum(len(s.propose(8)[0]) for _ in range(20))

    with ThreadPoolExecutor(max_workers=8) as pool:
        drafted = pool.map(draft, range(400))
        learned = pool.map(learn, responses)
        assert sum(learned) == 40 * 400 and sum(drafted) > 0
    assert drafter.wait_learned(timeout=120)  # evictions of 3750 tokens run in the background
    stats = drafter.online_stats()
    assert stats["pending"] == 0
    # a queue of more than a capacity's worth drops its oldest (they would be evicted at once)
    assert stats["learned"] + stats["dropped"] == 400 and 0 < stats["tokens"] <= 5_000
    assert stats["tokens"] == 40 * stats["responses"]


def test_one_session_shared_by_two_threads_says_what_is_wrong() -> None:
    """A session is per request; sharing one raises a TascError that says so (not PyO3's
    "Already mutably borrowed")."""
    import time

    from tasc_rs import InvalidInputError, NgramDrafter

    session = NgramDrafter.from_corpus([[1, 2, 3, 4]] * 5, preset="paper").session([1, 2])
    big = list(range(5, 200_005))  # long enough to run detached from the GIL
    errors: list[BaseException] = []
    stop = time.monotonic() + 20

    def extend() -> None:
        while time.monotonic() < stop and not errors:
            try:
                session.extend(big)
            except Exception as e:
                errors.append(e)

    t = threading.Thread(target=extend)
    t.start()
    while time.monotonic() < stop and not errors:
        try:
            session.propose(4)
        except Exception as e:
            errors.append(e)
    t.join()
    assert errors, "the two threads never overlapped"
    assert all(isinstance(e, InvalidInputError) for e in errors), errors
    assert "in use by another thread" in str(errors[0])


def _big_learner() -> tuple[NgramDrafter, list[list[int]]]:
    """A drafter whose online index evicts many thousand tokens: the background learner's case."""
    rng = random.Random(11)
    drafter = NgramDrafter.from_corpus([[1, 2, 3, 4]] * 3, min_count=1, preset="paper")
    drafter.online_capacity = 40_000
    responses = [[rng.randrange(5, 60_000) for _ in range(500)] for _ in range(200)]
    return drafter, responses


@pytest.mark.timeout(300)
def test_large_evictions_are_learned_in_the_background_and_drafted_from() -> None:
    drafter, responses = _big_learner()
    for r in responses:
        s = drafter.session([1])
        s.extend(r)
        assert s.finish() == 500  # what will be learned, queued or not
    assert drafter.wait_learned(timeout=120)
    stats = drafter.online_stats()
    assert stats["pending"] == 0 and stats["tokens"] <= 40_000
    assert stats["learned"] + stats["dropped"] == 200
    newest = responses[-1]
    assert drafter.session(newest[:20]).propose(5)[0].tolist() == newest[20:25]
    # saving waits for the queue, so a snapshot holds the newest response
    fresh, _ = _big_learner()
    drafter.learn(responses[0])
    fresh.restore_learned(drafter.learned_state())
    assert fresh.online_stats()["tokens"] == drafter.online_stats()["tokens"]
    assert fresh.session(responses[0][:20]).propose(5)[0].tolist() == responses[0][20:25]
    # forget drops what is still queued
    for r in responses[:50]:
        drafter.learn(r)
    drafter.forget()
    assert drafter.wait_learned(timeout=120)
    assert drafter.online_stats()["tokens"] <= 40_000


@pytest.mark.parametrize("timeout", [-1.0, float("nan"), float("inf")])
def test_wait_learned_refuses_bad_timeouts(timeout: float) -> None:
    from tasc_rs import InvalidConfigError

    drafter, _ = _big_learner()
    with pytest.raises(InvalidConfigError, match="timeout"):
        drafter.wait_learned(timeout)
    assert drafter.wait_learned(0.0)  # nothing queued


def _child_status(pid: int, seconds: float) -> int | None:
    """The child's exit code, or None (and the child killed) if it hung."""
    import os
    import signal
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


@pytest.mark.timeout(600)
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_children_forked_while_the_learner_works_draft_and_learn() -> None:
    """A fork while the learner holds a lock (it indexes in short writes, one after another)
    must not leave the lock held in the child: 10 forks while another thread keeps learning."""
    import os

    drafter, responses = _big_learner()
    stop = threading.Event()

    def keep_learning() -> None:
        i = 0
        while not stop.is_set():
            drafter.learn(responses[i % len(responses)])
            i += 1
            if i % 20 == 0:
                drafter.wait_learned(timeout=60)

    learner = threading.Thread(target=keep_learning)
    learner.start()
    try:
        hung = failed = 0
        for _ in range(10):
            pid = os.fork()
            if pid == 0:
                ok = 1
                try:
                    newest = responses[-1]
                    drafter.session(newest[:20]).propose(5)
                    drafter.learn(newest)
                    ok = 0 if drafter.wait_learned(timeout=60) else 1
                finally:
                    os._exit(ok)
            code = _child_status(pid, 60)
            hung += code is None
            failed += code not in (None, 0)
    finally:
        stop.set()
        learner.join()
    assert (hung, failed) == (0, 0)
    assert drafter.wait_learned(timeout=120)


@pytest.mark.timeout(300)
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_learns_what_its_parent_had_queued() -> None:
    """The learner thread does not survive a fork: the child learns the queue it inherits."""
    import os

    drafter, responses = _big_learner()
    for r in responses:
        drafter.learn(r)
    pid = os.fork()
    if pid == 0:  # the child: exit status says what it saw
        ok = 1
        try:
            done = drafter.wait_learned(timeout=120)
            stats = drafter.online_stats()
            newest = responses[-1]
            drafts = drafter.session(newest[:20]).propose(5)[0].tolist()
            ok = 0 if done and stats["pending"] == 0 and drafts == newest[20:25] else 1
            drafter.learn(responses[0])  # and learns on in the child
            ok = ok or (0 if drafter.wait_learned(timeout=120) else 1)
        finally:
            os._exit(ok)
    assert _child_status(pid, 120) == 0  # None: the child hung
    assert drafter.wait_learned(timeout=120)
