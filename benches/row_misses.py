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

    python benches/row_misses.py [--rows 256] [--context 2048] [--steps 10]
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

#: callgrind's events, in the order it prints them.
EVENTS = ["Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw"]
#: The native function that drafts a batch (the GIL released), collected alone.
STEP = "tasc_rs::py::serving::PyBatchProposer::propose::{{closure}}"


def prepare(work: Path, rows: int, context: int, steps: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from _results import DATA
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--drive", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--drive-steps", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.drive is not None:
        drive(args.drive, args.context, args.drive_steps)
        return
    if shutil.which("valgrind") is None:
        sys.exit("row_misses.py needs valgrind (apt-get install valgrind)")
    work = Path(tempfile.mkdtemp(prefix="tasc-misses-"))
    prepare(work, args.rows, args.context, args.steps)
    runs = {}
    for steps in (2, 2 + args.steps):
        out = work / f"callgrind.{steps}.out"
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
                str(steps),
                "--context",
                str(args.context),
            ],
            check=True,
            capture_output=True,
        )
        runs[steps] = totals(out)
    shutil.rmtree(work, ignore_errors=True)
    per = args.rows * args.steps
    a, b = runs[2], runs[2 + args.steps]
    print(
        f"{args.rows} rows x {args.context} tokens, {args.steps} steps: per row and step "
        + ", ".join(f"{e} {(b[e] - a[e]) / per:.1f}" for e in ("Ir", "D1mr", "DLmr", "DLmw"))
    )


if __name__ == "__main__":
    main()
