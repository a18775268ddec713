"""Proposer microbenchmark: tasc-rs against the peer drafters on the same corpora and contexts.

For every corpus (the train outputs of each ../shared/data task, and synthetic corpora of 1M and
10M tokens) and every context length (512 to 32k tokens) each proposer opens a session on the
context and then runs a decode-like loop: ``propose(k=8)``, then ``extend`` with the next true
token. Reported: p50/p99 of ``propose``, median session-open time, mean draft length (so equal work
is visible), and, for the drafters that index a corpus (tasc-rs and SuffixDecoding), build time
and resident memory measured in a fresh process. Ratios are against tasc-rs in the same run.

Run ``benches/setup_peers.sh`` first (it builds the peers into benches/.peers-venv), then

    benches/.peers-venv/bin/python benches/bench_peers.py --write   # updates RESULTS.md + plot
    python benches/bench_peers.py --tasks slurp --sizes --contexts 512   # a quick look
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
from _peers import PEERS, SuffixDrafter, available, status_lines, versions  # noqa: E402
from _results import TASKS, load_tokenizer, machine, outputs, write_results  # noqa: E402

from tasc_rs import NgramDrafter  # noqa: E402

CONTEXTS = [512, 2048, 8192, 32768]
K = 8


def task_tokens(tok: Any, task: str, split: str) -> list[list[int]]:
    return tok(outputs(task, split), add_special_tokens=False)["input_ids"]


def synthetic(pool: list[list[int]], tokens: int, seed: int, vocab: int) -> list[list[int]]:
    """Real outputs drawn with replacement, 5% of tokens replaced at random, to ``tokens``."""
    rng = random.Random(seed)
    docs, total = [], 0
    while total < tokens:
        doc = [t if rng.random() >= 0.05 else rng.randrange(vocab) for t in rng.choice(pool)]
        docs.append(doc)
        total += len(doc)
    return docs


def stream(docs: list[list[int]], length: int) -> np.ndarray:
    """Test outputs concatenated (cycled if needed) to ``length`` tokens."""
    out: list[int] = []
    while len(out) < length:
        for d in docs:
            out.extend(d)
            if len(out) >= length:
                break
    return np.asarray(out[:length], dtype=np.int32)


def corpora(
    tok: Any, tasks: list[str], sizes: list[int]
) -> list[tuple[str, list[list[int]], list[list[int]]]]:
    """(name, corpus docs, test docs) for the tasks and the synthetic corpora."""
    out = []
    pool: list[list[int]] = []
    for task in TASKS:
        train = task_tokens(tok, task, "train")
        if task in tasks:
            out.append((task, train, task_tokens(tok, task, "test")))
        pool.extend(train)
    for size in sizes:
        name = f"synthetic {size // 1_000_000}M"
        out.append((name, synthetic(pool, size, 1, len(tok)), synthetic(pool, 50_000, 2, len(tok))))
    return out


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def build(method: str, docs: list[list[int]]) -> Any:
    if method == "tasc-rs":
        return NgramDrafter.from_corpus(docs, n_max=4, min_count=1)
    return SuffixDrafter(docs)


def probe(method: str, path: str) -> None:
    """Child process: build once from the saved corpus, print build seconds and RSS growth."""
    with open(path, encoding="utf-8") as f:
        docs = json.load(f)
    before = rss_bytes()
    start = time.perf_counter()
    built = build(method, docs)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rss": rss_bytes() - before}))
    del built


def build_cost(method: str, docs: list[list[int]], tmp: Path) -> dict[str, float]:
    """Median build time over 3 fresh processes, and their median RSS growth."""
    path = tmp / "corpus.json"
    path.write_text(json.dumps(docs), encoding="utf-8")
    runs = []
    for _ in range(3 if sum(map(len, docs)) < 2_000_000 else 1):
        out = subprocess.run(
            [sys.executable, __file__, "--probe", method, str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "build_s": statistics.median(r["seconds"] for r in runs),
        "rss": statistics.median(r["rss"] for r in runs),
    }


def loop(drafter: Any, ctx: np.ndarray, steps: int) -> dict[str, Any]:
    """Open a session on ``ctx[:-steps]`` and decode the last ``steps`` tokens."""
    prompt, future = ctx[:-steps], ctx[-steps:]
    start = time.perf_counter()
    session = drafter.session(prompt)
    opened = time.perf_counter() - start
    samples, lengths = [], []
    for t in future:
        start = time.perf_counter()
        ids, _ = session.propose(K)
        samples.append(time.perf_counter() - start)
        lengths.append(len(ids))
        session.extend(np.array([t], dtype=np.int32))
    close = getattr(session, "close", None)
    if close is not None:
        close()
    return {"open_s": opened, "samples": samples, "lengths": lengths}


def run(args: argparse.Namespace) -> dict[str, Any]:
    tok = load_tokenizer()
    avail = available()
    peers = [p for p in PEERS if avail.get(p) is None]
    results: dict[str, Any] = {
        "available": avail,
        "versions": versions(),
        "steps": args.steps,
        "repeats": args.repeats,
        "rows": [],
    }
    tmp = Path(args.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    for name, docs, test in corpora(tok, args.tasks, args.sizes):
        n = sum(map(len, docs))
        print(f"{name}: {n:,} tokens", flush=True)
        corpus_methods = ["tasc-rs"] + (["suffix"] if avail["suffix"] is None else [])
        costs = {m: build_cost(m, docs, tmp) for m in corpus_methods}
        built = {m: build(m, docs) for m in corpus_methods}
        drafters: dict[str, Any] = dict(built)
        for p in peers:
            drafters[p] = PEERS[p]()
        for length in args.contexts:
            ctx = stream(test, length + args.steps)
            for method, d in drafters.items():
                samples, opens, lengths = [], [], []
                for rep in range(args.repeats):
                    r = loop(d, np.roll(ctx, rep * 997), args.steps)
                    samples += r["samples"]
                    opens.append(r["open_s"])
                    lengths += r["lengths"]
                a = np.array(samples) * 1e6
                row = {
                    "corpus": name,
                    "corpus_tokens": n,
                    "context": length,
                    "method": method,
                    "p50_us": float(np.percentile(a, 50)),
                    "p99_us": float(np.percentile(a, 99)),
                    "open_ms": 1e3 * statistics.median(opens),
                    "mean_draft": float(np.mean(lengths)),
                    **costs.get(method, {}),
                }
                results["rows"].append(row)
                print(
                    f"  ctx {length:>6} {method:<13} p50 {row['p50_us']:8.1f} us  "
                    f"p99 {row['p99_us']:8.1f} us  open {row['open_ms']:7.2f} ms  "
                    f"draft {row['mean_draft']:.2f}",
                    flush=True,
                )
        del built, drafters
    return results


def markdown(res: dict[str, Any]) -> str:
    rows = res["rows"]
    base = {(r["corpus"], r["context"]): r for r in rows if r["method"] == "tasc-rs"}
    lines = [
        "## Proposers side by side (benches/bench_peers.py)",
        "",
        f"Machine: {machine()}. {status_lines(res)[0]} Each cell: a session opened on the "
        f"context, then {res['steps']} steps "
        f"(x{res['repeats']} contexts) of "
        f"`propose(k={K})` followed by `extend(next token)`; latency is of `propose` only. "
        "tasc-rs: n_max 4, lambda 0.75, min_count 1, no probability threshold. SuffixDecoding: "
        "vLLM's defaults (depth 24, min_token_prob 0.1, spec factor 1). hf-lookup and "
        "llama-lookup: max n-gram 2 (their defaults); vllm-ngram: n-gram 1..4. The lookup peers "
        "search the context only (they take no corpus). Ratio = peer p50 / tasc-rs p50.",
        "",
    ]
    lines += status_lines(res)[1:]
    lines += [
        "| corpus | context | method | propose p50 (us) | p99 (us) | ratio p50 | open (ms) "
        "| mean draft | build (s) | memory (MB) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        b = base[(r["corpus"], r["context"])]
        build = f"{r['build_s']:.2f}" if "build_s" in r else "-"
        mem = f"{r['rss'] / 2**20:.0f}" if "rss" in r else "-"
        lines.append(
            f"| {r['corpus']} ({r['corpus_tokens']:,} tok) | {r['context']:,} | {r['method']} "
            f"| {r['p50_us']:.1f} | {r['p99_us']:.1f} | {r['p50_us'] / b['p50_us']:.1f}x "
            f"| {r['open_ms']:.2f} | {r['mean_draft']:.2f} | {build} | {mem} |"
        )
    lines += ["", "![proposer latency against context length](plots/proposer_latency.png)"]
    return "\n".join(lines) + "\n"


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["rows"]
    names = list(dict.fromkeys(r["corpus"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for method in dict.fromkeys(r["method"] for r in rows):
            pts = [r for r in rows if r["corpus"] == name and r["method"] == method]
            ax.plot([r["context"] for r in pts], [r["p50_us"] for r in pts], "o-", label=method)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("context tokens")
    axes[0][0].set_ylabel("propose p50 (us)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--probe":
        probe(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tasks", nargs="*", default=TASKS)
    parser.add_argument(
        "--sizes",
        nargs="*",
        type=int,
        default=[1_000_000, 10_000_000],
        help="synthetic corpus sizes in tokens",
    )
    parser.add_argument("--contexts", nargs="+", type=int, default=CONTEXTS)
    parser.add_argument("--tmp", default="/tmp/tasc_bench_peers")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    res = run(args)
    md = markdown(res)
    print(md)
    if args.write:
        write_results("peers_proposer", md, res)
        plot(res, ROOT / "benches" / "plots" / "proposer_latency.png")


if __name__ == "__main__":
    main()
