"""What the request-reading sources cost: session open and one drafting step, same run.

Respelling (``NgramDrafter.respelling``) re-encodes the prompt's words when a session opens and
counts them as side sequences; the copy pointer (a drafter built from pairs) maps the prompt's
token pairs when a session opens and looks up one answer context per drafted token. This
times, on each task's real 3-shot prompts (SmolLM2's tokenizer), ``drafter.session(prompt)``
and ``session.propose(8)`` for the drafter of the answers alone with token aliases (the
defaults before) and the drafter ``build_drafter`` now makes (pairs, aliases, respelling),
interleaved prompt by prompt, and prints medians, p99 and ratios. The first pass over the
prompts is not timed (it fills the respeller's word cache, as a service's first requests do).

    python benches/bench_source_cost.py [--prompts 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
from _results import DATA, TASKS, load_tokenizer, machine  # noqa: E402
from bench_sources import drafters  # noqa: E402
from finetune_task import INSTRUCTIONS  # noqa: E402

from tasc_rs import bpe_respelling, space_aliases  # noqa: E402


def prompts_of(task: str, tokenizer: object, limit: int) -> list[list[int]]:
    from tasc_rs.hf.task import TaskPrompt, load_rows

    train = load_rows(DATA / task / "train.jsonl")
    prompt = TaskPrompt(tokenizer, examples=train[:3], instruction=INSTRUCTIONS[task])
    rows = load_rows(DATA / task / "test.jsonl", limit=limit)
    return [prompt.ids(r["input"])[0].tolist() for r in rows]


def time_us(fn: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - t) * 1e6)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=100)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--tasks", nargs="*", default=TASKS)
    args = p.parse_args()
    tok = load_tokenizer()
    pairs, table = space_aliases(tok), bpe_respelling(tok)
    print(f"Machine: {machine()}. Median / p99 in microseconds, {args.repeat} runs per prompt.")
    print(
        "| task | prompt tokens (median) | open, before | open, now | ratio |"
        " propose(8), before | propose(8), now | ratio | side sequences per prompt |"
        " copy anchors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for task in args.tasks:
        prompts = prompts_of(task, tok, args.prompts)
        made = drafters(task, tok)
        plain, spelled = made["answers"], made["pairs"]
        assert spelled.respelling == table and plain.token_aliases == pairs
        for prompt in prompts:  # warm: the word cache fills as a service's first requests do
            spelled.session(prompt)
        opens: dict[str, list[float]] = {"plain": [], "spelled": []}
        steps: dict[str, list[float]] = {"plain": [], "spelled": []}
        for prompt in prompts:
            for name, d in (("plain", plain), ("spelled", spelled)):
                opens[name] += time_us(lambda d=d, prompt=prompt: d.session(prompt), args.repeat)
                s = d.session(prompt)
                steps[name] += time_us(lambda s=s: s.propose(8), args.repeat)
        sides = statistics.median(len(spelled._store.respelled(q)) for q in prompts)
        length = statistics.median(len(q) for q in prompts)

        def cell(v: list[float]) -> str:
            ordered = sorted(v)
            return f"{statistics.median(v):.1f} / {ordered[int(len(v) * 0.99) - 1]:.1f}"

        ratio = statistics.median(opens["spelled"]) / statistics.median(opens["plain"])
        step = statistics.median(steps["spelled"]) / statistics.median(steps["plain"])
        print(
            f"| {task} | {length:.0f} | {cell(opens['plain'])} | {cell(opens['spelled'])} |"
            f" {ratio:.2f}x | {cell(steps['plain'])} | {cell(steps['spelled'])} | {step:.2f}x |"
            f" {sides:.0f} | {spelled.stats()['copy_anchors']} |"
        )


if __name__ == "__main__":
    main()
