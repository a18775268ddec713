"""Where two slurp models of benches/eval_ft.py disagree: prompts only one gets right, by error.

Reads two cached evaluations (``eval-<rows>[-plain].json`` in a fine-tuned model directory,
written by ``benches/eval_ft.py``; they hold every prediction) and sorts each prompt that exactly
one model answers right by what the other got wrong first: the intent, the set of slot names, or
only slot values. Example (the breakdown quoted in RESULTS.md for ``ft_eval_r3gi_500``):

    python benches/compare_ft.py ~/.cache/tasc_rs/eval_ft_r3gi/slurp/ft-M0/eval-500-plain.json \
        ~/.cache/tasc_rs/eval_ft_r3gi/slurp/ft-M250/eval-500-plain.json --show 5
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from eval_ft import load_test, parse_slurp

KINDS = ("intent", "slot names", "slot values")


def error_kind(pred: str, ref: str) -> str:
    """The first part of a wrong slurp answer that differs: intent, slot names or slot values."""
    intent, slots = parse_slurp(pred)
    ref_intent, ref_slots = parse_slurp(ref)
    if intent != ref_intent:
        return "intent"
    if {name for name, _ in slots} != {name for name, _ in ref_slots}:
        return "slot names"
    return "slot values"


def compare(
    preds_a: list[str], preds_b: list[str], refs: list[str]
) -> tuple[Counter[tuple[str, str]], list[tuple[str, str, str, str]]]:
    """Counts of (winner, error kind of the loser) and the disagreeing prompts themselves."""
    counts: Counter[tuple[str, str]] = Counter()
    cases = []
    for a, b, ref in zip(preds_a, preds_b, refs, strict=True):
        if (a == ref) == (b == ref):
            continue
        winner, wrong = ("A", b) if a == ref else ("B", a)
        kind = error_kind(wrong, ref)
        counts[(winner, kind)] += 1
        cases.append((winner, kind, ref, wrong))
    return counts, cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="evaluation JSON of model A (e.g. M = 0)")
    parser.add_argument("b", type=Path, help="evaluation JSON of model B (e.g. M = 250)")
    parser.add_argument("--show", type=int, default=0, help="print N disagreeing prompts per kind")
    args = parser.parse_args()
    a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (args.a, args.b))
    if a["task"] != "slurp" or b["task"] != "slurp":
        raise SystemExit("compare_ft.py reads slurp evaluations only")
    if len(a["predictions"]) != len(b["predictions"]):
        raise SystemExit(
            f"the evaluations cover {len(a['predictions'])} and {len(b['predictions'])} prompts; "
            "compare runs over the same --test-rows (cached before this script: 20 predictions)"
        )
    skip = a.get("test_offset", 0)
    if b.get("test_offset", 0) != skip:
        raise SystemExit("the evaluations start at different test rows (--test-offset)")
    refs = [r["output"].strip() for r in load_test("slurp", skip, len(a["predictions"]))]
    counts, cases = compare(a["predictions"], b["predictions"], refs)
    print(
        f"{len(refs)} prompts; only A right: {sum(n for (w, _), n in counts.items() if w == 'A')}"
        f", only B right: {sum(n for (w, _), n in counts.items() if w == 'B')}"
    )
    print("| error of the other model | only A right | only B right |")
    print("|---|---|---|")
    for kind in KINDS:
        print(f"| {kind} | {counts[('A', kind)]} | {counts[('B', kind)]} |")
    for kind in KINDS if args.show else ():
        for winner, _, ref, wrong in [c for c in cases if c[1] == kind][: args.show]:
            print(f"{kind}: only {winner} right | reference: {ref} | other: {wrong}")


if __name__ == "__main__":
    main()
