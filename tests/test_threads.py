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
    stats = drafter.online_stats()
    assert stats["learned"] == 400 and 0 < stats["tokens"] <= 5_000
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
