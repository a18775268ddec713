"""Replay recorded greedy outputs through vLLM's proposer interface, to compare drafters in the
engine's setting without the engine: acceptance is exact, the step cost is modelled.

On vLLM's CPU backend a step costs a fixed overhead plus a share for every position it verifies
(``bench_vllm.py stepcost``: 17.4 ms + 0.78 ms per position for SmolLM2-135M on this machine,
so ``--overhead 22`` in units of one position). Drafting tokens the target rejects costs real
time once batches grow, and how well a drafter knows when *not* to draft decides the speedup as
much as how many tokens it gets accepted. Greedy decoding is
deterministic, so the recorded outputs (``sim_accept.py record``) say exactly which drafts vLLM
would accept.

The prompts run in groups of ``c`` (as ``bench_vllm.py engine`` sends them, one proposer per
method through all levels, so online learning carries over): each step every live row gets its
draft verified, gains the accepted prefix plus one token, and the step costs
``overhead + sum(1 + draft length)``. tasc-rs runs through ``tasc_rs.vllm.TascProposer`` itself
(the code vLLM calls, fed the same token buffer); ``suffix`` replicates vLLM 0.32's
``SuffixDecodingProposer`` over ArcticInference's cache with vLLM's defaults; ``ngram`` is vLLM's
own proposer. Prefill is the same for every method and left out of the cost.

    python benches/sim_accept.py record --limit 48 --tasks e2e_nlg spider_dev slurp \\
        --finetuned slurp=~/.cache/tasc_rs/ft/slurp
    PY=$(TASC_VLLM_SUFFIX=1 tests/vllm/setup_venv.sh)
    $PY benches/sim_vllm.py                        # every recording
    $PY benches/sim_vllm.py --tasc 'min_prob=0.2' --tasc 'step_overhead=null'   # variants
    $PY benches/sim_vllm.py --engine               # bench_vllm.py's prompts, vLLM's outputs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
from bench_vllm import LEVELS, Row, describe, fake_vllm_config  # noqa: E402
from sim_accept import CACHE, train_corpus  # noqa: E402

K = 8
MAX_LEN = 4096

Proposer = Callable[[list[list[int]], np.ndarray, np.ndarray, list[int]], list[list[int]]]


def vllm_config(work: Path) -> Any:
    """A CPU engine's config as the proposers see it (bench_vllm.py's stand-in), with
    SmolLM2's tokenizer (every row's model has it)."""
    from tasc_rs.embedded import embedded_model_dir

    return fake_vllm_config(work, MAX_LEN, 64, device="cpu", tokenizer=str(embedded_model_dir()))


def tasc(drafter_path: Path, work: Path, settings: dict[str, Any]) -> tuple[Proposer, Any]:
    from tasc_rs.vllm import CPU_STEP_OVERHEAD, TascProposer

    # No replay step takes an engine's time, so the proposer must not time them: it cuts with
    # the CPU prior unless a variant sets step_overhead (the modelled cost is --overhead).
    config = {
        "drafter": str(drafter_path),
        "step_overhead": CPU_STEP_OVERHEAD,
        "measure_step_cost": False,
        **settings,
    }
    os.environ["TASC_VLLM_CONFIG"] = json.dumps(config)
    proposer = TascProposer(vllm_config(work))

    def propose(sampled, num, buf, req_ids):  # type: ignore[no-untyped-def]
        return proposer.propose(sampled, num, buf)

    return propose, proposer


def suffix() -> tuple[Proposer, Any]:
    """vLLM 0.32's SuffixDecodingProposer.propose, minus its InputBatch plumbing."""
    from arctic_inference.suffix_decoding import SuffixDecodingCache

    cache = SuffixDecodingCache(max_tree_depth=24, max_cached_requests=10000)
    prompts: dict[int, int] = {}

    def propose(sampled, num, buf, req_ids):  # type: ignore[no-untyped-def]
        out = []
        for i, (ids, rid) in enumerate(zip(sampled, req_ids, strict=True)):
            n = int(num[i])
            if rid not in cache.active_requests:
                cache.start_request(rid, buf[i, : prompts[rid]])
            cache.add_active_response(rid, ids)
            pattern = buf[i, max(0, n - 24) : n]
            draft = cache.speculate(
                rid,
                pattern,
                max_spec_tokens=min(K, MAX_LEN - n - 1),
                max_spec_factor=1.0,
                min_token_prob=0.1,
            )
            out.append(list(draft.token_ids))
        for rid in cache.active_requests - set(req_ids):
            cache.stop_request(rid)
        return out

    return propose, prompts


def ngram(work: Path) -> Proposer:
    from vllm.v1.spec_decode.ngram_proposer import NgramProposer

    proposer = NgramProposer(vllm_config(work))

    def propose(sampled, num, buf, req_ids):  # type: ignore[no-untyped-def]
        return [list(map(int, d)) for d in proposer.propose(K, sampled, num, buf)]

    return propose


def replay(
    propose: Proposer | None,
    rows: list[dict[str, Any]],
    c: int,
    overhead: float,
    prompt_lens: dict[int, int] | None = None,
    first_id: int = 0,
) -> dict[str, float]:
    """Runs the rows in groups of ``c``; returns tokens, steps, positions and the modelled cost.
    Row ``i`` is request ``first_id + i`` (ids must stay unique while a proposer lives)."""
    tokens = steps = positions = drafted = accepted = 0
    cost = 0.0
    width = max(len(r["prompt"]) + len(r["output"]) for r in rows) + K + 2
    for g in range(0, len(rows), c):
        group = list(range(g, min(g + c, len(rows))))
        buf = np.zeros((len(group), width), dtype=np.int32)
        done = {}
        for j, i in enumerate(group):
            p, o = rows[i]["prompt"], rows[i]["output"]
            buf[j, : len(p)] = p
            buf[j, len(p)] = o[0]  # the prefill's token
            done[i] = 1
            if prompt_lens is not None:
                prompt_lens[first_id + i] = len(p)
        gained = {i: [rows[i]["output"][0]] for i in group}
        seen = list(group)  # rows that gained tokens last step: the proposer sees them all
        while seen:
            # vLLM condenses its batch: the rows, in order, at the top of the buffer
            view = np.zeros((len(seen), width), dtype=np.int32)
            num = np.zeros(len(seen), dtype=np.int32)
            for j, i in enumerate(seen):
                n = len(rows[i]["prompt"]) + done[i]
                view[j, :n] = rows[i]["prompt"] + rows[i]["output"][: done[i]]
                num[j] = n
            drafts = (
                propose([gained[i] for i in seen], num, view, [first_id + i for i in seen])
                if propose
                else [[]] * len(seen)
            )
            live = [
                (i, d)
                for i, d in zip(seen, drafts, strict=True)
                if done[i] < len(rows[i]["output"])
            ]
            if live:
                steps += 1
                cost += overhead
            for i, d in live:
                out = rows[i]["output"]
                m = 0
                while m < len(d) and done[i] + m < len(out) and d[m] == out[done[i] + m]:
                    m += 1
                new = out[done[i] : done[i] + m + 1]
                positions += 1 + len(d)
                cost += 1 + len(d)
                drafted += len(d)
                accepted += m
                done[i] += len(new)
                gained[i] = new
            seen = [i for i, _ in live]
        tokens += sum(len(rows[i]["output"]) - 1 for i in group)
        if propose is not None:  # the group's last step, where finished rows are seen
            propose([], np.zeros(0, np.int32), buf, [])
    return {
        "tokens": tokens,
        "steps": steps,
        "positions": positions,
        "drafted": drafted,
        "accepted": accepted,
        "cost": cost,
    }


def sources(args: argparse.Namespace, work: Path) -> list[tuple[str, Path, list[list[dict]]]]:
    """(title, drafter file, rows per level): from ``sim_accept.py`` recordings (the same rows
    at every level), or with ``--engine`` the prompts of ``bench_vllm.py engine`` and the
    outputs vLLM gave them without speculation (RESULTS_vllm_engine.json), its drafters too."""
    from tasc_rs import NgramDrafter

    out = []
    if args.engine:
        from transformers import AutoTokenizer

        runs = json.loads((ROOT / "benches" / "RESULTS_vllm_engine.json").read_text())
        for name in args.tasks or ["slurp-ft", "e2e_nlg", "spider_dev"]:
            label, task, model, finetuned = describe(name, args.finetuned)
            none = runs.get(label, {}).get("none", {}).get("levels")
            if not none:
                print(f"{label}: no engine outputs in RESULTS_vllm_engine.json", file=sys.stderr)
                continue
            tok = AutoTokenizer.from_pretrained(model)
            n = len(none[str(args.levels[0])]["outputs"])
            row = Row(label, task, model, tok, finetuned, n, work)
            levels = []
            for i, c in enumerate(LEVELS):
                prompts = row.prompts[i * n : (i + 1) * n]
                outs = none[str(c)]["outputs"]
                levels.append(
                    [{"prompt": p, "output": o} for p, o in zip(prompts, outs, strict=True)]
                )
            out.append((label, row.drafters["tasc"], levels))
        return out
    for path in sorted(CACHE.glob("*.json")):
        if args.tasks and not any(path.name.startswith(t) for t in args.tasks):
            continue
        rec = json.loads(path.read_text())
        drafter_path = work / f"{rec['task']}-{rec['model']}.tasc"
        NgramDrafter.from_corpus(train_corpus(rec["task"])).save(drafter_path)
        title = f"{rec['task']} ({rec['model']}, {len(rec['rows'])} recorded prompts)"
        out.append((title, drafter_path, [rec["rows"]] * len(args.levels)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="*", help="recordings whose name starts with one of these")
    p.add_argument(
        "--engine",
        action="store_true",
        help="replay bench_vllm.py engine's prompts and vLLM's own outputs",
    )
    p.add_argument("--finetuned", default=str(Path.home() / ".cache/tasc_rs/ft/slurp"))
    p.add_argument("--levels", nargs="+", type=int, default=[1, 4, 16])
    p.add_argument(
        "--overhead",
        type=float,
        default=22.0,
        help="step cost in positions (bench_vllm.py stepcost)",
    )
    p.add_argument(
        "--tasc",
        action="append",
        default=[],
        metavar="KEY=JSON,...",
        help="a tasc-rs variant: TascProposer settings (repeatable; the defaults always run)",
    )
    p.add_argument("--no-peers", action="store_true")
    args = p.parse_args()
    if args.engine:
        args.levels = LEVELS

    variants: list[tuple[str, dict[str, Any]]] = [("tasc", {})]
    for spec in args.tasc:
        settings = {}
        for item in spec.split(","):
            key, _, value = item.partition("=")
            settings[key.strip()] = json.loads(value)
        variants.append((f"tasc {spec}", settings))
    work = Path(tempfile.mkdtemp(prefix="tasc-sim-vllm-"))
    for title, drafter_path, levels in sources(args, work):
        print(f"\n## {title}, step overhead {args.overhead} positions")
        print(
            f"{'method':<44} {'c':>3} {'tok/step':>8} {'draft/step':>10} {'accepted':>9} "
            f"{'est. speedup':>12}"
        )
        # one proposer per method for all levels, as one engine serves them in bench_vllm.py
        made: list[tuple[str, Proposer, dict[int, int] | None]] = []
        if not args.no_peers:
            for name, make in (("suffix", suffix), ("ngram", lambda: (ngram(work), None))):
                try:
                    made.append((name, *make()))
                except ImportError as e:
                    print(f"{name:<44} not run: {e}")
        for name, settings in variants:
            made.append((name, tasc(drafter_path, work, settings)[0], None))
        for i, (c, rows) in enumerate(zip(args.levels, levels, strict=False)):
            base = replay(None, rows, c, args.overhead)
            for name, fn, lens in made:
                r = replay(fn, rows, c, args.overhead, prompt_lens=lens, first_id=i * 100_000)
                row_steps = r["positions"] - r["drafted"]
                print(
                    f"{name:<44} {c:>3} {r['tokens'] / row_steps + 0:8.2f} "
                    f"{r['drafted'] / row_steps:10.2f} "
                    f"{r['accepted']:>4}/{r['drafted']:<4} "
                    f"{base['cost'] / r['cost']:11.2f}x",
                    flush=True,
                )


if __name__ == "__main__":
    main()
