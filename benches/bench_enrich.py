"""TASC-ft enrichment benchmark: speed on a ~5M-token corpus, compression on slurp.

1. Speed: M = 1000 over medquad's train outputs tokenized with SmolLM2's tokenizer and repeated
   to ~5M tokens, with the incremental Rust loop (one thread) against a naive loop that
   recounts every n-gram at every step (``tests/reference_enrich.py`` without PCS, which favours
   it). The naive loop is time-limited: its per-iteration time is measured over a few
   iterations and extrapolated to M = 1000.
2. Compression on slurp: enrichment over the train outputs, M in {250, 500, 1000}, with and
   without the PCS filter; mean tokens per test output with the expanded Hugging Face tokenizer,
   the ratio against the base tokenizer, and how often encoding gives the predicted merges.

Run: ``python benches/bench_enrich.py [--write]``
(``--write`` updates the enrich section of benches/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benches"))
from _results import write_section  # noqa: E402
from reference_enrich import replace  # noqa: E402

from tasc_rs.ft import enrich_ids, expand_tokenizer, token_bytes  # noqa: E402


def outputs(task: str, split: str) -> list[str]:
    with (DATA / task / f"{split}.jsonl").open() as f:
        return [json.loads(line)["output"] for line in f]


def naive_seconds_per_iteration(seqs: list[list[int]], n_max: int, limit_s: float) -> float:
    """Mean seconds of full recount + pick + merge iterations, run until ``limit_s`` passes."""
    from collections import Counter

    current = [list(s) for s in seqs]
    next_id = max(max(s) for s in seqs if s) + 1
    done, start = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - start < limit_s:
        counts: Counter[tuple[int, ...]] = Counter()
        for seq in current:
            for n in range(2, n_max + 1):
                counts.update(zip(*(seq[i:] for i in range(n)), strict=False))
        key = min(counts, key=lambda k: (-counts[k] * (len(k) - 1), len(k), k))
        current = [replace(s, key, next_id) for s in current]
        next_id += 1
        done += 1
    return (time.perf_counter() - start) / done


def speed(tokenizer: Any, vocab: list[bytes], target_tokens: int, naive_limit_s: float) -> dict:
    texts = outputs("medquad", "train")
    base = tokenizer(texts, add_special_tokens=False)["input_ids"]
    per_copy = sum(map(len, base))
    copies = max(1, round(target_tokens / per_copy))
    seqs = base * copies
    total = per_copy * copies
    rows = {}
    for name, alpha in [("with PCS (alpha=0.05)", 0.05), ("no PCS (alpha=1)", 1.0)]:
        t0 = time.perf_counter()
        r = enrich_ids(seqs, vocab, 1000, alpha=alpha, byte_level=True)
        rows[name] = (time.perf_counter() - t0, r.compression_ratio(), len(r.skipped))
    naive = naive_seconds_per_iteration(seqs, 4, naive_limit_s)
    return {"tokens": total, "copies": copies, "rows": rows, "naive_per_iter": naive}


def compression(tokenizer: Any, vocab: list[bytes]) -> list[dict]:
    train, test = outputs("slurp", "train"), outputs("slurp", "test")
    base_train = tokenizer(train, add_special_tokens=False)["input_ids"]
    base_test = tokenizer(test, add_special_tokens=False)["input_ids"]
    base_mean = sum(map(len, base_test)) / len(test)
    rows = []
    for label, alpha, min_count in [
        ("no PCS", 1.0, 2),
        ("PCS alpha=0.05", 0.05, 2),
        ("no PCS", 1.0, 1),
        ("PCS alpha=0.05", 0.05, 1),
    ]:
        full = enrich_ids(
            base_train, vocab, 1000, alpha=alpha, min_count=min_count, strict=False, byte_level=True
        )
        for m in (250, 500, 1000):
            r = full.truncate(m)
            expanded = expand_tokenizer(tokenizer, r)
            row = {"filter": label, "min_count": min_count, "M": m, "added": len(r.tokens)}
            for split, texts, base in [("train", train, base_train), ("test", test, base_test)]:
                enc = expanded(texts, add_special_tokens=False)["input_ids"]
                exact = sum(r.apply(b).tolist() == e for b, e in zip(base, enc, strict=True))
                row[f"exact_{split}"] = exact / len(texts)
                row[f"mean_{split}"] = sum(map(len, enc)) / len(texts)
            row["ratio_test"] = base_mean / row["mean_test"]
            rows.append(row)
    return rows


def table(speed_result: dict, comp: Sequence[dict], base_mean: float) -> str:
    s = speed_result
    naive_total = s["naive_per_iter"] * 1000
    lines = [
        "## TASC-ft enrichment benchmark (benches/bench_enrich.py)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; the loop is single-threaded.",
        "",
        f"### Speed: M = 1000 over {s['tokens']:,} tokens "
        f"(medquad train outputs x{s['copies']}, SmolLM2 tokenizer)",
        "",
        "| loop | time | compression | skipped |",
        "|---|---|---|---|",
    ]
    for name, (secs, ratio, skipped) in s["rows"].items():
        lines.append(f"| Rust incremental, {name} | {secs:.1f} s | x{ratio:.2f} | {skipped} |")
    lines += [
        f"| naive recount (Python, no PCS), extrapolated | ~{naive_total / 3600:.1f} h "
        f"({s['naive_per_iter']:.1f} s/iteration x 1000) | | |",
        "",
        "The naive loop recounts all n-grams and rewrites the corpus each iteration; its time is "
        "measured over a few iterations and multiplied by 1000 (not run to the end).",
        "",
        "### Compression on slurp (train outputs enriched, test outputs measured)",
        "",
        f"Base tokenizer: {base_mean:.2f} tokens per test output. `exact` = share of outputs the "
        "expanded HF tokenizer encodes exactly as the enrichment predicts.",
        "",
        "| filter | min_count | M | added | tokens/output (test) | ratio (test) "
        "| exact (train) | exact (test) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in comp:
        lines.append(
            f"| {r['filter']} | {r['min_count']} | {r['M']} | {r['added']} | "
            f"{r['mean_test']:.2f} | x{r['ratio_test']:.2f} | {r['exact_train']:.2%} | "
            f"{r['exact_test']:.2%} |"
        )
    lines += [
        "",
        "With min_count = 2, slurp's 2,033 train outputs run out of candidates before M = 1000 "
        "(`added` < M).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update benches/RESULTS.md")
    parser.add_argument("--tokens", type=int, default=5_000_000)
    parser.add_argument("--naive-seconds", type=float, default=60.0)
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from tasc_rs.embedded import ensure_embedded

    tokenizer = AutoTokenizer.from_pretrained(str(ensure_embedded(verbose=False)))
    vocab = token_bytes(tokenizer)
    comp = compression(tokenizer, vocab)
    test = outputs("slurp", "test")
    base_mean = sum(map(len, tokenizer(test, add_special_tokens=False)["input_ids"])) / len(test)
    sp = speed(tokenizer, vocab, args.tokens, args.naive_seconds)
    text = table(sp, comp, base_mean)
    print(text)
    if args.write:
        write_section("enrich", text)


if __name__ == "__main__":
    main()
