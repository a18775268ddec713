"""Token trees against chains, under this machine's verify cost and under a GPU-like one (issue 16).

Trees and chains are cut by the same rule: the node (or token) count with the most expected
tokens per unit of the verify cost. On this CPU a verified position costs real time, so both are
cut short and a tree spends little on branches; on a GPU verifying up to ~24 positions costs
about one, and a tree keeps its whole node budget. This script measures both cases on the same
prompts, with the default drafter (``NgramDrafter.from_corpus``, the tuned preset) in
``tasc_rs.hf.generate``:

- ``measured``: ``verify_cost="auto"`` (the profile :func:`tasc_rs.hf.calibrate` measures here);
- ``flat``: ``verify_cost=(1.0,) * 25``, every position free, as on a GPU (tokens per forward is
  what that device would see; the CPU seconds of this case are not a GPU's).

Per row: tokens per forward of chains (``tree_width=1``) and trees (the default width), their
ratio, each method's CPU seconds and speedup over plain greedy, and whether every output equals
plain greedy's.

    python benches/bench_trees.py [--limit 30] [--write]
        [--finetuned slurp=~/.cache/tasc_rs/ft/slurp e2e_nlg=~/.cache/tasc_rs/ft/e2e_nlg]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from _results import DATA, TASKS, machine, write_results
from e2e_peers import task_data
from e2e_spec import INSTRUCTIONS

from tasc_rs import NgramDrafter
from tasc_rs.drafter import DEFAULT_TREE_WIDTH
from tasc_rs.embedded import load_model
from tasc_rs.ft.cli import finetuned_prompt
from tasc_rs.hf import calibrate, generate
from tasc_rs.hf.adaptive import CANDIDATE_K
from tasc_rs.hf.stats import SpecStats
from tasc_rs.hf.task import TaskPrompt, load_rows

FLAT = (1.0,) * (max(CANDIDATE_K) + 1)
PROFILES: dict[str, Any] = {"measured": "auto", "flat": FLAT}


def bench(
    model: Any, tokenizer: Any, task: str, label: str, prompt: TaskPrompt, limit: int
) -> list[dict[str, Any]]:
    test, corpus, common = task_data(tokenizer, task, limit)
    methods = [(p, w) for p in PROFILES for w in (1, DEFAULT_TREE_WIDTH)]
    # A fresh drafter per method: online learning never crosses methods.
    drafters = {m: NgramDrafter.from_corpus(corpus) for m in methods}
    stats = {m: SpecStats() for m in methods}
    seconds = dict.fromkeys([*methods, "plain"], 0.0)
    same = dict.fromkeys(methods, 0)
    model.generate(prompt.ids(test[0]["input"]).to(model.device), max_new_tokens=2)  # warm-up
    calibrate(model)  # measured once per model, before any timing
    for row in test:
        ids = prompt.ids(row["input"]).to(model.device)
        start = time.perf_counter()
        plain = model.generate(ids, **common)
        seconds["plain"] += time.perf_counter() - start
        for profile, width in methods:
            start = time.perf_counter()
            out = generate(
                model,
                ids,
                drafters[profile, width],
                verify_cost=PROFILES[profile],
                tree_width=width,
                **common,
            )
            seconds[profile, width] += time.perf_counter() - start
            stats[profile, width] += out.stats
            same[profile, width] += int(torch.equal(out.sequences, plain))
    rows = []
    for profile in PROFILES:
        chain, tree = (profile, 1), (profile, DEFAULT_TREE_WIDTH)
        rows.append(
            {
                "task": task,
                "model": label,
                "profile": profile,
                "prompts": len(test),
                "chain_tpf": stats[chain].tokens_per_forward,
                "tree_tpf": stats[tree].tokens_per_forward,
                "ratio": stats[tree].tokens_per_forward / stats[chain].tokens_per_forward,
                "chain_speedup": seconds["plain"] / seconds[chain],
                "tree_speedup": seconds["plain"] / seconds[tree],
                "identical": min(same[chain], same[tree]),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(rows: list[dict[str, Any]], limit: int, finetuned: list[str]) -> str:
    lines = [
        "## Token trees against chains (benches/bench_trees.py, issue 16)",
        "",
        f"`python benches/bench_trees.py --limit {limit}"
        + (" --finetuned " + " ".join(finetuned) if finetuned else "")
        + f" --write` on {machine()}; SmolLM2-135M-Instruct, greedy, the first {limit} test "
        "prompts per row (base model 3-shot, fine-tuned models 0-shot); drafter: "
        "`NgramDrafter.from_corpus(train outputs)` in `tasc_rs.hf.generate`, chains "
        f"(`tree_width=1`) against trees (the default width, {DEFAULT_TREE_WIDTH}), both cut by "
        "expected tokens per unit of verify cost. `measured`: the profile `calibrate` measures "
        "on this CPU (the default); `flat`: every verified position free, as on a GPU (its "
        "speedups are this CPU's, not a GPU's). Speedup: plain greedy's total time over the "
        "method's. `identical`: outputs equal to plain greedy's (the lower of the two methods).",
        "",
        "| task | model | verify cost | chain tok/fwd | tree tok/fwd | tree / chain | "
        "chain speedup | tree speedup | identical |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['model']} | {r['profile']} | {r['chain_tpf']:.2f} | "
            f"{r['tree_tpf']:.2f} | {r['ratio']:.2f}x | {r['chain_speedup']:.2f}x | "
            f"{r['tree_speedup']:.2f}x | {r['identical']}/{r['prompts']} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=TASKS)
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--shots", type=int, default=3)
    p.add_argument("--finetuned", nargs="*", action="extend", default=[], metavar="TASK=DIR")
    p.add_argument("--write", action="store_true")
    args = p.parse_args()
    rows: list[dict[str, Any]] = []
    model, tokenizer = load_model(None)
    for task in args.tasks:
        train = load_rows(DATA / task / "train.jsonl")
        prompt = TaskPrompt(tokenizer, examples=train[: args.shots], instruction=INSTRUCTIONS[task])
        rows += bench(model, tokenizer, task, f"base, {args.shots}-shot", prompt, args.limit)
    for spec in args.finetuned:
        task, _, path = spec.partition("=")
        model, tokenizer = load_model(str(Path(path).expanduser()))
        prompt = finetuned_prompt(Path(path).expanduser(), tokenizer)
        rows += bench(model, tokenizer, task, "fine-tuned, 0-shot", prompt, args.limit)
    md = markdown(rows, args.limit, args.finetuned)
    print(md)
    if args.write:
        write_results("trees", md, rows)


if __name__ == "__main__":
    main()
