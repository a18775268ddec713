"""The batch proposer's drafting pool at GPU settings (full chains): 1 thread against the pool
sized by the ``threads`` setting (issue 27, section 4).

Rows are medquad text (the SmolLM2 tokenizer), a drafter from 3,000 other medquad answers, every
row 2048 tokens long and gaining one token per step, drafts of up to 8 tokens with no cut (what
a GPU engine asks for). Each configuration runs ``--steps`` steps after a warm-up; rounds
alternate the configurations, and the table gives the median step over rounds and its spread.

    python benches/bench_pool.py [--rows 64 256] [--threads 1 2] [--rounds 3] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from _results import DATA, machine, write_section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="update benches/RESULTS.md")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    from tasc_rs.embedded import embedded_model_dir
    from tasc_rs.hf.corpus import build_drafter

    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    with open(DATA / "medquad" / "train.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["output"] for line in f]
    stream = np.array(tok("\n".join(texts[:3000]))["input_ids"], dtype=np.int32)
    drafter = build_drafter(tok, texts[3000:6000], progress=False)
    threads = sorted(set(args.threads))
    configs = [(r, t) for r in args.rows for t in threads]
    steps: dict[tuple[int, int], list[float]] = {c: [] for c in configs}
    width = args.context + args.steps + 16
    for _ in range(args.rounds):
        for rows, t in configs:
            rng = np.random.default_rng(rows)
            buf = np.zeros((rows, width), dtype=np.int32)
            starts = rng.integers(0, len(stream) - width, size=rows)
            for i, s in enumerate(starts):
                buf[i] = stream[s : s + width]
            bp = drafter.batch_proposer(max_requests=4 * rows, threads=t)
            num = np.full(rows, args.context, dtype=np.int32)
            times = []
            for step in range(args.steps + 3):
                sampled = [[int(buf[i, num[i] - 1])] for i in range(rows)]
                start = time.perf_counter()
                bp.propose(sampled, num, buf, k=8)
                if step >= 3:  # the first step indexes every row's context
                    times.append(time.perf_counter() - start)
                num += 1
            steps[(rows, t)].append(float(np.median(times)) * 1e6)
    lines = [
        "## The batch proposer's drafting pool, full chains (issue 27)",
        "",
        f"`python benches/bench_pool.py --rounds {args.rounds}` on {machine()}: medquad rows of "
        f"{args.context} tokens (SmolLM2 tokenizer), a drafter from 3,000 other medquad answers, "
        "each row gaining one token a step, drafts of up to 8 tokens with no cut (the GPU "
        f"setting); median step over {args.steps} steps per round, rounds alternating the "
        "configurations; the table: median over rounds (min-max). This machine has "
        f"{os.cpu_count()} cores: the pool cannot show more here. The pool drafts batches of 96 "
        "rows or more (smaller ones cost less than handing them out), so 64 rows run on one "
        "thread either way.",
        "",
        "| rows | threads | step | per row | vs 1 thread |",
        "|---:|---:|---:|---:|---:|",
    ]
    for rows, t in configs:
        xs = steps[(rows, t)]
        med = float(np.median(xs))
        base = float(np.median(steps[(rows, threads[0])]))
        lines.append(
            f"| {rows} | {t} | {med:.0f} us ({min(xs):.0f}-{max(xs):.0f}) | "
            f"{med / rows:.2f} us | {base / med:.2f}x |"
        )
    print("\n".join(lines))
    if args.write:
        write_section("pool", "\n".join(lines))


if __name__ == "__main__":
    main()
