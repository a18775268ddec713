"""TASC-ft evaluation: vocabulary budget M against compression, task metric and decode latency.

For each task and each budget M (M = 0 is the base tokenizer) this runs the whole TASC-ft
pipeline with one recipe and measures the result on the task's test split:

1. ``tasc enrich`` over the train outputs (budget M, PCS threshold alpha; skipped for M = 0),
2. ``tasc finetune`` of the enriched SmolLM2-135M-Instruct on the first ``--train-rows`` train
   rows (same epochs, learning rate, trainable parameters for every M),
3. greedy decoding of ``--test-rows`` test prompts with plain ``model.generate`` and with
   TASC-spec (a drafter built from the train outputs with the same enriched tokenizer).

Reported per run: mean reference-output tokens and mean generated tokens (compression against
M = 0), exact match, intent accuracy and slot F1 (slurp) or corpus BLEU-4 (e2e_nlg, spider_dev),
and median per-prompt decode latency. Stages are cached in ``--work`` (a rerun skips finished
models and evaluations), so the long CPU run can be interrupted and resumed.

A benchmark, not a test. Examples (the first about 1.5 h on a 2-core CPU; the defaults are the
recipe of the ``ft_eval_r2`` section of RESULTS.md, the second command the older ``ft_eval``):

    python benches/eval_ft.py --tasks slurp --work ~/.cache/tasc_rs/eval_ft_r2 \
        --section ft_eval_r2 --write
    python benches/eval_ft.py --tasks slurp e2e_nlg --train-rows 800 --new-token-lr-scale 1 --write
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _results import DATA, machine, write_section
from finetune_task import INSTRUCTIONS

from tasc_rs.ft.cli import ENRICHMENT_REPORT, finetuned_prompt

HERE = Path(__file__).resolve().parent
MAX_NEW = {"slurp": 64, "e2e_nlg": 96, "spider_dev": 128, "medquad": 256}


# ---------------------------------------------------------------------------------------------
# Metrics


def parse_slurp(text: str) -> tuple[str, Counter[tuple[str, str]]]:
    """``"intent: X; slots: a=b, c=d"`` -> (``X``, multiset of (slot, value))."""
    m = re.match(r"\s*intent:\s*([^;]*?)\s*;\s*slots:\s*(.*)$", text, flags=re.S)
    if not m:
        return "", Counter()
    intent, rest = m.group(1), m.group(2).strip()
    slots: Counter[tuple[str, str]] = Counter()
    if rest and rest != "none":
        for part in rest.split(", "):
            key, _, value = part.partition("=")
            slots[(key.strip(), value.strip())] += 1
    return intent, slots


def slurp_scores(preds: list[str], refs: list[str]) -> dict[str, float]:
    """Intent accuracy and micro slot F1 (exact (type, value) pairs), in percent."""
    intents = tp = n_pred = n_ref = 0
    for p, r in zip(preds, refs, strict=True):
        pi, ps = parse_slurp(p)
        ri, rs = parse_slurp(r)
        intents += int(pi == ri)
        tp += sum((ps & rs).values())
        n_pred += sum(ps.values())
        n_ref += sum(rs.values())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_ref if n_ref else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"intent_acc": 100 * intents / len(refs), "slot_f1": 100 * f1}


def bleu4(preds: list[str], refs: list[str]) -> float:
    """Corpus BLEU-4 (single reference, lower-cased word/punctuation tokens, brevity penalty)."""

    def toks(s: str) -> list[str]:
        return re.findall(r"\w+|[^\w\s]", s.lower())

    match = [0] * 4
    total = [0] * 4
    hyp_len = ref_len = 0
    for p, r in zip(preds, refs, strict=True):
        ph, rh = toks(p), toks(r)
        hyp_len += len(ph)
        ref_len += len(rh)
        for n in range(1, 5):
            pc = Counter(tuple(ph[i : i + n]) for i in range(len(ph) - n + 1))
            rc = Counter(tuple(rh[i : i + n]) for i in range(len(rh) - n + 1))
            match[n - 1] += sum((pc & rc).values())
            total[n - 1] += max(0, len(ph) - n + 1)
    if min(match) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(match, total, strict=True)) / 4
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / max(hyp_len, 1))
    return 100 * bp * math.exp(log_p)


# ---------------------------------------------------------------------------------------------
# Pipeline stages


def run_name(budget: int, pcs: bool) -> str:
    return f"M{budget}" if pcs or budget == 0 else f"M{budget}-nopcs"


def tasc(*args: str) -> None:
    """Runs the ``tasc`` CLI in a fresh process (one model in memory at a time)."""
    cmd = [sys.executable, "-m", "tasc_rs.cli", *args]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def train(task: str, budget: int, pcs: bool, args: argparse.Namespace) -> Path:
    """Enrich (if M > 0) and fine-tune; return the fine-tuned model directory."""
    root = args.work / task
    name = run_name(budget, pcs)
    ft = root / f"ft-{name}"
    if ft.exists():
        return ft
    train_file = str(DATA / task / "train.jsonl")
    start = ["--model", str(args.start_model)] if args.start_model else []
    model: list[str] = start
    if budget > 0:
        enriched = root / f"enriched-{name}"
        if not enriched.exists():
            alpha = str(args.alpha if pcs else 1.0)
            tasc(
                "enrich",
                train_file,
                "-o",
                str(enriched),
                "--budget",
                str(budget),
                "--alpha",
                alpha,
                "--allow-fewer",
                "--min-count",
                str(args.min_count),
                *start,
                "--boundaries",
                args.boundaries,
                *(["--exclude-copied"] if args.exclude_copied else []),
            )
        same = same_enrichment(root, name, budget, pcs)
        if same is not None:
            print(f"{task} {name}: same tokens as {same.name}, reusing its model", flush=True)
            return same
        model = ["--model", str(enriched)]
    recipe = ["--epochs", str(args.epochs), "--lr", str(args.lr), "--limit", str(args.train_rows)]
    if args.trainable_layers:
        recipe += ["--trainable-layers", str(args.trainable_layers)]
    if not args.input_embedding_grad:
        recipe.append("--no-input-embedding-grad")
    if budget > 0:
        recipe += ["--new-token-lr-scale", str(args.new_token_lr_scale)]
        recipe += ["--prompt-tokens", args.prompt_tokens]
    tasc(
        "finetune", train_file, "-o", str(ft), "--instruction", INSTRUCTIONS[task], *model, *recipe
    )
    return ft


def enriched_tokens(path: Path) -> list[str] | None:
    report = path / ENRICHMENT_REPORT
    if not report.is_file():
        return None
    return [t["text"] for t in json.loads(report.read_text(encoding="utf-8"))["tokens"]]


def same_enrichment(root: Path, name: str, budget: int, pcs: bool) -> Path | None:
    """The fine-tuned model of a smaller budget whose enrichment added the same tokens.

    When candidates run out below the budget, larger budgets add exactly the same tokens, and
    fine-tuning again would only repeat a run (same data, same recipe).
    """
    tokens = enriched_tokens(root / f"enriched-{name}")
    for other in sorted(root.glob("enriched-M*")):
        other_name = other.name.removeprefix("enriched-")
        if other_name == name or other_name.endswith("-nopcs") == pcs:
            continue
        digits = other_name.removeprefix("M").removesuffix("-nopcs")
        if not digits.isdigit() or int(digits) >= budget:
            continue
        ft = root / f"ft-{other_name}"
        if ft.exists() and enriched_tokens(other) == tokens:
            return ft
    return None


def load_test(task: str, offset: int, rows: int) -> list[dict[str, str]]:
    """Test rows ``offset + 1`` .. ``offset + rows`` of a task (what an evaluation decodes)."""
    from tasc_rs.hf.task import load_rows

    return load_rows(DATA / task / "test.jsonl", limit=offset + rows)[offset:]


def evaluate(task: str, name: str, ft: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Greedy decoding of the test prompts with plain generate and TASC-spec; metrics."""
    skip = f"from{args.test_offset}-" if args.test_offset else ""
    out_file = ft / f"eval-{skip}{args.test_rows}{'-plain' if args.no_spec else ''}.json"
    if out_file.exists():
        return json.loads(out_file.read_text(encoding="utf-8"))
    import torch

    from tasc_rs.embedded import load_model
    from tasc_rs.hf import generate
    from tasc_rs.hf.corpus import build_drafter
    from tasc_rs.hf.task import load_rows

    model, tokenizer = load_model(str(ft))
    prompt = finetuned_prompt(ft, tokenizer)
    train_rows = load_rows(DATA / task / "train.jsonl")
    test = load_test(task, args.test_offset, args.test_rows)
    drafter = build_drafter(tokenizer, [r["output"] for r in train_rows], progress=False)
    enc = tokenizer([r["output"] for r in test], add_special_tokens=False)["input_ids"]
    ref_tokens = [len(x) for x in enc]
    common: dict[str, Any] = {"max_new_tokens": MAX_NEW[task], "do_sample": False}
    model.generate(prompt.ids(test[0]["input"]).to(model.device), max_new_tokens=2)  # warm-up
    preds, gen_tokens, plain_s, spec_s, identical, forwards = [], [], [], [], 0, 0
    for i, row in enumerate(test):
        ids = prompt.ids(row["input"]).to(model.device)
        start = time.perf_counter()
        plain = model.generate(ids, **common)
        plain_s.append(time.perf_counter() - start)
        if not args.no_spec:
            start = time.perf_counter()
            spec = generate(
                model, ids, drafter, num_draft_tokens=args.k, min_prob=args.min_prob, **common
            )
            spec_s.append(time.perf_counter() - start)
            identical += int(torch.equal(plain, spec.sequences))
            forwards += spec.stats.forward_passes
        new = plain[0, ids.shape[1] :].tolist()
        gen_tokens.append(len(new))
        preds.append(tokenizer.decode(new, skip_special_tokens=True).strip())
        if (i + 1) % 20 == 0:
            print(f"  {task} {name}: {i + 1}/{len(test)} prompts", flush=True)
    refs = [r["output"].strip() for r in test]
    result: dict[str, Any] = {
        "task": task,
        "run": name,
        "vocab_size": len(tokenizer),
        "test_offset": args.test_offset,
        "test_rows": len(test),
        "ref_tokens": statistics.mean(ref_tokens),
        "gen_tokens": statistics.mean(gen_tokens),
        "exact_match": 100 * sum(p == r for p, r in zip(preds, refs, strict=True)) / len(refs),
        "plain_ms": 1000 * statistics.median(plain_s),
        "plain_total_s": sum(plain_s),
        "spec_ms": 1000 * statistics.median(spec_s) if spec_s else None,
        "spec_total_s": sum(spec_s),
        "spec_identical": identical if spec_s else None,
        "spec_tokens_per_forward": sum(gen_tokens) / forwards if forwards else None,
        "predictions": preds,
        "correct": [int(p == r) for p, r in zip(preds, refs, strict=True)],
    }
    if task == "slurp":
        result.update(slurp_scores(preds, refs))
    else:
        result["bleu4"] = bleu4(preds, refs)
    enrich_report = ft.parent / f"enriched-{ft.name.removeprefix('ft-')}" / ENRICHMENT_REPORT
    if enrich_report.exists():
        report = json.loads(enrich_report.read_text(encoding="utf-8"))
        result["tokens_added"] = len(report["tokens"])
        result["train_compression"] = report["compression_ratio"]
    out_file.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


# ---------------------------------------------------------------------------------------------
# Report


def markdown(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "## TASC-ft: budget M against compression, task metric and latency "
        f"({args.train_rows} train rows, {args.epochs:g} epoch(s), new tokens at "
        f"{args.new_token_lr_scale:g}x the learning rate, {args.prompt_tokens} prompt tokens; "
        "benches/eval_ft.py)",
        "",
        f"Machine: {machine()}. Recipe for every M: "
        + (
            f"start from `{args.start_model.parent.parent.name}/{args.start_model.name}` "
            "(a fine-tuned M=0 model; M=0 here trains it further on the base vocabulary)"
            if args.start_model
            else "SmolLM2-135M-Instruct"
        )
        + ", `tasc enrich` over "
        f"all train outputs (n_max 4, min_count {args.min_count}, "
        f"PCS alpha {args.alpha} unless marked nopcs"
        + (f", boundaries {args.boundaries!r}" if args.boundaries else "")
        + (
            ", --exclude-copied: output words that occur in the request stay out of new tokens"
            if args.exclude_copied
            else ""
        )
        + "; "
        f"a run stops early when no candidate occurring {args.min_count} times is left, see "
        "tokens added; a "
        "budget that adds the same tokens as a smaller one reuses its model, marked =), "
        f"then `tasc finetune` on the first {args.train_rows} train rows, {args.epochs} epoch(s), "
        f"lr {args.lr}, batch 8, "
        + (f"last {args.trainable_layers} blocks" if args.trainable_layers else "all blocks")
        + " plus the embeddings/LM head trainable"
        + ("" if args.input_embedding_grad else " (tied matrix, learning through the LM head)")
        + f", the new tokens' rows at {args.new_token_lr_scale:g}x the learning rate"
        + f", requests encoded with the {args.prompt_tokens} vocabulary"
        + ", loss on the answer only. "
        + (
            f"Test prompts {args.test_offset + 1}-{args.test_offset + args.test_rows}"
            if args.test_offset
            else f"First {args.test_rows} test prompts"
        )
        + ", 0-shot, greedy."
        " Compression = mean tokens at M=0 "
        "/ mean tokens at M (reference outputs encoded with the run's tokenizer; generated "
        "outputs of the run's model). Latency = median per-prompt wall time of plain "
        "`model.generate` and of TASC-spec (drafter from the train outputs, same tokenizer)"
        + (" (TASC-spec not run: --no-spec)" if args.no_spec else "")
        + ". Exact only here / only at M=0: prompts this run answers exactly and M=0 does not, "
        "and the reverse (their difference is the exact-match gap in prompts).",
        "",
        "| task | run | tokens added | ref tokens | compression (ref) | generated tokens "
        "| compression (gen) | exact match | exact only here / only at M=0 "
        "| intent acc / slot F1 or BLEU-4 "
        "| plain ms | speedup (plain) | TASC-spec ms | speedup (TASC-spec, vs M=0 plain) "
        "| spec identical |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = {r["task"]: r for r in results if r["run"] == "M0"}
    for r in results:
        b = base.get(r["task"], r)
        metric = (
            f"{r['intent_acc']:.1f} / {r['slot_f1']:.1f}"
            if "intent_acc" in r
            else f"{r['bleu4']:.1f}"
        )
        spec = (
            f"| {r['spec_ms']:.0f} | {b['plain_ms'] / r['spec_ms']:.2f}x "
            f"| {r['spec_identical']}/{r['test_rows']} |"
            if r.get("spec_ms")
            else "| - | - | not run |"
        )
        lines.append(
            f"| {r['task']} | {r['run']}"
            + (f" (= {r['same_model_as']})" if r.get("same_model_as") else "")
            + f" | {r.get('tokens_added', 0)} | {r['ref_tokens']:.1f} "
            f"| {b['ref_tokens'] / r['ref_tokens']:.2f}x | {r['gen_tokens']:.1f} "
            f"| {b['gen_tokens'] / r['gen_tokens']:.2f}x | {r['exact_match']:.1f} "
            f"| {discordant(r, b)} | {metric} "
            f"| {r['plain_ms']:.0f} | {b['plain_ms'] / r['plain_ms']:.2f}x " + spec
        )
    lines += ["", f"![compression and metric against budget](plots/{plot_name(args)})"]
    return "\n".join(lines) + "\n"


def discordant(run: dict[str, Any], base: dict[str, Any]) -> str:
    """Paired exact match against M = 0: prompts only this run gets right / only M = 0 does.

    The two counts show how much of an exact-match difference could be noise (a sign test
    on the discordant prompts); ``-`` for M = 0 itself and for results cached without them.
    """
    if run is base or "correct" not in run or "correct" not in base:
        return "-"
    pairs = list(zip(run["correct"], base["correct"], strict=True))
    return f"{sum(a > b for a, b in pairs)} / {sum(a < b for a, b in pairs)}"


def compact(result: dict[str, Any]) -> dict[str, Any]:
    """A result as RESULTS_<section>.json keeps it: 20 predictions, ``correct`` as a 0/1 string."""
    out = {**result, "predictions": result["predictions"][:20]}
    if "correct" in result:
        out["correct"] = "".join(str(c) for c in result["correct"])
    return out


def plot_name(args: argparse.Namespace) -> str:
    return "ft_budget.png" if args.section == "ft_eval" else f"{args.section}.png"


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Compression and task metric against M, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in results})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        rows = [r for r in results if r["task"] == task and not r["run"].endswith("nopcs")]
        rows.sort(key=lambda r: r.get("tokens_added", 0))
        base = rows[0]
        added = [r.get("tokens_added", 0) for r in rows]
        ax.plot(
            added,
            [base["ref_tokens"] / r["ref_tokens"] for r in rows],
            "o-",
            label="compression (ref outputs)",
        )
        ax.plot(
            added,
            [base["plain_ms"] / r["plain_ms"] for r in rows],
            "s--",
            label="latency gain (plain greedy)",
        )
        ax.set_xlabel("tokens added (budgets 250, 500, 1000)")
        ax.set_ylabel("x over M=0")
        ax.set_title(task)
        metric_ax = ax.twinx()
        metric_ax.plot(
            added, [r["exact_match"] for r in rows], "^-", color="tab:red", label="exact match (%)"
        )
        second = "slot_f1" if task == "slurp" else "bleu4"
        metric_ax.plot(
            added,
            [r[second] for r in rows],
            "v:",
            color="tab:purple",
            label="slot F1 (%)" if task == "slurp" else "BLEU-4",
        )
        for r in results:
            if r["task"] == task and r["run"].endswith("nopcs"):
                x = r.get("tokens_added", 0)
                ax.plot(
                    [x],
                    [base["ref_tokens"] / r["ref_tokens"]],
                    "o",
                    mfc="none",
                    ms=9,
                    color="tab:blue",
                    label="compression, no PCS",
                )
                metric_ax.plot(
                    [x],
                    [r["exact_match"]],
                    "^",
                    mfc="none",
                    ms=9,
                    color="tab:red",
                    label="exact match, no PCS",
                )
        metric_ax.set_ylim(0, 100)
        metric_ax.set_ylabel("task metric")
        handles = ax.get_legend_handles_labels()
        more = metric_ax.get_legend_handles_labels()
        ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["slurp", "e2e_nlg"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[0, 250, 500, 1000])
    parser.add_argument(
        "--no-pcs",
        nargs="*",
        type=int,
        default=[1000],
        help="budgets also run without the PCS filter (slurp only)",
    )
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument(
        "--min-count", type=int, default=2, help="tasc enrich --min-count (rarer n-grams ignored)"
    )
    parser.add_argument(
        "--train-rows", type=int, default=2033, help="first N train rows (2033: all of slurp)"
    )
    parser.add_argument("--test-rows", type=int, default=100)
    parser.add_argument(
        "--test-offset", type=int, default=0, help="skip the first N test rows (a fresh sample)"
    )
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--trainable-layers", type=int, default=10, help="0 trains all blocks")
    parser.add_argument(
        "--input-embedding-grad",
        action="store_true",
        help="backpropagate into the input embeddings (full backward)",
    )
    parser.add_argument(
        "--new-token-lr-scale",
        type=float,
        default=30.0,
        help="learning-rate multiplier of the added tokens' rows (tasc finetune; default 30)",
    )
    parser.add_argument(
        "--boundaries", default="", help="tasc enrich --boundaries (field delimiters)"
    )
    parser.add_argument(
        "--exclude-copied",
        action="store_true",
        help="tasc enrich --exclude-copied (words copied from the request stay out of new tokens)",
    )
    parser.add_argument(
        "--prompt-tokens",
        choices=["base", "enriched"],
        default="base",
        help="vocabulary that encodes the requests of enriched models (tasc finetune's flag)",
    )
    parser.add_argument(
        "--start-model",
        type=Path,
        default=None,
        help="model every run starts from (default: the embedded SmolLM2-135M-Instruct); "
        "e.g. the M=0 fine-tuned model of another --work for a two-stage recipe",
    )
    parser.add_argument("--k", type=int, default=None, help="TASC-spec draft length")
    parser.add_argument("--min-prob", type=float, default=None)
    parser.add_argument(
        "--no-spec",
        action="store_true",
        help="plain greedy only (task metric and plain latency over more --test-rows)",
    )
    parser.add_argument("--stage", choices=["train", "eval", "all"], default="all")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache/tasc_rs/eval_ft")
    parser.add_argument("--write", action="store_true", help="update benches/RESULTS.md")
    parser.add_argument(
        "--section",
        default="ft_eval",
        help="RESULTS.md section (and RESULTS_<section>.json, plot) to write, one per recipe",
    )
    args = parser.parse_args()

    runs = [(t, m, True) for t in args.tasks for m in args.budgets]
    runs += [("slurp", m, False) for m in args.no_pcs if "slurp" in args.tasks and m > 0]
    dirs = {}
    if args.stage in ("train", "all"):
        for task, budget, pcs in runs:
            dirs[(task, budget, pcs)] = train(task, budget, pcs, args)
    if args.stage == "train":
        return
    results = []
    for task, budget, pcs in runs:
        ft = dirs.get((task, budget, pcs)) or args.work / task / f"ft-{run_name(budget, pcs)}"
        if not ft.exists() and budget > 0:
            ft = same_enrichment(args.work / task, run_name(budget, pcs), budget, pcs) or ft
        if not ft.exists():
            print(f"skipping {task} {run_name(budget, pcs)}: not trained", flush=True)
            continue
        name = run_name(budget, pcs)
        r = evaluate(task, name, ft, args)
        if r["run"] != name:  # a smaller budget's model, reused (same tokens)
            r = {**r, "run": name, "same_model_as": r["run"]}
        results.append(r)
        shown = {k: v for k, v in r.items() if k not in ("predictions", "correct")}
        print(json.dumps(shown), flush=True)
    if not results:
        return
    print(markdown(results, args))
    if args.write:
        write_section(args.section, markdown(results, args))
        (HERE / f"RESULTS_{args.section}.json").write_text(
            json.dumps([compact(r) for r in results], indent=1), encoding="utf-8"
        )
        plot(results, HERE / "plots" / plot_name(args))


if __name__ == "__main__":
    main()
