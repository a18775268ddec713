"""Latency of drafting while online learning evicts at capacity (issues 15 and 27).

A service shares one drafter between request threads, or drives one ``BatchProposer`` from the
engine's thread. With online learning on (``online_capacity = 1 << 20``, the README's setting)
and long responses, the online index fills and every few hundred thousand learned tokens a
finished response makes it evict the oldest responses and rebuild (about a second at that
capacity). That rebuild must stall no one: not the drafting calls, not the call that finishes
a request, not the engine step that learns a row's response.

Both loads start with the online index filled to its capacity (so evictions come from the
first seconds on) and run the same load with online learning off as the reference:

- ``requests``: each of ``--threads`` threads runs requests end to end: ``session(prompt)``,
  ``propose(8)`` and ``extend`` until the response is written, then ``finish()``. A heartbeat
  thread ticks every millisecond and records how late each tick is (a call that held the GIL
  while waiting would show there). With one request thread, the request thread, the background
  learner and the heartbeat fit this machine's 2 cores; with more, the times also hold the
  GIL's switch interval (5 ms) and the OS's scheduling.
- ``batch``: one ``BatchProposer`` drafts ``--rows`` rows per step as an engine would; a row
  whose response ends (a stop token) is learned in that step and replaced by a new request.

Prints p50/p99/p99.9/max of each call in microseconds, and how many evictions ran.

    python benches/bench_threads.py [--threads 1 4] [--rows 16] [--seconds 20] [--write]
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
from _results import machine, write_section

from tasc_rs import NgramDrafter

VOCAB = 5000
STOP = VOCAB - 1
CAPACITY = 1 << 20
# online learning off; learning into an index of ~1M tokens that has room to grow (no eviction
# during the run); learning into one full at 1M tokens (evicting every ~262k learned tokens)
LEARNING = (
    ("off", 0),
    ("on, not evicting (capacity 1 << 24)", 1 << 24),
    ("on, evicting (capacity 1 << 20)", CAPACITY),
)


def corpus(rng: np.random.Generator, n: int, length: int) -> list[np.ndarray]:
    """Responses built from a small set of phrases, so drafts are accepted often."""
    phrases = [rng.integers(0, VOCAB - 1, size=rng.integers(3, 12)) for _ in range(400)]
    out = []
    for _ in range(n):
        parts, size = [], 0
        while size < length:
            p = phrases[int(rng.integers(0, len(phrases)))]
            parts.append(p)
            size += len(p)
        out.append(np.concatenate(parts)[:length])
    return out


def stats(xs: list[float]) -> tuple[float, float, float, float]:
    """p50, p99, p99.9 and max in microseconds."""
    if not xs:
        return (float("nan"),) * 4
    a = np.array(xs) * 1e6
    p = np.percentile(a, [50, 99, 99.9])
    return float(p[0]), float(p[1]), float(p[2]), float(a.max())


def fmt(s: tuple[float, ...]) -> str:
    return " / ".join(f"{v:.0f}" for v in s)


def drafter_for(train: list[np.ndarray], capacity: int, fill: list[np.ndarray]) -> NgramDrafter:
    """A drafter whose online index holds about `CAPACITY` tokens before the clock starts (so
    one of capacity `CAPACITY` evicts within seconds, a larger one does not)."""
    drafter = NgramDrafter.from_corpus(train, min_count=2, vocab_size=VOCAB)
    drafter.online_capacity = capacity
    if capacity:
        while drafter.online_stats()["learned_tokens"] < CAPACITY:
            for r in fill:
                drafter.learn(r)
            drafter.wait_learned()
    return drafter


def evictions(before: dict, after: dict, capacity: int) -> int:
    """Evictions that ran between two `online_stats`: the first once the index is full, then
    one per quarter of the capacity learned."""
    over = before["tokens"] + after["learned_tokens"] - before["learned_tokens"] - capacity
    return 0 if not capacity or over <= 0 else 1 + int(over // (capacity / 4))


def run_requests(
    drafter: NgramDrafter, responses: list[np.ndarray], threads: int, seconds: float
) -> dict:
    propose_t: list[float] = []
    finish_t: list[float] = []
    late: list[float] = []
    stop = threading.Event()
    lock = threading.Lock()
    requests = [0]

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        mine_p, mine_f = [], []
        done = 0
        while not stop.is_set():
            response = responses[int(rng.integers(0, len(responses)))]
            session = drafter.session(response[:16])
            pos = 16
            while pos < len(response) and not stop.is_set():
                t = time.perf_counter()
                ids, _ = session.propose(8)
                mine_p.append(time.perf_counter() - t)
                # accept the matching prefix of the draft, plus the true next token
                n = 0
                while n < len(ids) and pos + n < len(response) and ids[n] == response[pos + n]:
                    n += 1
                step = response[pos : pos + n + 1]
                session.extend(step)
                pos += len(step)
            t = time.perf_counter()
            session.finish()
            mine_f.append(time.perf_counter() - t)
            done += 1
        with lock:
            propose_t.extend(mine_p)
            finish_t.extend(mine_f)
            requests[0] += done

    def heartbeat() -> None:
        nxt = time.perf_counter()
        while not stop.is_set():
            nxt += 0.001
            delay = nxt - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            late.append(max(0.0, time.perf_counter() - nxt))
            nxt = max(nxt, time.perf_counter())

    before = drafter.online_stats()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    beat = threading.Thread(target=heartbeat)
    for t in [*pool, beat]:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in [*pool, beat]:
        t.join()
    drafter.wait_learned()
    after = drafter.online_stats()
    return {
        "requests": requests[0],
        "calls": {"propose": stats(propose_t), "finish": stats(finish_t)},
        "heartbeat": stats(late),
        "evictions": evictions(before, after, drafter.online_capacity),
        "online": after,
    }


def run_batch(
    drafter: NgramDrafter, responses: list[np.ndarray], rows: int, seconds: float
) -> dict:
    """One BatchProposer drafting `rows` rows per step; an ended row restarts as a new request."""
    rng = np.random.default_rng(1)
    prompt = 16
    width = prompt + max(len(r) for r in responses) + 16
    bp = drafter.batch_proposer(stop_tokens=[STOP], threads=1)
    buf = np.zeros((rows, width), dtype=np.int32)
    truth: list[np.ndarray] = []
    lens = np.zeros(rows, dtype=np.int32)
    sampled: list[list[int]] = []

    def start(i: int) -> None:
        r = responses[int(rng.integers(0, len(responses)))]
        # a fresh request: a random prompt (not a row seen before), the response, a stop token
        t = np.concatenate([rng.integers(0, VOCAB - 1, size=prompt), r, [STOP]]).astype(np.int32)
        while len(truth) <= i:
            truth.append(t)
        truth[i] = t
        buf[i, : prompt + 1] = t[: prompt + 1]
        lens[i] = prompt + 1

    for i in range(rows):
        start(i)
    sampled = [[int(truth[i][prompt])] for i in range(rows)]
    step_t: list[float] = []
    requests = 0
    before = drafter.online_stats()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        drafts = bp.propose(sampled, lens, buf, k=8)
        step_t.append(time.perf_counter() - t)
        for i, draft in enumerate(drafts):
            n0, tr = int(lens[i]), truth[i]
            if n0 >= len(tr):  # the stop token was seen by this step: a new request
                requests += 1
                start(i)
                sampled[i] = [int(truth[i][prompt])]
                continue
            n = 0
            while n < len(draft) and n0 + n < len(tr) and draft[n] == tr[n0 + n]:
                n += 1
            new = tr[n0 : n0 + n + 1]
            buf[i, n0 : n0 + len(new)] = new
            lens[i] = n0 + len(new)
            sampled[i] = new.tolist()
    drafter.wait_learned()
    after = drafter.online_stats()
    return {
        "requests": requests,
        "calls": {"step": stats(step_t)},
        "evictions": evictions(before, after, drafter.online_capacity),
        "online": after,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--rows", type=int, default=16, help="BatchProposer rows (0: skip)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--response-tokens", type=int, default=4000)
    ap.add_argument("--write", action="store_true", help="update benches/RESULTS.md")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    train = corpus(rng, 2000, 200)
    responses = corpus(rng, 300, args.response_tokens)
    fill = corpus(np.random.default_rng(9), 64, args.response_tokens)
    rows = []
    loads = [(f"requests, {t} thread{'s' * (t > 1)}", "requests", t) for t in args.threads]
    if args.rows:
        loads.append((f"BatchProposer, {args.rows} rows", "batch", args.rows))
    for load, kind, n in loads:
        for learning, capacity in LEARNING:
            drafter = drafter_for(train, capacity, fill)
            if kind == "requests":
                r = run_requests(drafter, responses, n, args.seconds)
            else:
                r = run_batch(drafter, responses, n, args.seconds)
            rows.append((load, learning, r))
            print(load, learning, {k: v for k, v in r.items() if k != "online"}, flush=True)
    lines = [
        "## Drafting while online learning evicts (issues 15, 27)",
        "",
        f"`python benches/bench_threads.py --threads {' '.join(map(str, args.threads))} "
        f"--rows {args.rows} --seconds {args.seconds:g}` on {machine()}. Responses of "
        f"{args.response_tokens} tokens; each load runs {args.seconds:g} s three times: online "
        "learning off; on, with an index filled to ~1M tokens before the clock starts and room "
        "to grow (`online_capacity = 1 << 24`: learning, no eviction); on, with the same index "
        "at its capacity (`1 << 20`: it evicts a quarter, a rebuild of ~786k tokens, every ~262k "
        "learned tokens). The second is the reference for the third: same index size, same "
        "drafting work. `requests`: each thread runs `session`, `propose(8)` + `extend` until the "
        "response is written, `finish()`; a heartbeat thread ticks every 1 ms (its lateness: "
        "the interpreter stalled). `BatchProposer`: one engine-like step drafts every row; an "
        "ended row (stop token) is learned in that step and restarts as a new request. Times "
        "in us: p50 / p99 / p99.9 / max.",
        "",
        "| load | online learning | call | p50 / p99 / p99.9 / max | heartbeat late "
        "p50 / p99 / p99.9 / max | requests | evictions |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for load, learning, r in rows:
        beat = fmt(r["heartbeat"]) if "heartbeat" in r else "-"
        for call, s in r["calls"].items():
            lines.append(
                f"| {load} | {learning} | `{call}` | {fmt(s)} | {beat} | {r['requests']} | "
                f"{r['evictions']} |"
            )
    lines.append("")
    by = {(load, learning): r for load, learning, r in rows}
    for load, _, _ in loads:
        ref, ev = by.get((load, LEARNING[1][0])), by.get((load, LEARNING[2][0]))
        if ref is None or ev is None:
            continue
        for call in ev["calls"]:
            a, b = ref["calls"][call], ev["calls"][call]
            lines.append(
                f"- {load}, `{call}`: evicting / not evicting: p99.9 {b[2]:.0f} / {a[2]:.0f} us "
                f"({b[2] / a[2]:.2f}x), max {b[3]:.0f} / {a[3]:.0f} us ({b[3] / a[3]:.2f}x)"
            )
    lines += [
        "",
        "Evictions are counted from the tokens learned during the run (each frees a quarter of "
        "the capacity). A finishing call that makes the index evict queues the response for the "
        "background learner (`rust/learner.rs`) and returns; the rebuild reads a copy of the "
        "kept tokens, so no lock is held across it. With more request threads than cores, the "
        "tails also hold the GIL's switch interval and the OS's scheduling, with or without "
        "learning.",
    ]
    print("\n".join(lines))
    if args.write:
        write_section("threads", "\n".join(lines))


if __name__ == "__main__":
    main()
