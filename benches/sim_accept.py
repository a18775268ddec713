"""Replay greedy speculative decoding offline, to tune and compare drafters on hundreds of prompts.

Greedy speculative decoding is deterministic: its output equals plain greedy decoding, and the
number of forward passes depends only on the drafts and on that output. So once the greedy
outputs are recorded (``record``: one plain ``model.generate`` per prompt, plus the measured cost
of a forward pass over ``n`` tokens), any drafter can be replayed against them in milliseconds
(``replay``): at each step the drafter proposes ``k`` tokens, the longest prefix that matches the
recorded output is accepted plus one token from the target, exactly as ``tasc_rs.hf.generate``
does. Tokens per forward are exact; the time is estimated from the measured forward costs
(prefill of the prompt, then ``t(d + 1)`` for a step that verifies ``d`` drafted tokens).

This is a tuning tool: the numbers it reports are exact for acceptance and modelled for time.
Wall-clock claims in RESULTS.md come from ``e2e_peers.py``, which runs the real model.

    python benches/sim_accept.py record --limit 100             # base model, every task
    python benches/sim_accept.py record --no-base \\
        --finetuned slurp=~/.cache/tasc_rs/eval_ft/slurp/ft-M0
    benches/.peers-venv/bin/python benches/sim_accept.py replay  # every recording, every drafter
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
from _results import DATA, TASKS  # noqa: E402
from finetune_task import INSTRUCTIONS  # noqa: E402

CACHE = Path.home() / ".cache" / "tasc_rs" / "greedy"
#: Recordings of the dev split (``record --dev``: train rows held out, see ``_results.dev_split``).
CACHE_DEV = Path.home() / ".cache" / "tasc_rs" / "greedy-dev"
MAX_NEW = {"slurp": 64, "e2e_nlg": 96, "spider_dev": 96, "medquad": 64}
COST_SIZES = list(range(1, 26))
#: The rows of the RESULTS.md table (``replay --write`` without ``--only``).
TABLE = [
    "tasc paper",
    "tasc costopt n8 p5 l0.9",
    "tasc+online costopt n8 p5 l0.9",
    "tasc+online+longer costopt n8 p5 l0.9",
    "tasc+online+longer costopt n8 p5 l0.75",
    "tasc+online+longer costopt n4 p5 l0.75",
    "suffix",
    "hf-lookup",
    "vllm-ngram",
]


# ---------------------------------------------------------------------------------------------
# record


def record(args: argparse.Namespace) -> None:
    import torch

    from tasc_rs.embedded import load_model
    from tasc_rs.ft.cli import finetuned_prompt
    from tasc_rs.hf.task import TaskPrompt, load_rows

    models: list[tuple[str, str | None, list[str]]] = (
        [] if args.no_base else [("base", None, args.tasks)]
    )
    for spec in args.finetuned:
        task, _, path = spec.partition("=")
        models.append(("ft", str(Path(path).expanduser()), [task]))
    cache = CACHE_DEV if args.dev else CACHE
    cache.mkdir(parents=True, exist_ok=True)
    for label, path, tasks in models:
        model, tokenizer = load_model(path)
        costs = forward_costs(model)
        for task in tasks:
            out = cache / f"{task}__{label}.json"
            if out.exists() and args.retime:
                retime(model, out, costs)
                continue
            if out.exists() and not args.force:
                print(f"{out} exists (--force to redo)")
                continue
            train = load_rows(DATA / task / "train.jsonl")
            if path is None:
                prompt = TaskPrompt(
                    tokenizer, examples=train[: args.shots], instruction=INSTRUCTIONS[task]
                )
            else:
                prompt = finetuned_prompt(path, tokenizer)
            rows = []
            if args.dev:
                from _results import dev_split

                test = dev_split(task, args.limit)[1]
            else:
                test = load_rows(DATA / task / "test.jsonl", limit=args.limit)
            for i, row in enumerate(test):
                ids = prompt.ids(row["input"]).to(model.device)
                with torch.no_grad():
                    start = time.perf_counter()
                    model(input_ids=ids)
                    prefill = time.perf_counter() - start
                    gen = model.generate(ids, max_new_tokens=MAX_NEW[task], do_sample=False)
                rows.append(
                    {
                        "prompt": ids[0].tolist(),
                        "output": gen[0, ids.shape[1] :].tolist(),
                        "prefill_s": prefill,
                    }
                )
                print(f"\r{task} {label}: {i + 1}/{len(test)}", end="", file=sys.stderr)
            print(file=sys.stderr)
            meta_out = {
                "task": task,
                "model": label,
                "model_path": path,
                "max_new_tokens": MAX_NEW[task],
                "forward_cost_s": costs,
                "rows": rows,
            }
            out.write_text(json.dumps(meta_out))
            print(f"wrote {out}")


def retime(model: Any, path: Path, costs: dict[int, float]) -> None:
    """Measure the forward costs and prefill times of a recording again (on a quiet machine)."""
    import torch

    rec = json.loads(path.read_text())
    with torch.no_grad():
        for row in rec["rows"]:
            ids = torch.tensor([row["prompt"]], device=model.device)
            row["prefill_s"] = min(_timed(model, ids) for _ in range(2))
    rec["forward_cost_s"] = costs
    path.write_text(json.dumps(rec))
    print(f"retimed {path}")


def _timed(model: Any, ids: Any) -> float:
    start = time.perf_counter()
    model(input_ids=ids)
    return time.perf_counter() - start


def forward_costs(model: Any, context_len: int = 300, repeats: int = 7) -> dict[int, float]:
    """Seconds for one cached forward pass over ``n`` tokens, n in COST_SIZES (fastest run)."""
    import torch
    from transformers import DynamicCache

    from tasc_rs.hf.decoding import _crop, check_model

    cache_kw, _ = check_model(model)
    vocab = int(model.get_output_embeddings().weight.shape[0])
    ids = torch.randint(0, vocab, (1, context_len + max(COST_SIZES)), generator=None)
    ids = ids.to(model.device)
    cache = DynamicCache(config=model.config)
    times: dict[int, list[float]] = {n: [] for n in COST_SIZES}
    with torch.no_grad():
        model(input_ids=ids[:, :context_len], use_cache=True, **{cache_kw: cache})
        for round_ in range(repeats + 1):
            for n in COST_SIZES:
                start = time.perf_counter()
                out = model(
                    input_ids=ids[:, context_len : context_len + n],
                    use_cache=True,
                    **{cache_kw: cache},
                )
                out.logits[0, -1, 0].item()
                if round_:
                    times[n].append(time.perf_counter() - start)
                _crop(cache, context_len)
    return {n: min(t) for n, t in times.items()}


# ---------------------------------------------------------------------------------------------
# replay


def replay_steps(
    session: Any,
    output: list[int],
    k: int,
    max_new: int,
    min_prob: float | None = None,
    online: bool = True,
) -> Iterator[tuple[int, list[int], int]]:
    """``(done, drafted, accepted)`` for every forward pass of greedy decoding with ``session``
    against the recorded ``output``: the answer tokens before the pass, the draft, and how many
    of its tokens the target accepted. With ``online`` the session ends with ``finish()`` (a
    server learning online also keeps the last chunk), else with ``close()``."""
    done = 0
    while done < len(output):
        budget = min(k, max_new - done - 1)
        if budget <= 0:
            ids: list[int] = []
        elif min_prob is None:
            ids = [int(t) for t in session.propose(budget)[0]]
        else:
            ids = [int(t) for t in session.propose(budget, min_prob)[0]]
        m = 0
        while m < len(ids) and done + m < len(output) and ids[m] == output[done + m]:
            m += 1
        yield done, ids, m
        emitted = output[done : done + m + 1]
        done += len(emitted)
        if done < len(output) or online:
            session.extend(emitted)
    end = getattr(session, "finish" if online else "close", None)
    if end is not None:
        end()


def replay_one(
    drafter: Any,
    prompt: list[int],
    output: list[int],
    k: int,
    min_prob: float,
    max_new: int,
    online: bool,
) -> list[int]:
    """The draft length of every forward pass when ``drafter`` drives greedy decoding."""
    session = drafter.session(prompt)
    steps = replay_steps(session, output, k, max_new, min_prob, online)
    return [len(drafted) for _, drafted, _ in steps]


def replay(args: argparse.Namespace) -> None:
    from transformers import AutoTokenizer  # noqa: F401  (imported for its side effects on torch)

    if args.write and not args.only:
        args.only = TABLE
    recordings = sorted(CACHE.glob("*.json"))
    if args.tasks:
        recordings = [r for r in recordings if r.name.split("__")[0] in args.tasks]
    results = []
    for path in recordings:
        rec = json.loads(path.read_text())
        task, label = rec["task"], rec["model"]
        cost = {int(n): t for n, t in rec["forward_cost_s"].items()}
        rows = rec["rows"][: args.limit]
        corpus = train_corpus(task)
        plain = [r["prefill_s"] + (len(r["output"]) - 1) * cost[1] for r in rows]
        tokens = sum(len(r["output"]) for r in rows)
        print(f"\n## {task} ({label}): {len(rows)} prompts, {tokens} output tokens")
        print(f"{'drafter':<44} {'tok/fwd':>7} {'est.speedup':>11} {'draft len':>9}")
        for name, make, k, min_prob, online in drafters(corpus, args.only, cost):
            drafter = make()
            start = time.perf_counter()
            forwards, drafted, est = 0, 0, []
            for r, base in zip(rows, plain, strict=True):
                drafts = replay_one(
                    drafter, r["prompt"], r["output"], k, min_prob, rec["max_new_tokens"], online
                )
                forwards += len(drafts)
                drafted += sum(drafts)
                t = r["prefill_s"] + sum(cost[min(d + 1, max(cost))] for d in drafts[1:])
                est.append(base / t)
            tpf = tokens / forwards
            total_speed = sum(plain) / sum(base / s for base, s in zip(plain, est, strict=True))
            mean_d = drafted / forwards
            print(
                f"{name:<44} {tpf:7.2f} {total_speed:10.2f}x {mean_d:9.1f}"
                f"   ({time.perf_counter() - start:.1f}s)"
            )
            results.append(
                {
                    "task": task,
                    "model": label,
                    "drafter": name,
                    "tpf": tpf,
                    "speedup": total_speed,
                    "median": statistics.median(est),
                }
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.write:
        from _results import machine, write_section

        write_section("tuning_replay", markdown(results, machine()))


def markdown(results: list[dict[str, Any]], host: str) -> str:
    """One row per drafter, one column per recording: tokens per forward / estimated speedup."""
    groups = list(dict.fromkeys((r["task"], r["model"]) for r in results))
    cell = {(r["drafter"], r["task"], r["model"]): r for r in results}
    names = list(dict.fromkeys(r["drafter"] for r in results))
    lines = [
        "## Replayed greedy decoding: which drafter settings accept most (benches/sim_accept.py)",
        "",
        f"Machine: {host}. Greedy outputs of SmolLM2-135M-Instruct recorded once per task "
        "(`sim_accept.py record`: base model 3-shot, 30-40 test prompts; fine-tuned M = 0 models "
        "of benches/eval_ft.py 0-shot, 100 prompts), then every drafter replayed against them "
        "(`sim_accept.py replay --write`): tokens per forward pass are exact, the speedup is "
        "*modelled* from forward-pass costs measured on this machine (prefill, then t(d + 1) "
        "per step that verifies d drafted tokens). Online drafters learn each response after "
        "it is finished, in test-set order. Wall-clock results are in the end-to-end section.",
        "",
        "| drafter | " + " | ".join(f"{t} ({m})" for t, m in groups) + " |",
        "|---|" + "---:|" * len(groups),
    ]
    for name in names:
        cells = []
        for t, m in groups:
            r = cell.get((name, t, m))
            cells.append(f"{r['tpf']:.2f} / {r['speedup']:.2f}x" if r else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Cells: tokens per forward / modelled speedup over plain greedy. Names: n = n_max, "
        "p = min_count, l = lambda (corpus_weight), k = draft cap, mp = min_prob; `costopt` = "
        "drafts cut by expected tokens per unit of verify cost (`DraftSession.verify_cost`); "
        '`online` = `online_capacity` > 0; `longer` = `mixing = "longer_match"`.',
    ]
    return "\n".join(lines) + "\n"


def train_corpus(task: str) -> list[list[int]]:
    from tasc_rs.hf.corpus import tokenize_outputs
    from tasc_rs.hf.task import load_rows

    sys.path.insert(0, str(ROOT / "benches"))
    from _results import load_tokenizer

    tok = load_tokenizer()
    rows = load_rows(DATA / task / "train.jsonl")
    seqs = tokenize_outputs(tok, [r["output"] for r in rows], progress=False)
    return [list(map(int, s)) for s in seqs]


class Truncated:
    """A tasc drafter whose drafts are cut: with ``cost`` ({tokens verified: relative time}) by
    the session's own ``verify_cost`` (expected tokens per unit of verify cost, as
    ``tasc_rs.hf.generate`` does), else, as a prototype, where the product of the drafted tokens'
    probabilities (the chance that the whole prefix is accepted) falls below ``tau``."""

    def __init__(
        self,
        drafter: Any,
        tau: float = 0.0,
        cost: dict[int, float] | None = None,
        mixing: str = "fixed",
    ):
        self.drafter, self.tau, self.mixing = drafter, tau, mixing
        # verify_cost[d]: a forward pass over d + 1 tokens
        self.profile = [cost[n] for n in sorted(cost)] if cost else None

    def session(self, prompt: Any) -> Any:
        inner, tau = self.drafter.session(prompt), self.tau
        inner.mixing = self.mixing
        if self.profile is not None:
            inner.verify_cost = self.profile
            return inner

        class Session:
            def propose(self, k: int, min_prob: float) -> Any:
                ids, probs = inner.propose(k, min_prob)
                path, n = 1.0, 0
                for p in probs:
                    path *= float(p)
                    if path < tau:
                        break
                    n += 1
                return ids[:n], probs[:n]

            def extend(self, ids: Any) -> None:
                inner.extend(ids)

            def finish(self) -> None:
                inner.finish()

        return Session()


def drafters(
    corpus: list[list[int]], only: list[str] | None, cost: dict[int, float]
) -> Iterable[tuple[str, Callable[[], Any], int, float, bool]]:
    """(name, factory, k, min_prob, online) for every drafter in the comparison."""
    from tasc_rs import NgramDrafter

    def tasc(n: int, p: int, lam: float) -> Callable[[], Any]:
        return lambda: NgramDrafter.from_corpus(corpus, n_max=n, min_count=p, corpus_weight=lam)

    def online(n: int, p: int, lam: float) -> Any:
        d = NgramDrafter.from_corpus(corpus, n_max=n, min_count=p, corpus_weight=lam)
        d.online_capacity = 1 << 20
        return d

    grid: list[tuple[str, Callable[[], Any], int, float, bool]] = [
        ("tasc paper n4 p5 l.75 k8", tasc(4, 5, 0.75), 8, 0.0, False),
    ]
    for n in (4, 6, 8):
        for p in (1, 2, 5):
            for lam in (0.5, 0.75, 0.9):
                for k, mp in ((8, 0.0), (16, 0.0), (16, 0.2), (24, 0.3)):
                    name = f"tasc n{n} p{p} l{lam} k{k} mp{mp}"
                    grid.append((name, tasc(n, p, lam), k, mp, False))
    rel = {n: t / cost[1] for n, t in cost.items()}
    for n in (4, 6, 8):
        for p in (2, 5):
            for lam in (0.75, 0.9):
                for tau in (0.1, 0.2, 0.3, 0.5):
                    grid.append(
                        (
                            f"tasc path n{n} p{p} l{lam} k24 tau{tau}",
                            lambda n=n, p=p, lam=lam, tau=tau: Truncated(tasc(n, p, lam)(), tau),
                            24,
                            0.0,
                            False,
                        )
                    )
                grid.append(
                    (
                        f"tasc costopt n{n} p{p} l{lam} k24",
                        lambda n=n, p=p, lam=lam: Truncated(tasc(n, p, lam)(), cost=rel),
                        24,
                        0.0,
                        False,
                    )
                )
    for n in (4, 8):
        for p in (1, 2, 5):
            for lam in (0.75, 0.9):
                grid.append(
                    (
                        f"tasc+online+longer costopt n{n} p{p} l{lam} k24",
                        lambda n=n, p=p, lam=lam: Truncated(
                            online(n, p, lam), cost=rel, mixing="longer_match"
                        ),
                        24,
                        0.0,
                        True,
                    )
                )
                grid.append(
                    (
                        f"tasc+online costopt n{n} p{p} l{lam} k24",
                        lambda n=n, p=p, lam=lam: Truncated(online(n, p, lam), cost=rel),
                        24,
                        0.0,
                        True,
                    )
                )
                grid.append(
                    (
                        f"tasc+online n{n} p{p} l{lam} k16",
                        lambda n=n, p=p, lam=lam: online(n, p, lam),
                        16,
                        0.0,
                        True,
                    )
                )
    try:
        from _peers import PEERS, SuffixDrafter, available

        avail = available()
        if avail["suffix"] is None:
            grid.append(("suffix (online)", lambda: SuffixDrafter(corpus), 24, 0.0, True))
            grid.append(("suffix (offline)", lambda: SuffixDrafter(corpus), 24, 0.0, False))
            # vLLM's default is 24; a shorter cap costs less on a CPU
            grid.append(("suffix k8 (online)", lambda: SuffixDrafter(corpus), 8, 0.0, True))
        for name in ("hf-lookup", "vllm-ngram"):
            if avail[name] is None:
                grid.append((name, PEERS[name], 8, 0.0, False))
    except ImportError:
        pass
    for entry in grid:
        if not only or any(o in entry[0] for o in only):
            yield entry


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="greedy outputs and forward costs for each task")
    r.add_argument("--tasks", nargs="+", default=TASKS)
    r.add_argument("--limit", type=int, default=100)
    r.add_argument("--shots", type=int, default=3)
    r.add_argument("--no-base", action="store_true")
    r.add_argument("--finetuned", nargs="*", action="extend", default=[], metavar="TASK=DIR")
    r.add_argument("--force", action="store_true", help="record again")
    r.add_argument(
        "--dev", action="store_true", help="record held-out train rows (for tuning) instead"
    )
    r.add_argument(
        "--retime", action="store_true", help="only measure the costs again (quiet machine)"
    )
    q = sub.add_parser("replay", help="replay drafters against the recordings")
    q.add_argument("--tasks", nargs="*")
    q.add_argument("--limit", type=int, default=None)
    q.add_argument(
        "--only", nargs="+", help="only drafters whose name contains one of these strings"
    )
    q.add_argument("--json", help="write the results here")
    q.add_argument("--write", action="store_true", help="update RESULTS.md (tuning_replay)")
    args = p.parse_args()
    record(args) if args.cmd == "record" else replay(args)


if __name__ == "__main__":
    main()
