"""TASC-ft enrichment on repetitive input: time per budget on one long run of a single token.

Every new token there is four of the previous one (4, 16, 64, ... bytes), and every position
starts an occurrence of it: counting occurrences by walking each one cost ~4x more per token
added (issue 15, item 6). PCS now switches to one KMP scan of the text when the walks would cost
more than reading it. This times ``enrich_ids`` at budgets 4-8 (alpha = 1, so every candidate is
scored but none refused) next to a random corpus of the same size, where the walk is used.

Run: ``python benches/bench_enrich_repetitive.py [--tokens 1000000] [--write]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _results import machine, write_section

from tasc_rs.ft import enrich_ids


def timed(sequences: list[np.ndarray], strings: list[bytes], budget: int) -> tuple[float, int]:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        result = enrich_ids(sequences, strings, budget=budget, alpha=1.0, strict=False)
        best = min(best, time.perf_counter() - start)
    return best, max(len(t.text) for t in result.tokens)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--write", action="store_true", help="update benches/RESULTS.md")
    args = ap.parse_args()
    run = [np.zeros(args.tokens, dtype=np.int64)]
    rng = np.random.default_rng(0)
    rand = [rng.integers(0, 2, size=100) for _ in range(args.tokens // 100)]
    lines = [
        "## TASC-ft enrichment on repetitive input (issue 15)",
        "",
        f"`python benches/bench_enrich_repetitive.py --tokens {args.tokens} --write` on "
        f"{machine()}: `enrich_ids` over one run of {args.tokens:,} identical tokens and over "
        f"random two-token sequences of the same total, alpha = 1, best of 3. Before the KMP "
        "scan (commit 6e04d92, same input, measured in the same session): budget 4 0.83 s, "
        "5 2.50 s, 6 9.11 s, each token about 4x the last.",
        "",
        "| budget | one-token run | longest new token (bytes) | random tokens |",
        "|---:|---:|---:|---:|",
    ]
    for budget in range(4, 9):
        same, longest = timed(run, [b"a", b"b"], budget)
        other, _ = timed(rand, [b"a", b"b"], budget)
        lines.append(f"| {budget} | {same:.2f} s | {longest} | {other:.2f} s |")
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section("enrich_repetitive", text)


if __name__ == "__main__":
    main()
