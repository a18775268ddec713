"""End-to-end: every drafter in the same verification loop, on the same prompts, vs plain greedy.

For each task (../shared/data/<task>) and model (the embedded SmolLM2-135M-Instruct with 3-shot
prompts, and optionally fine-tuned models with 0-shot prompts) this times on the same test prompts:

- ``plain``: ``model.generate`` greedy, the baseline;
- ``hf-lookup (own loop)``: ``model.generate(prompt_lookup_num_tokens=10)``, transformers' loop;
- the peers of ``benches/_peers.py`` and TASC-spec, all driven by ``tasc_rs.hf.generate`` so only
  the drafter differs: ``hf-lookup``, ``llama-lookup``, ``vllm-ngram`` (k = 8), ``suffix``
  (SuffixDecoding over the train outputs, k = 24 with its own match-length limit),
  ``tasc (paper)`` (``preset="paper"``: n_max 4, lambda 0.75, p_min 5, k = 8, no threshold),
  and three drafters built with the defaults (``NgramDrafter.from_corpus(corpus)``, the tuned
  preset: n_max 8, lambda 0.9, longer-match mixing, online learning of each finished response
  as suffix does) run with ``generate``'s defaults (drafts up to the longest calibrated length,
  cut where expected tokens per unit of the verify cost ``calibrate`` measures peak):
  ``tasc (chain)`` (``tree_width=1``) and ``tasc (default)`` (no ``tree_width``: token trees
  of ``DEFAULT_TREE_WIDTH`` children per node).

Per method: mean tokens per forward, wall-clock speedup over plain (total time ratio and median
per prompt), drafting share of the loop's time, and whether each greedy output equals plain's.
``--write`` updates the ``peers_e2e`` section of RESULTS.md, its JSON, and two plots.

    benches/.peers-venv/bin/python benches/e2e_peers.py --limit 30 --write \\
        --finetuned slurp=~/.cache/tasc_rs/ft/slurp
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
from _peers import PEERS, SuffixDrafter, available, status_lines, versions  # noqa: E402
from _results import machine, write_section  # noqa: E402
from e2e_spec import INSTRUCTIONS  # noqa: E402

from tasc_rs import NgramDrafter  # noqa: E402
from tasc_rs.drafter import DEFAULT_TREE_WIDTH  # noqa: E402
from tasc_rs.embedded import load_model  # noqa: E402
from tasc_rs.ft.cli import finetuned_prompt  # noqa: E402
from tasc_rs.hf import generate  # noqa: E402
from tasc_rs.hf.corpus import tokenize_outputs  # noqa: E402
from tasc_rs.hf.stats import SpecStats  # noqa: E402
from tasc_rs.hf.task import TaskPrompt, load_rows  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MAX_NEW = {"slurp": 64, "e2e_nlg": 96, "spider_dev": 96, "medquad": 64}


def methods(model: Any, corpus: list[Any]) -> dict[str, tuple[Any, int | None, Any, Any, int]]:
    """Method name -> (drafter, k, min_prob, verify_cost, tree width) for the shared loop.

    ``None`` for k, min_prob or the tree width: what ``tasc_rs.hf.generate`` does by default.
    Each tasc method has its own drafter, so online learning never crosses methods.
    """
    avail = available()
    out: dict[str, tuple[Any, int | None, Any, Any, int]] = {}
    for name in ("hf-lookup", "llama-lookup", "vllm-ngram"):
        if avail[name] is None:
            out[name] = (PEERS[name](), 8, 0.0, None, 1)
    if avail["suffix"] is None:
        out["suffix"] = (SuffixDrafter(corpus), 24, 0.0, None, 1)
    out["tasc (paper)"] = (NgramDrafter.from_corpus(corpus, preset="paper"), 8, 0.0, None, 1)
    out["tasc (chain)"] = (NgramDrafter.from_corpus(corpus), None, None, "auto", 1)
    out["tasc (default)"] = (NgramDrafter.from_corpus(corpus), None, None, "auto", None)
    return out


def task_data(
    tokenizer: Any, task: str, limit: int
) -> tuple[list[dict[str, Any]], list[Any], dict[str, Any]]:
    """The first ``limit`` test rows of ``task``, its train outputs tokenized (the drafters'
    corpus), and the greedy settings every method of a row shares."""
    train = load_rows(DATA / task / "train.jsonl")
    test = load_rows(DATA / task / "test.jsonl", limit=limit)
    corpus = tokenize_outputs(tokenizer, [r["output"] for r in train], progress=False)
    return test, corpus, {"max_new_tokens": MAX_NEW[task], "do_sample": False}


def bench(
    model: Any, tokenizer: Any, task: str, label: str, prompt: TaskPrompt, limit: int
) -> list[dict[str, Any]]:
    test, corpus, common = task_data(tokenizer, task, limit)
    table = methods(model, corpus)
    names = ["plain", "hf-lookup (own loop)", *table]
    times: dict[str, list[float]] = {n: [] for n in names}
    same = dict.fromkeys(names, 0)
    stats = {n: SpecStats() for n in table}
    model.generate(prompt.ids(test[0]["input"]).to(model.device), max_new_tokens=2)  # warm-up
    for row in test:
        ids = prompt.ids(row["input"]).to(model.device)
        start = time.perf_counter()
        plain = model.generate(ids, **common)
        times["plain"].append(time.perf_counter() - start)
        same["plain"] += 1
        start = time.perf_counter()
        out = model.generate(ids, prompt_lookup_num_tokens=10, **common)
        times["hf-lookup (own loop)"].append(time.perf_counter() - start)
        same["hf-lookup (own loop)"] += int(torch.equal(out, plain))
        for name, (drafter, k, min_prob, cost, width) in table.items():
            start = time.perf_counter()
            spec = generate(
                model,
                ids,
                drafter,
                num_draft_tokens=k,
                min_prob=min_prob,
                verify_cost=cost,
                tree_width=width,
                **common,
            )
            times[name].append(time.perf_counter() - start)
            same[name] += int(torch.equal(spec.sequences, plain))
            stats[name] += spec.stats
    rows = []
    for name in names:
        s = stats.get(name)
        rows.append(
            {
                "task": task,
                "model": label,
                "method": name,
                "k": (table[name][1] or "default")
                if name in table
                else (10 if "lookup" in name else 1),
                "min_prob": (table[name][2] or 0.0) if name in table else 0.0,
                "cost_cut": name in table and table[name][3] is not None,
                "prompts": len(test),
                "speedup": sum(times["plain"]) / sum(times[name]),
                "median_speedup": statistics.median(
                    p / t for p, t in zip(times["plain"], times[name], strict=True)
                ),
                "tokens_per_forward": s.tokens_per_forward if s else None,
                "drafting_share": s.draft_seconds / max(s.total_seconds, 1e-9) if s else None,
                "acceptance_by_position": s.acceptance_by_position if s else None,
                "identical": same[name],
            }
        )
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "acceptance_by_position"}))
    return rows


def markdown(rows: list[dict[str, Any]], res: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "## End to end: every drafter in the same loop (benches/e2e_peers.py)",
        "",
        f"Machine: {machine()}, torch {torch.__version__}, CPU. "
        + status_lines(res)[0]
        + f" First {args.limit} test prompts per task, greedy, SmolLM2-135M-Instruct. Base "
        "model: 3-shot prompts; fine-tuned models (benches/finetune_task.py, 1 epoch, last 10 "
        "blocks: slurp on its 2033 train rows, e2e_nlg on the first 2000): 0-shot. Corpus "
        "for tasc and suffix: the task's train outputs (references). Speedup = total plain "
        "time / total method time (median per prompt in brackets); identical = greedy output "
        "equal to plain's. Settings: tasc (paper) n_max 4, lambda 0.75, p_min 5, no threshold; "
        "tasc (chain) and (default): `NgramDrafter.from_corpus(corpus)` (tuned preset: "
        "n_max 8, lambda 0.9, p_min 5, longer-match mixing, online learning of each response "
        "like suffix) in `generate` with its defaults (drafts cut by expected tokens per unit "
        "of the verify cost measured by `calibrate`, k column: default); chain: `tree_width=1`, "
        f"default: token trees of width {DEFAULT_TREE_WIDTH}; suffix: vLLM's "
        "defaults "
        "(depth 24, min_token_prob 0.1, spec factor 1); hf-lookup/llama-lookup max n-gram 2, "
        "vllm-ngram n-gram 1..4. All but `plain` and `hf-lookup (own loop)` run in "
        "`tasc_rs.hf.generate`, so only the drafter differs.",
        "",
    ]
    lines += status_lines(res)[1:]
    lines += [
        "| task | model | method | k / threshold | tokens/forward | speedup vs plain "
        "| drafting share | identical |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        tpf = f"{r['tokens_per_forward']:.2f}" if r["tokens_per_forward"] else "-"
        share = f"{100 * r['drafting_share']:.1f}%" if r["drafting_share"] is not None else "-"
        best = max(
            (x for x in rows if x["task"] == r["task"] and x["model"] == r["model"]),
            key=lambda x: x["speedup"],
        )
        speed = f"{r['speedup']:.2f}x ({r['median_speedup']:.2f}x)"
        stop = "cost" if r.get("cost_cut") else f"{r['min_prob']:.2f}"
        if r is best:
            speed = f"**{speed}**"
        lines.append(
            f"| {r['task']} | {r['model']} | {r['method']} | {r['k']} / {stop} "
            f"| {tpf} | {speed} | {share} | {r['identical']}/{r['prompts']} |"
        )
    lines += [
        "",
        "![speedup per task and method](plots/e2e_speedup.png)",
        "![acceptance by draft position](plots/e2e_acceptance.png)",
    ]
    return "\n".join(lines) + "\n"


def plots(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    groups = list(dict.fromkeys((r["task"], r["model"]) for r in rows))
    names = [m for m in dict.fromkeys(r["method"] for r in rows) if m != "plain"]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups)), 4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        vals = [
            next(
                (
                    r["speedup"]
                    for r in rows
                    if (r["task"], r["model"]) == g and r["method"] == name
                ),
                0.0,
            )
            for g in groups
        ]
        ax.bar([j + i * width for j in range(len(groups))], vals, width, label=name)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))])
    ax.set_xticklabels([f"{t}\n{m.split(',')[0]}" for t, m in groups], fontsize=8)
    ax.set_ylabel("speedup over plain greedy")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "e2e_speedup.png", dpi=110)

    fig, axes = plt.subplots(1, len(groups), figsize=(3.4 * len(groups), 3.2), squeeze=False)
    for ax, g in zip(axes[0], groups, strict=True):
        for r in rows:
            if (r["task"], r["model"]) == g and r["acceptance_by_position"]:
                acc = r["acceptance_by_position"][:12]
                ax.plot(range(1, len(acc) + 1), acc, "o-", ms=3, label=r["method"])
        ax.set_title(f"{g[0]} ({g[1].split(',')[0]})", fontsize=9)
        ax.set_xlabel("draft position")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("acceptance rate")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "e2e_acceptance.png", dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["slurp", "e2e_nlg", "spider_dev", "medquad"])
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--shots", type=int, default=3)
    p.add_argument("--no-base", action="store_true", help="only the fine-tuned models")
    p.add_argument(
        "--finetuned",
        nargs="*",
        action="extend",
        default=[],
        metavar="TASK=DIR",
        help="fine-tuned model per task (prompted 0-shot)",
    )
    p.add_argument("--write", action="store_true")
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of RESULTS_peers_e2e.json for the task/model pairs this run does "
        "not measure (same --limit assumed)",
    )
    args = p.parse_args()
    res: dict[str, Any] = {"available": available(), "versions": versions()}
    rows: list[dict[str, Any]] = []
    if not args.no_base:
        model, tokenizer = load_model(None)
        for task in args.tasks:
            train = load_rows(DATA / task / "train.jsonl")
            prompt = TaskPrompt(
                tokenizer, examples=train[: args.shots], instruction=INSTRUCTIONS[task]
            )
            rows += bench(model, tokenizer, task, "base, 3-shot", prompt, args.limit)
    for spec in args.finetuned:
        task, _, path = spec.partition("=")
        model, tokenizer = load_model(str(Path(path).expanduser()))
        prompt = finetuned_prompt(Path(path).expanduser(), tokenizer)
        rows += bench(model, tokenizer, task, "fine-tuned, 0-shot", prompt, args.limit)
    saved = ROOT / "benches" / "RESULTS_peers_e2e.json"
    if args.merge and saved.exists():
        ran = {(r["task"], r["model"]) for r in rows}
        kept = [
            r for r in json.loads(saved.read_text())["rows"] if (r["task"], r["model"]) not in ran
        ]
        rows = kept + rows
    res["rows"] = rows
    md = markdown(rows, res, args)
    print(md)
    if args.write:
        write_section("peers_e2e", md)
        saved.write_text(json.dumps(res, indent=1))
        plots(rows, ROOT / "benches" / "plots")


if __name__ == "__main__":
    main()
