"""HF loop wall clock: today's drafter against the request-reading sources, interleaved.

For each row (a task with the base model 3-shot, or a model fine-tuned on it, 0-shot), three
decoders run on every test prompt in turn, their order rotating from prompt to prompt: plain
greedy ``model.generate``; ``tasc_rs.hf.generate`` with the drafter built from the answers alone
(token aliases: the defaults before this round); and with the drafter ``build_drafter`` now
makes (the train split's (request, answer) pairs: the copy pointer, plus respelling). Every
output is checked token-identical to plain greedy. Prints, per row, each decoder's total time,
median per-prompt speedup over plain and tokens per forward pass, and the new drafter's ratio
to the old one.

    python benches/bench_sources.py --tasks e2e_nlg slurp --limit 30 \\
        --finetuned slurp=~/.cache/tasc_rs/ft/slurp e2e_nlg=~/.cache/tasc_rs/ft/e2e_nlg
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
from _results import DATA, machine, write_results  # noqa: E402
from finetune_task import INSTRUCTIONS  # noqa: E402
from sim_accept import MAX_NEW  # noqa: E402

DECODERS = ("plain", "answers", "pointer", "pairs")


def drafters(task: str, tokenizer: Any) -> dict[str, Any]:
    """The old default (answers, aliases), the copy pointer and respelling without neighbours,
    and the new default (pairs: copy pointer, respelling, 8 neighbours)."""
    from tasc_rs.hf.corpus import build_drafter

    path = DATA / task / "train.jsonl"
    old = build_drafter(tokenizer, path, pairs=False, respelling=False, progress=False)
    pointer = build_drafter(tokenizer, path, progress=False)
    pointer.neighbours = 0
    new = build_drafter(tokenizer, path, progress=False)
    return {"answers": old, "pointer": pointer, "pairs": new}


def run_row(task: str, model_dir: str | None, limit: int) -> dict[str, Any]:
    import torch

    from tasc_rs.embedded import load_model
    from tasc_rs.ft.cli import finetuned_prompt
    from tasc_rs.hf import generate
    from tasc_rs.hf.task import TaskPrompt, load_rows

    model, tokenizer = load_model(model_dir)
    if model_dir is None:
        train = load_rows(DATA / task / "train.jsonl")
        prompt = TaskPrompt(tokenizer, examples=train[:3], instruction=INSTRUCTIONS[task])
    else:
        prompt = finetuned_prompt(model_dir, tokenizer)
    made = drafters(task, tokenizer)
    rows = load_rows(DATA / task / "test.jsonl", limit=limit)
    kwargs = {"max_new_tokens": MAX_NEW[task], "do_sample": False}
    seconds: dict[str, list[float]] = {d: [] for d in DECODERS}
    forwards = {d: 0 for d in DECODERS[1:]}
    tokens, identical = 0, {d: 0 for d in DECODERS[1:]}
    warm = prompt.ids(rows[0]["input"]).to(model.device)
    with torch.no_grad():
        model.generate(warm, max_new_tokens=2, do_sample=False)
        for d in DECODERS[1:]:
            generate(model, warm, made[d], max_new_tokens=4)  # calibration, cached per model
        for i, row in enumerate(rows):
            ids = prompt.ids(row["input"]).to(model.device)
            order = DECODERS[i % len(DECODERS) :] + DECODERS[: i % len(DECODERS)]
            outs: dict[str, Any] = {}
            for d in order:
                start = time.perf_counter()
                if d == "plain":
                    outs[d] = model.generate(ids, **kwargs)
                else:
                    out = generate(model, ids, made[d], **kwargs)
                    outs[d] = out.sequences
                    forwards[d] += out.stats.forward_passes
                seconds[d].append(time.perf_counter() - start)
            tokens += outs["plain"].shape[1] - ids.shape[1]
            for d in DECODERS[1:]:
                identical[d] += bool(torch.equal(outs[d], outs["plain"]))
            print(f"\r{task}: {i + 1}/{len(rows)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    label = f"{task} ({'fine-tuned, 0-shot' if model_dir else 'base, 3-shot'})"
    result: dict[str, Any] = {"row": label, "prompts": len(rows), "tokens": tokens}
    for d in DECODERS:
        result[d] = {"seconds": sum(seconds[d])}
        if d != "plain":
            per = [p / s for p, s in zip(seconds["plain"], seconds[d], strict=True)]
            result[d].update(
                speedup=sum(seconds["plain"]) / sum(seconds[d]),
                median=statistics.median(per),
                spread=(min(per), max(per)),
                tpf=tokens / forwards[d],
                identical=identical[d],
            )
    return result


def markdown(results: list[dict[str, Any]], host: str, command: str) -> str:
    lines = [
        "## HF loop: the request-reading sources, wall clock (benches/bench_sources.py)",
        "",
        f"Machine: {host}. `tasc_rs.hf.generate` defaults (token trees, measured verify cost), "
        "greedy, online learning in test order; per test prompt plain `model.generate`, the "
        "drafter built from the answers alone (token aliases: the defaults before this round), "
        "the one built from (request, answer) pairs without neighbours (copy pointer, "
        "respelling) and with them (`build_drafter`'s default now: 8 neighbours), in rotating "
        "order, one run. Speedup: total plain time / total time (median of the per-prompt "
        "ratios); the first 30 e2e_nlg test rows hold 10 distinct requests (each repeated for "
        f"several references). Command: `{command}`.",
        "",
        "| row | prompts | plain s | answers only | copy pointer | + neighbours | "
        "neighbours vs pointer | identical |",
        "|---|---:|---:|---|---|---|---:|---:|",
    ]

    def cell(d: dict[str, Any]) -> str:
        return f"{d['speedup']:.2f}x ({d['median']:.2f}x), {d['tpf']:.2f} tok/fwd"

    for r in results:
        a, c, p = r["answers"], r["pointer"], r["pairs"]
        same = min(a["identical"], c["identical"], p["identical"])
        lines.append(
            f"| {r['row']} | {r['prompts']} | {r['plain']['seconds']:.1f} | {cell(a)} |"
            f" {cell(c)} | {cell(p)} | {c['seconds'] / p['seconds']:.2f}x |"
            f" {same}/{r['prompts']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="*", default=["e2e_nlg", "slurp"], help="base 3-shot rows")
    p.add_argument("--finetuned", nargs="*", default=[], metavar="TASK=DIR")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--write", action="store_true", help="update RESULTS.md (hf_sources)")
    args = p.parse_args()
    rows: list[tuple[str, str | None]] = [(t, None) for t in args.tasks]
    for spec in args.finetuned:
        task, _, path = spec.partition("=")
        rows.append((task, str(Path(path).expanduser())))
    results = []
    for task, model_dir in rows:
        r = run_row(task, model_dir, args.limit)
        results.append(r)
        parts = [
            f"{d} {r[d]['seconds']:.1f} s ({r[d]['speedup']:.2f}x, tpf {r[d]['tpf']:.2f},"
            f" identical {r[d]['identical']}/{r['prompts']})"
            for d in DECODERS[1:]
        ]
        print(f"{r['row']}: plain {r['plain']['seconds']:.1f} s; " + "; ".join(parts))
    if args.write:
        command = "python benches/bench_sources.py " + " ".join(sys.argv[1:])
        write_results("hf_sources", markdown(results, machine(), command), results)


if __name__ == "__main__":
    main()
