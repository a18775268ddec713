"""What respelling costs: session open and one drafting step, with and without it, same run.

Respelling (``NgramDrafter.respelling``) re-encodes the prompt's words when a session opens and
counts them as side sequences; drafting steps then walk the same index as before. This times,
on each task's real 3-shot prompts (SmolLM2's tokenizer), ``drafter.session(prompt)`` and
``session.propose(8)`` for the default drafter (token aliases) and the same drafter with
respelling, interleaved prompt by prompt, and prints medians, p99 and ratios. The first pass
over the prompts is not timed (it fills the respeller's word cache, as a service's first
requests do).

    python benches/bench_respell.py [--prompts 100] [--repeat 5]
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
from finetune_task import INSTRUCTIONS  # noqa: E402

from tasc_rs import NgramDrafter, bpe_respelling, space_aliases  # noqa: E402


def prompts_of(task: str, tokenizer: object, limit: int) -> list[list[int]]:
    from tasc_rs.hf.task import TaskPrompt, load_rows

    train = load_rows(DATA / task / "train.jsonl")
    prompt = TaskPrompt(tokenizer, examples=train[:3], instruction=INSTRUCTIONS[task])
    rows = load_rows(DATA / task / "test.jsonl", limit=limit)
    return [prompt.ids(r["input"])[0].tolist() for r in rows]


def corpus_of(task: str, tokenizer: object) -> list[list[int]]:
    from tasc_rs.hf.corpus import tokenize_outputs
    from tasc_rs.hf.task import load_rows

    rows = load_rows(DATA / task / "train.jsonl")
    return [list(map(int, s)) for s in tokenize_outputs(tokenizer, [r["output"] for r in rows])]


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
        "| task | prompt tokens (median) | open, aliases | open, + respelling | ratio |"
        " propose(8), aliases | propose(8), + respelling | side sequences per prompt |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for task in args.tasks:
        prompts = prompts_of(task, tok, args.prompts)
        plain = NgramDrafter.from_corpus(corpus_of(task, tok), vocab_size=len(tok))
        plain.token_aliases = pairs
        spelled = NgramDrafter.from_bytes(plain.to_bytes())
        spelled.token_aliases = pairs
        spelled.respelling = table
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
        print(
            f"| {task} | {length:.0f} | {cell(opens['plain'])} | {cell(opens['spelled'])} |"
            f" {ratio:.2f}x | {cell(steps['plain'])} | {cell(steps['spelled'])} | {sides:.0f} |"
        )


if __name__ == "__main__":
    main()
