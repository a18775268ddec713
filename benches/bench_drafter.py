"""Drafter benchmark: build speed, memory and proposal latency across the Python boundary.

Compares tasc-rs with the plain pure-Python dict implementation (tests/reference_ngram.py) in the
same run and prints medians and ratios; `--write` updates the drafter section of benches/RESULTS.md.

Corpora are task outputs from ../shared/data tokenized with SmolLM2-135M-Instruct's tokenizer
(the embedded default; fetched and cached by tasc_rs.embedded on first use).

    python benches/bench_drafter.py            # prints the tables
    python benches/bench_drafter.py --write    # also updates the drafter section of RESULTS.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benches"))
from _results import TASKS, load_tokenizer, machine, outputs, write_section  # noqa: E402
from reference_ngram import ReferenceDrafter  # noqa: E402

import tasc_rs  # noqa: E402
from tasc_rs import NgramDrafter  # noqa: E402


def tokenize(tok, texts: list[str]) -> list[list[int]]:  # type: ignore[no-untyped-def]
    return tok(texts, add_special_tokens=False)["input_ids"]


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def percentiles_us(samples: list[float]) -> tuple[float, float]:
    a = np.array(samples) * 1e6
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def memory_table(tok) -> list[str]:  # type: ignore[no-untyped-def]
    rows = [
        "| corpus (train outputs) | tokens | build median (ms) | Mtok/s "
        "| bytes/token (min_count=1) "
        "| bytes/token (min_count=5) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for task in TASKS:
        seqs = tokenize(tok, outputs(task, "train"))
        n = sum(map(len, seqs))
        tokens = np.fromiter((t for s in seqs for t in s), dtype=np.uint32, count=n)
        offsets = np.cumsum([0] + [len(s) for s in seqs])
        build = timed(lambda t=tokens, o=offsets: NgramDrafter.from_flat(t, o, min_count=1), 5)
        d1 = NgramDrafter.from_flat(tokens, offsets, min_count=1)
        d5 = NgramDrafter.from_flat(tokens, offsets, min_count=5)
        rows.append(
            f"| {task} | {n:,} | {build * 1e3:.1f} | {n / build / 1e6:.1f} | "
            f"{d1.stats()['bytes'] / n:.2f} | {d5.stats()['bytes'] / n:.2f} |"
        )
    return rows


def big_corpus(tok) -> tuple[list[list[int]], list[list[int]]]:  # type: ignore[no-untyped-def]
    """~1M tokens of medquad train answers, and 2k-token contexts from medquad test answers."""
    seqs, total = [], 0
    for s in tokenize(tok, outputs("medquad", "train")):
        seqs.append(s)
        total += len(s)
        if total >= 1_000_000:
            break
    test = [t for s in tokenize(tok, outputs("medquad", "test")) for t in s]
    contexts = [test[i : i + 2048] for i in range(0, len(test) - 2048, 997)][:64]
    return seqs, contexts


def latency_table(tok) -> list[str]:  # type: ignore[no-untyped-def]
    seqs, contexts = big_corpus(tok)
    n = sum(map(len, seqs))
    flat = np.fromiter((t for s in seqs for t in s), dtype=np.uint32, count=n)
    offsets = np.cumsum([0] + [len(s) for s in seqs])
    build_rs = timed(lambda: NgramDrafter.from_flat(flat, offsets, min_count=1), 5)
    t = time.perf_counter()
    ref = ReferenceDrafter(seqs, n_max=4, min_count=1)
    build_py = time.perf_counter() - t
    drafter = NgramDrafter.from_flat(flat, offsets, min_count=1)

    sessions = [drafter.session(c) for c in contexts]
    rs_samples, stateless = [], []
    for _ in range(300):
        for s in sessions:
            t = time.perf_counter()
            s.propose(8)
            rs_samples.append(time.perf_counter() - t)
    for c in contexts[:16]:
        arr = np.array(c, dtype=np.int64)
        for _ in range(5):
            t = time.perf_counter()
            drafter.propose(arr, 8)
            stateless.append(time.perf_counter() - t)
    tables = [ref.context_table(c) for c in contexts[:16]]
    py_samples = []
    for c, table in zip(contexts[:16], tables, strict=True):
        for _ in range(5):
            t = time.perf_counter()
            ref.propose(c, 8, table)
            py_samples.append(time.perf_counter() - t)
    # Same drafts from both: the benchmark compares equal work.
    for c, table in zip(contexts[:16], tables, strict=True):
        assert drafter.propose(c, 8)[0].tolist() == ref.propose(c, 8, table)[0]
    rs50, rs99 = percentiles_us(rs_samples)
    sl50, sl99 = percentiles_us(stateless)
    py50, py99 = percentiles_us(py_samples)
    return [
        f"Corpus: {n:,} tokens (medquad train answers, n_max=4, min_count=1); contexts: "
        f"{len(contexts)} x 2,048 tokens of medquad test answers; k = 8.",
        "",
        "| operation | tasc-rs p50 | tasc-rs p99 | pure Python p50 | pure Python p99 "
        "| ratio (p50) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| session.propose(8) | {rs50:.2f} us | {rs99:.2f} us | {py50:.0f} us | {py99:.0f} us "
        f"| {py50 / rs50:,.0f}x |",
        f"| stateless propose(2k context, 8) | {sl50:.0f} us | {sl99:.0f} us | - | - | - |",
        f"| build 1M tokens | {build_rs * 1e3:.0f} ms ({n / build_rs / 1e6:.1f} Mtok/s) | | "
        f"{build_py * 1e3:.0f} ms | | {build_py / build_rs:,.0f}x |",
        f"| store bytes / corpus token | {drafter.stats()['bytes'] / n:.2f} | | | | |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update benches/RESULTS.md")
    args = parser.parse_args()
    tok = load_tokenizer()
    lines = [
        "## Drafter core (issue 2)",
        "",
        f"Machine: {machine()}, tasc-rs {tasc_rs.__version__}. "
        "Command: `python benches/bench_drafter.py --write`.",
        "",
        *latency_table(tok),
        "",
        "Build and memory on the task corpora (SmolLM2 tokenizer, n_max = 4):",
        "",
        *memory_table(tok),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section("drafter", text)


if __name__ == "__main__":
    main()
