"""Batched TASC-spec in the Hugging Face loop against plain batched generation (issue 17).

For each model/task row and batch size (1, 4, 16), the same test prompts (left-padded batches)
go through:

- ``plain``: batched ``model.generate(do_sample=False)``;
- ``prompt lookup``: transformers' prompt lookup decoding (batch 1 only: it refuses more);
- ``per-row loop``: tasc-rs decoding each row on its own, one after another (the loop before
  the batched one; its time does not depend on the batch size);
- ``batched loop``: ``tasc_rs.hf.generate`` on the whole batch (one forward pass per step).

Prints output tokens/s, seconds per batch and the speedup over plain batched generation at the
same batch size, and checks that every output is identical to plain's.

    python benches/bench_batched.py [--prompts 16] [--write]
        [--finetuned slurp=~/.cache/tasc_rs/ft/slurp]
    python benches/bench_batched.py --sweep-widths --finetuned slurp=~/.cache/tasc_rs/ft/slurp
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from _results import DATA, machine, write_results

from tasc_rs import NgramDrafter
from tasc_rs.embedded import load_model
from tasc_rs.ft.cli import finetuned_prompt
from tasc_rs.hf import calibrate, generate
from tasc_rs.hf.corpus import build_drafter
from tasc_rs.hf.task import SLURP_INSTRUCTION, TaskPrompt, load_rows

INSTRUCTIONS = {
    "slurp": SLURP_INSTRUCTION,
    "e2e_nlg": "Write a one-paragraph restaurant description from the meaning representation.",
    "spider_dev": "Write the SQL query that answers the question. Answer with the SQL only.",
}
MAX_NEW = {"slurp": 48, "e2e_nlg": 64, "spider_dev": 64}
BATCHES = [1, 4, 16]


def batches(prompts: list[list[int]], size: int, pad: int) -> list[tuple[torch.Tensor, Any]]:
    out = []
    for i in range(0, len(prompts), size):
        group = prompts[i : i + size]
        width = max(len(p) for p in group)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in group])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in group])
        out.append((ids, mask))
    return out


def continuation(row: list[int], width: int, eos: set[int], pad: int) -> list[int]:
    """New tokens of one output row, up to and including its first EOS."""
    new = row[width:]
    for i, t in enumerate(new):
        if t in eos:
            return new[: i + 1]
    while new and new[-1] == pad:
        new.pop()
    return new


def bench(
    model: Any,
    tokenizer: Any,
    label: str,
    prompts: list[list[int]],
    drafter_bytes: bytes,
    max_new: int,
) -> list[dict[str, Any]]:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    eos_ids = model.generation_config.eos_token_id
    eos = set(eos_ids if isinstance(eos_ids, list) else [eos_ids])
    kw = {"do_sample": False, "max_new_tokens": max_new, "pad_token_id": pad}
    rows = []
    reference: list[list[int]] | None = None
    for size in BATCHES:  # the verify cost is measured once per batch size, before timing
        calibrate(model, batch=size)
        groups = batches(prompts, size, pad)
        methods: list[str] = ["plain", "per-row loop", "batched loop"]
        if size == 1:
            methods.insert(1, "prompt lookup")
        times: dict[str, list[float]] = {}
        outputs: dict[str, list[list[int]]] = {}
        for method in methods:
            drafter = NgramDrafter.from_bytes(drafter_bytes)  # fresh: no learned responses
            times[method], outputs[method] = [], []
            for ids, mask in groups:
                t = time.perf_counter()
                if method == "plain":
                    out = model.generate(ids, attention_mask=mask, **kw)
                elif method == "prompt lookup":
                    out = model.generate(
                        ids, attention_mask=mask, prompt_lookup_num_tokens=10, **kw
                    )
                elif method == "per-row loop":
                    parts = []
                    for r in range(ids.shape[0]):
                        start = int((mask[r] == 0).sum())
                        one = generate(model, ids[r : r + 1, start:], drafter, **kw).sequences
                        parts.append([pad] * start + one[0].tolist())
                    width = max(len(p) for p in parts)
                    out = torch.tensor([p + [pad] * (width - len(p)) for p in parts])
                else:
                    out = generate(model, ids, drafter, attention_mask=mask, **kw).sequences
                times[method].append(time.perf_counter() - t)
                outputs[method] += [
                    continuation(row, ids.shape[1], eos, pad) for row in out.tolist()
                ]
        reference = outputs["plain"]
        tokens = sum(len(o) for o in reference)
        base = sum(times["plain"])
        for method in methods:
            total = sum(times[method])
            rows.append(
                {
                    "model": label,
                    "batch": size,
                    "method": method,
                    "tokens_per_s": tokens / total,
                    "seconds_per_batch": statistics.median(times[method]),
                    "speedup": base / total,
                    "identical": sum(
                        a == b for a, b in zip(outputs[method], reference, strict=True)
                    ),
                    "prompts": len(reference),
                }
            )
            print(rows[-1], flush=True)
    return rows


def sweep_widths(
    model: Any, tokenizer: Any, prompts: list[list[int]], drafter_bytes: bytes, max_new: int
) -> None:
    """Batch 16, the batched loop with the step's common draft width fixed at 1..8 against the
    width the cost model picks (best of 2 runs each): is the pick where the time is least?"""
    import tasc_rs.hf.batched as batched

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    kw = {"do_sample": False, "max_new_tokens": max_new, "pad_token_id": pad}
    calibrate(model, batch=16)
    ids, mask = batches(prompts, 16, pad)[0]
    chosen = batched.batch_width

    def run() -> tuple[float, Any]:
        best, out = float("inf"), None
        for _ in range(2):
            drafter = NgramDrafter.from_bytes(drafter_bytes)
            t = time.perf_counter()
            out = generate(model, ids, drafter, attention_mask=mask, **kw)
            best = min(best, time.perf_counter() - t)
        return best, out

    t = time.perf_counter()
    model.generate(ids, attention_mask=mask, **kw)
    print(f"plain batched model.generate: {time.perf_counter() - t:.2f} s")
    run()  # warm-up
    for width in [None, 1, 2, 3, 4, 6, 8]:
        picked: list[int] = []

        def fixed(
            drafts: Any,
            cost: Any,
            gain: float = 1.0,
            w: int | None = width,
            log: list[int] = picked,
        ) -> int:
            longest = max((len(ids) for ids, _ in drafts), default=0)
            log.append(chosen(drafts, cost, gain) if w is None else min(w, longest))
            return log[-1]

        batched.batch_width = fixed
        try:
            seconds, out = run()
        finally:
            batched.batch_width = chosen
        name = "cost model" if width is None else f"width {width}"
        print(f"{name:<11} {seconds:.2f} s  widths {picked[:10]}  {out.stats.summary()[:48]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["slurp", "e2e_nlg"])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--shots", type=int, default=3)
    ap.add_argument("--finetuned", nargs="*", default=[], metavar="TASK=DIR")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--write", action="store_true")
    ap.add_argument(
        "--sweep-widths",
        action="store_true",
        help="only: the first --finetuned row at batch 16 with fixed draft widths (issue 17)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    for spec in args.finetuned:
        task, _, path = spec.partition("=")
        model, tokenizer = load_model(str(Path(path).expanduser()))
        prompt = finetuned_prompt(Path(path).expanduser(), tokenizer)
        train = [r["output"] for r in load_rows(DATA / task / "train.jsonl")]
        test = load_rows(DATA / task / "test.jsonl", limit=args.prompts)
        prompts = [prompt.ids(r["input"])[0].tolist() for r in test]
        drafter = build_drafter(tokenizer, train, progress=False).to_bytes()
        if args.sweep_widths:
            sweep_widths(model, tokenizer, prompts, drafter, MAX_NEW[task])
            return
        rows += bench(model, tokenizer, f"{task}, fine-tuned", prompts, drafter, MAX_NEW[task])
    model, tokenizer = load_model(None)
    for task in args.tasks:
        train_rows = load_rows(DATA / task / "train.jsonl")
        prompt = TaskPrompt(
            tokenizer, examples=train_rows[: args.shots], instruction=INSTRUCTIONS[task]
        )
        test = load_rows(DATA / task / "test.jsonl", limit=args.prompts)
        prompts = [prompt.ids(r["input"])[0].tolist() for r in test]
        train = [r["output"] for r in train_rows[args.shots :]]
        drafter = build_drafter(tokenizer, train, progress=False).to_bytes()
        rows += bench(
            model, tokenizer, f"{task}, base {args.shots}-shot", prompts, drafter, MAX_NEW[task]
        )
    lines = [
        "## Batched TASC-spec in the Hugging Face loop (issue 17)",
        "",
        f"`python benches/bench_batched.py --prompts {args.prompts}"
        + "".join(f" --finetuned {s}" for s in args.finetuned)
        + f" --write` on {machine()}; SmolLM2-135M-Instruct, float32, greedy; the same "
        f"{args.prompts} test prompts per row, in left-padded batches; drafter: the tuned preset "
        "from the task's train outputs, fresh for every method. Speedup: over plain batched "
        "`model.generate` at the same batch size. `identical`: outputs equal to plain's.",
        "",
        "| model / task | batch | method | tokens/s | s per batch (median) | speedup | identical |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['method']} | {r['tokens_per_s']:.1f} | "
            f"{r['seconds_per_batch']:.2f} | {r['speedup']:.2f}x | "
            f"{r['identical']}/{r['prompts']} |"
        )
    md = "\n".join(lines)
    print(md)
    if args.write:
        write_results("hf_batched", md, rows)


if __name__ == "__main__":
    main()
