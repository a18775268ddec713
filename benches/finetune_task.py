"""Fine-tune the embedded SmolLM2-135M-Instruct on a task's train split (for the e2e benchmarks).

A thin wrapper over ``tasc finetune`` that picks the task's data file and a one-line instruction;
the saved model carries ``tasc_task.json`` so ``benches/e2e_spec.py --model DIR`` prompts it
exactly as it was trained. Extra arguments go to ``tasc finetune`` unchanged.

    python benches/finetune_task.py --task slurp -o ~/.cache/tasc_rs/ft/slurp --epochs 1.5
    python benches/finetune_task.py --task slurp -o OUT --epochs 1 --trainable-layers 10 \\
        --freeze-embeddings     # what the CPU run in RESULTS.md used (stopped after 100 steps)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tasc_rs.cli import main as tasc

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
INSTRUCTIONS = {
    "slurp": "Label the request: intent and slots.",
    "e2e_nlg": "Describe the restaurant in one or two sentences.",
    "spider_dev": "Write the SQL query.",
    "medquad": "Answer the medical question.",
}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="slurp", choices=sorted(INSTRUCTIONS))
    args, rest = parser.parse_known_args()
    train = str(DATA / args.task / "train.jsonl")
    sys.exit(tasc(["finetune", train, "--instruction", INSTRUCTIONS[args.task], *rest]))
