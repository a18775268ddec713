"""Instructions and simulated cache misses of a batch-proposer step, per row (issue 27, sec. 4).

Wall clock on this machine moves 30-50% between runs; a drafting step over 256 rows of 2k
tokens is bound by cache misses, which valgrind's cache simulation counts the same every run.
This script prepares medquad rows and a drafter (as benches/bench_pool.py does: SmolLM2
tokenizer, a drafter from 3,000 other medquad answers with its aliases and respelling), then runs
`valgrind --tool=callgrind --cache-sim=yes` on a driver that makes the first step (indexing every
row's context) and then `--steps` more, twice (2 and 2 + `--steps` steps), counting inside the
native step only (`--toggle-collect` on the batch proposer's drafting closure). The difference
of the two runs, divided by rows and steps, is what one row costs a step: instructions (Ir),
first-level data read misses (D1mr, 32 KB) and last-level misses (DLmr/DLmw, a 32 MB 16-way
last level: what reaches memory). Compare two builds by running it on each.

    python benches/row_misses.py [--cells 256x2048 256x512 ...] [--steps 10] [--write]
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _results import DATA, machine, write_section

#: callgrind's events, in the order it prints them.
EVENTS = ["Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw"]
#: The native function that drafts a batch (the GIL released), collected alone.
STEP = "tasc_rs::py::serving::PyBatchProposer::propose::{{closure}}"


def prepare(work: Path, rows: int, context: int, steps: int) -> None:
    from transformers import AutoTokenizer

    from tasc_rs.embedded import embedded_model_dir
    from tasc_rs.hf.corpus import build_drafter

    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    with open(DATA / "medquad" / "train.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["output"] for line in f]
    stream = np.array(tok("\n".join(texts[:3000]))["input_ids"], dtype=np.int32)
    drafter = build_drafter(tok, texts[3000:6000], progress=False)
    drafter.save(work / "drafter.tasc")
    (work / "aliases.pkl").write_bytes(pickle.dumps((drafter.token_aliases, drafter.respelling)))
    width = context + steps + 16
    rng = np.random.default_rng(rows)
    buf = np.zeros((rows, width), dtype=np.int32)
    for i, s in enumerate(rng.integers(0, len(stream) - width, size=rows)):
        buf[i] = stream[s : s + width]
    np.save(work / "rows.npy", buf)


def drive(work: Path, context: int, steps: int) -> None:
    """The valgrind run: the first step, then ``steps`` more, each row gaining one token."""
    from tasc_rs import NgramDrafter

    drafter = NgramDrafter.load(work / "drafter.tasc")
    drafter.token_aliases, drafter.respelling = pickle.loads((work / "aliases.pkl").read_bytes())
    buf = np.load(work / "rows.npy")
    rows = len(buf)
    bp = drafter.batch_proposer(max_requests=4 * rows, threads=1)
    num = np.full(rows, context, dtype=np.int32)
    for _ in range(steps):
        sampled = [[int(buf[i, num[i] - 1])] for i in range(rows)]
        bp.propose(sampled, num, buf, k=8)
        num += 1


def totals(out: Path) -> dict[str, int]:
    text = subprocess.run(
        ["callgrind_annotate", str(out)], capture_output=True, text=True, check=True
    ).stdout
    line = next(x for x in text.splitlines() if "PROGRAM TOTALS" in x)
    values = [int(v.replace(",", "")) for v in re.sub(r"\([^)]*\)", "", line).split()[:9]]
    return dict(zip(EVENTS, values, strict=True))


def measure(rows: int, context: int, steps: int) -> dict[str, float]:
    """Per row and step: each event's count in a run of ``2 + steps`` steps less a run of 2."""
    work = Path(tempfile.mkdtemp(prefix="tasc-misses-"))
    prepare(work, rows, context, steps)
    runs = {}
    for n in (2, 2 + steps):
        out = work / f"callgrind.{n}.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--cache-sim=yes",
                "--LL=33554432,16,64",
                f"--toggle-collect={STEP}",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--drive",
                str(work),
                "--drive-steps",
                str(n),
                "--context",
                str(context),
            ],
            check=True,
            capture_output=True,
        )
        runs[n] = totals(out)
    shutil.rmtree(work, ignore_errors=True)
    a, b = runs[2], runs[2 + steps]
    return {e: (b[e] - a[e]) / (rows * steps) for e in EVENTS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--cells",
        nargs="+",
        default=["256x2048"],
        help="ROWSxCONTEXT cells to measure (default: 256x2048)",
    )
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--write", action="store_true", help="update benches/RESULTS.md")
    ap.add_argument("--drive", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--drive-steps", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--context", type=int, default=2048, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.drive is not None:
        drive(args.drive, args.context, args.drive_steps)
        return
    if shutil.which("valgrind") is None:
        sys.exit("row_misses.py needs valgrind (apt-get install valgrind)")
    cells = []
    for cell in args.cells:
        rows, _, context = cell.partition("x")
        cells.append((int(rows), int(context)))
    lines = [
        "## Instructions and cache misses of a batch-proposer step (issue 27)",
        "",
        f"`python benches/row_misses.py --cells {' '.join(args.cells)} --steps {args.steps}` "
        f"on {machine()}: valgrind's cache simulation (32 KB L1, 32 MB 16-way last level) "
        "inside the native drafting step only, medquad rows and the bench_pool drafter (aliases "
        "and respelling), each row gaining one token a step, drafts of up to 8 tokens; per row "
        f"and step, the difference of runs of 2 and {2 + args.steps} steps. These counts do not "
        "move with the machine's load.",
        "",
        "| rows | context | instructions | L1 read misses | last-level read misses | "
        "last-level write misses |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for rows, context in cells:
        r = measure(rows, context, args.steps)
        print(
            f"{rows} rows x {context} tokens, {args.steps} steps: per row and step "
            + ", ".join(f"{e} {r[e]:.1f}" for e in ("Ir", "D1mr", "DLmr", "DLmw"))
        )
        lines.append(
            f"| {rows} | {context} | {r['Ir']:,.0f} | {r['D1mr']:.1f} | {r['DLmr']:.1f} | "
            f"{r['DLmw']:.1f} |"
        )
    if args.write:
        lines += [
            "",
            "Before the context index's follower links (the same script on the build of "
            'b65cc19; benches/NOTES.md "Follower links in the context index"; the 256-row cells '
            "over 10 steps), instructions and L1 / last-level read / last-level write misses: "
            "256 x 2048 15,673, 218.3 / 32.8 / 11.5; 256 x 512 15,358, 200.1 / 15.1 / 10.9; "
            "16 x 2048 14,633, 208.0 / 9.5 / 2.4; 1 x 2048 15,286, 263.1 / 4.1 / -0.1.",
        ]
        write_section("row_misses", "\n".join(lines))


if __name__ == "__main__":
    main()
