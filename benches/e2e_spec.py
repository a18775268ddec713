"""End-to-end benchmark: plain greedy vs prompt lookup vs TASC-spec on task test sets.

For each task folder (``<data-dir>/<task>/{train,test}.jsonl`` rows of ``{"input", "output"}``)
this builds few-shot chat prompts, a drafter from the train outputs, and times on the same test
prompts: plain greedy ``model.generate``, transformers' prompt-lookup decoding
(``prompt_lookup_num_tokens``) and TASC-spec. It checks that all three produce identical tokens and
with ``--write`` updates the ``e2e_spec`` section of ``benches/RESULTS.md`` (plus JSON).

A benchmark, not a test: numbers depend on the machine, which the table states.

Example:
    python benches/e2e_spec.py --tasks slurp --limit 30 --write
    python benches/e2e_spec.py --model ./smollm2-slurp-ft --tasks slurp --corpus references
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from tasc_rs.embedded import load_model
from tasc_rs.ft.cli import TASK_META, finetuned_prompt
from tasc_rs.hf import calibrate, generate
from tasc_rs.hf.corpus import build_drafter
from tasc_rs.hf.stats import SpecStats
from tasc_rs.hf.task import SLURP_INSTRUCTION, TaskPrompt, load_rows

INSTRUCTIONS = {
    "slurp": SLURP_INSTRUCTION,
    "spider_dev": "Write the SQL query that answers the question. Answer with the SQL only.",
    "e2e_nlg": "Write a one-paragraph restaurant description from the meaning representation.",
    "medquad": "Answer the medical question accurately and concisely.",
}


def _time(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def bench_task(
    model: Any, tokenizer: Any, task_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Run the three decoders on one task; return totals and per-prompt timings."""
    train = load_rows(task_dir / "train.jsonl")
    test = load_rows(task_dir / "test.jsonl", limit=args.limit)
    instruction = INSTRUCTIONS.get(task_dir.name, "Answer like the examples.")
    shots = args.shots
    if args.model and (Path(args.model) / TASK_META).exists():
        # A model fine-tuned by `tasc finetune`: prompt it exactly as it was trained.
        prompt = finetuned_prompt(args.model, tokenizer)
    else:
        prompt = TaskPrompt(tokenizer, examples=train[:shots], instruction=instruction)
    corpus = [r["output"] for r in train]
    if args.corpus == "self":
        corpus = [r["output"] for r in load_rows(args.self_outputs)]
    defaults = calibrate(model)
    if args.tuned:
        # benches/e2e_peers.py's "tasc (tuned)": n_max 8, lambda 0.9, online learning,
        # longer-match mixing; drafts of up to the longest calibrated length cut by verify cost.
        drafter = build_drafter(
            tokenizer, corpus, n_max=8, min_count=args.min_count, corpus_weight=0.9
        )
        drafter.online_capacity = 1 << 20
        drafter.mixing = "longer_match"
        k, min_prob = args.k, args.min_prob
    else:
        drafter = build_drafter(tokenizer, corpus, min_count=args.min_count)
        k = args.k or defaults.num_draft_tokens
        min_prob = defaults.min_prob if args.min_prob is None else args.min_prob
    common = {"max_new_tokens": args.max_new_tokens, "do_sample": False}
    plain_t, lookup_t, spec_t, tokens = [], [], [], []
    identical_lookup = identical_spec = 0
    stats = SpecStats()
    model.generate(prompt.ids(test[0]["input"]).to(model.device), max_new_tokens=2)  # warm-up
    for row in test:
        ids = prompt.ids(row["input"]).to(model.device)
        plain, t_plain = _time(model.generate, ids, **common)
        lookup, t_lookup = _time(
            model.generate, ids, prompt_lookup_num_tokens=args.lookup_k, **common
        )
        spec, t_spec = _time(
            generate, model, ids, drafter, num_draft_tokens=k, min_prob=min_prob, **common
        )
        plain_t.append(t_plain)
        lookup_t.append(t_lookup)
        spec_t.append(t_spec)
        tokens.append(plain.shape[1] - ids.shape[1])
        identical_lookup += int(torch.equal(plain, lookup))
        identical_spec += int(torch.equal(plain, spec.sequences))
        stats += spec.stats
    return {
        "task": task_dir.name,
        "model": args.model_label
        or args.model
        or "SmolLM2-135M-Instruct (embedded, not fine-tuned)",
        "shots": shots,
        "corpus": args.corpus,
        "prompts": len(test),
        "k": k if k is not None else defaults.max_draft_tokens,
        "min_prob": min_prob if min_prob is not None else 0.0,
        "tuned": bool(args.tuned),
        "min_count": args.min_count,
        "tokens_per_forward": stats.tokens_per_forward,
        "speedup_vs_plain": sum(plain_t) / sum(spec_t),
        "median_speedup_vs_plain": statistics.median(
            p / s for p, s in zip(plain_t, spec_t, strict=True)
        ),
        "lookup_speedup_vs_plain": sum(plain_t) / sum(lookup_t),
        "speedup_vs_lookup": sum(lookup_t) / sum(spec_t),
        "identical_spec": identical_spec,
        "identical_lookup": identical_lookup,
        "plain_tokens_per_s": sum(tokens) / sum(plain_t),
        "spec_tokens_per_s": sum(tokens) / sum(spec_t),
        "drafting_share": stats.draft_seconds / max(stats.total_seconds, 1e-9),
        "stats": stats.as_dict(),
    }


def markdown(results: list[dict[str, Any]], machine: str) -> str:
    """Results as a Markdown section."""
    lines = [
        "## TASC-spec end to end (benches/e2e_spec.py)",
        "",
        f"Machine: {machine}. Greedy decoding; speedups are total wall-time ratios "
        "(median per prompt in brackets).",
        "",
        "| task | model | corpus | prompts | k / min_prob | tokens/forward | vs plain "
        "| vs prompt lookup | prompt lookup vs plain | identical (spec / lookup) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['task']} | {r['model']}, {r['shots']}-shot | {r['corpus']} | {r['prompts']} "
            f"| {r['k']} / {r['min_prob']:.2f} | {r['tokens_per_forward']:.2f} "
            f"| {r['speedup_vs_plain']:.2f}x ({r['median_speedup_vs_plain']:.2f}x) "
            f"| {r['speedup_vs_lookup']:.2f}x | {r['lookup_speedup_vs_plain']:.2f}x "
            f"| {r['identical_spec']}/{r['prompts']} / {r['identical_lookup']}/{r['prompts']} |"
        )
    tuned = [r for r in results if r.get("tuned")]
    if tuned:
        lines += [
            "",
            f"Tuned drafter (`--tuned`): n_max 8, p_min {tuned[0].get('min_count', 2)}, lambda "
            "0.9, online learning of each response, longer-match mixing, drafts of up to k "
            "tokens cut where expected tokens per unit of the calibrated verify cost peak.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse arguments, run every task, write the Markdown and JSON results."""
    repo = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-dir", type=Path, default=repo.parent / "shared" / "data")
    p.add_argument("--tasks", nargs="+", default=["slurp", "spider_dev", "e2e_nlg", "medquad"])
    p.add_argument(
        "--model", default=None, help="model path (default: embedded SmolLM2-135M-Instruct)"
    )
    p.add_argument("--model-label", default=None, help="how the model is named in the table")
    p.add_argument("--corpus", choices=["references", "self"], default="references")
    p.add_argument(
        "--self-outputs",
        type=Path,
        default=None,
        help="JSONL of the model's own outputs (--corpus self)",
    )
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--shots", type=int, default=3)
    p.add_argument("--min-count", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("-k", type=int, default=None, help="draft length (default: calibrated)")
    p.add_argument(
        "--min-prob", type=float, default=None, help="drafting threshold (default: calibrated)"
    )
    p.add_argument("--lookup-k", type=int, default=10, help="prompt_lookup_num_tokens")
    p.add_argument(
        "--tuned",
        action="store_true",
        help="the tuned drafter of e2e_peers.py (n_max 8, lambda 0.9, online, longer-match, "
        "cost-cut drafts) instead of the paper's",
    )
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=repo / "benches" / "RESULTS.md")
    p.add_argument("--write", action="store_true", help="update a section of RESULTS.md")
    p.add_argument("--section", default="e2e_spec", help="RESULTS.md section key to update")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model)
    from _results import machine as describe_machine

    machine = f"{describe_machine()}, torch {torch.__version__}, {model.device}"
    results = []
    for task in args.tasks:
        result = bench_task(model, tokenizer, args.data_dir / task, args)
        print(json.dumps({k: v for k, v in result.items() if k != "stats"}))
        results.append(result)
    section = markdown(results, machine)
    print(section)
    if args.write:
        from _results import write_section  # benches/ helper shared by the benchmark scripts

        write_section(args.section, section)
        (args.out.parent / f"RESULTS_{args.section}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
