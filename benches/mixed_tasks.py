"""One drafter for many tasks: every shared task's recorded prompts interleaved against one
``MultiTaskDrafter``, by exact greedy replay (tokens per forward, chains of 8).

Rows, each replaying the same interleaved stream (task 1's first prompt, task 2's first, ...):

- ``per-task drafters, task named``: each request drafted by its own task's drafter (what a
  service that knows every request's task gets; the upper bound of routing);
- ``MultiTaskDrafter, routed``: one drafter file, each request's task chosen by the router from
  its most similar training requests (context only where it resembles none);
- ``one drafter from all tasks' pairs``: a single store built from every task's train split;
- ``context only``: no task store (what a request the router refuses gets).

Also prints the router's accuracy on the stream, and, for each task left out of the router,
how many of its prompts are refused (routed to no task) rather than sent to a wrong task.

    python benches/mixed_tasks.py                 # the base recordings (test split)
    python benches/mixed_tasks.py --dev           # the dev recordings (for choosing settings)
    python benches/mixed_tasks.py --write         # RESULTS.md section mixed_tasks
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
from sim_accept import CACHE, CACHE_DEV, replay_steps  # noqa: E402
from where_steps_end import oracle_forwards, train_file  # noqa: E402


def interleaved(recs: dict[str, dict[str, Any]], limit: int | None) -> list[tuple[str, dict]]:
    """(task, row) of every recording, round robin."""
    rows = {t: r["rows"][:limit] for t, r in recs.items()}
    out = []
    for i in range(max(len(v) for v in rows.values())):
        out += [(t, v[i]) for t, v in rows.items() if i < len(v)]
    return out


def replay(
    stream: list[tuple[str, dict]], session: Callable[[str, list[int]], Any], max_new: dict
) -> dict[str, Any]:
    """Tokens per forward over the stream, overall and per task, with ``session(task, prompt)``."""
    tokens, forwards, oracle = Counter(), Counter(), Counter()
    for task, row in stream:
        out = row["output"]
        tokens[task] += len(out)
        oracle[task] += oracle_forwards(len(out), 8, max_new[task])
        for _ in replay_steps(session(task, row["prompt"]), out, 8, max_new[task]):
            forwards[task] += 1
    total = sum(tokens.values()) / sum(forwards.values())
    return {
        "tpf": total,
        "oracle_tpf": sum(tokens.values()) / sum(oracle.values()),
        "per_task": {t: tokens[t] / forwards[t] for t in tokens},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dev", action="store_true", help="the dev recordings and training rows")
    p.add_argument("--limit", type=int, default=None, help="prompts per task")
    p.add_argument("--model", default="base", help="recordings of this model label")
    p.add_argument("--write", action="store_true", help="update RESULTS.md (mixed_tasks)")
    args = p.parse_args()

    from _results import load_tokenizer

    from tasc_rs import MultiTaskDrafter, NgramDrafter, bpe_respelling, space_aliases
    from tasc_rs.hf.corpus import build_drafter

    tokenizer = load_tokenizer()
    cache = CACHE_DEV if args.dev else CACHE
    recs = {
        path.name.split("__")[0]: json.loads(path.read_text())
        for path in sorted(cache.glob(f"*__{args.model}.json"))
    }
    if len(recs) < 2:
        sys.exit(f"need recordings of two tasks or more in {cache} (sim_accept.py record)")
    max_new = {t: r["max_new_tokens"] for t, r in recs.items()}
    files = {t: train_file(t, args.dev) for t in recs}
    blobs = {t: build_drafter(tokenizer, f, progress=False).to_bytes() for t, f in files.items()}

    aliases, respelling = space_aliases(tokenizer), bpe_respelling(tokenizer)

    def loaded(blob: bytes) -> NgramDrafter:
        """A drafter from its file, as a service loads it (aliases and respelling set)."""
        d = NgramDrafter.from_bytes(blob)
        d.token_aliases = aliases
        d.respelling = respelling
        return d

    def fresh(task: str) -> NgramDrafter:
        return loaded(blobs[task])

    stream = interleaved(recs, args.limit)
    print(
        f"{len(stream)} prompts: "
        + ", ".join(f"{t} {len(r['rows'][: args.limit])}" for t, r in recs.items())
    )

    # routing: accuracy on the stream, and what a task the router does not hold gets
    multi = MultiTaskDrafter({t: fresh(t) for t in recs})
    routed = Counter((task, multi.route(row["prompt"])) for task, row in stream)
    right = sum(n for (t, r), n in routed.items() if t == r)
    refused = sum(n for (t, r), n in routed.items() if r is None)
    print(f"router: {right}/{len(stream)} right, {refused} refused")
    held_out = {}
    for out in recs:
        m = MultiTaskDrafter({t: NgramDrafter.from_bytes(blobs[t]) for t in recs if t != out})
        rows = [row for t, row in stream if t == out]
        routes = Counter(m.route(row["prompt"]) for row in rows)
        held_out[out] = {"prompts": len(rows), "refused": routes[None]}
        print(f"  without {out}: {routes[None]}/{len(rows)} of its prompts refused, {dict(routes)}")

    merged_file = Path(files[next(iter(files))]).parent / "_mixed_all.jsonl"
    merged_file.write_text("".join(Path(f).read_text() for f in files.values()))
    merged_blob = build_drafter(tokenizer, merged_file, progress=False).to_bytes()
    merged_file.unlink()

    results: dict[str, Any] = {
        "routing": {"right": right, "refused": refused, "prompts": len(stream)},
        "held_out": held_out,
        "rows": {},
    }
    per_task = {t: fresh(t) for t in recs}
    multi = MultiTaskDrafter({t: fresh(t) for t in recs})
    merged = loaded(merged_blob)
    context = multi._context_drafter()
    rows: list[tuple[str, Callable[[str, list[int]], Any]]] = [
        ("per-task drafters, task named", lambda t, p: per_task[t].session(p)),
        ("MultiTaskDrafter, routed", lambda t, p: multi.session(p)),
        ("one drafter from all tasks' pairs", lambda t, p: merged.session(p)),
        ("context only", lambda t, p: context.session(p)),
    ]
    for name, session in rows:
        r = replay(stream, session, max_new)
        results["rows"][name] = r
        each = "  ".join(f"{t} {v:.2f}" for t, v in r["per_task"].items())
        print(
            f"  {name:<36} tok/fwd {r['tpf']:.2f}"
            f" ({r['tpf'] / r['oracle_tpf']:.0%} of oracle)  {each}"
        )
    if args.write:
        from _results import machine, write_results

        write_results("mixed_tasks", markdown(results, recs, args, machine()), results)


def markdown(
    results: dict[str, Any], recs: dict[str, Any], args: argparse.Namespace, host: str
) -> str:
    tasks = list(recs)
    r = results["routing"]
    lines = [
        "## One drafter for many tasks (benches/mixed_tasks.py)",
        "",
        f"Machine: {host}. Exact greedy replay (chains of 8, online learning in stream order) of "
        f"the {args.model} model's recorded {'dev' if args.dev else 'test'} prompts of "
        + ", ".join(f"{t} ({len(recs[t]['rows'][: args.limit])})" for t in tasks)
        + ", interleaved round robin; drafters built from each task's train split with "
        "`build_drafter` (pairs, aliases, respelling). Router: "
        f"{r['right']}/{r['prompts']} prompts sent to their own task, {r['refused']} refused. "
        "A task left out of the router: "
        + ", ".join(
            f"{t} {h['refused']}/{h['prompts']} refused" for t, h in results["held_out"].items()
        )
        + " (the rest sent to a wrong task). Command: `python benches/mixed_tasks.py --write`.",
        "",
        "| drafter | tok/fwd | of oracle | " + " | ".join(tasks) + " |",
        "|---|---:|---:|" + "---:|" * len(tasks),
    ]
    for name, row in results["rows"].items():
        each = " | ".join(f"{row['per_task'][t]:.2f}" for t in tasks)
        lines.append(
            f"| {name} | {row['tpf']:.2f} | {row['tpf'] / row['oracle_tpf']:.0%} | {each} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
