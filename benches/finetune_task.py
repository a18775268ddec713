"""Fine-tune the embedded SmolLM2-135M-Instruct on a task's train split (for the e2e benchmarks).

The prompt is the chat template with a one-line system instruction and the input as the user
turn; the loss covers the answer and its end-of-turn token. The result is saved with its tokenizer
and a ``tasc_task.json`` (task, instruction) next to it, so benchmarks prompt it exactly as trained.

    python benches/finetune_task.py --task slurp --epochs 1.5 --out ~/.cache/tasc_rs/ft/slurp
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tasc_rs.embedded import cache_dir, load_embedded
from tasc_rs.ft.finetune import FinetuneConfig, finetune
from tasc_rs.hf.corpus import answer_frame
from tasc_rs.hf.task import TaskPrompt, load_rows

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
INSTRUCTIONS = {
    "slurp": "Label the request: intent and slots.",
    "e2e_nlg": "Describe the restaurant in one or two sentences.",
    "spider_dev": "Write the SQL query.",
    "medquad": "Answer the medical question.",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="slurp", choices=sorted(INSTRUCTIONS))
    parser.add_argument("--epochs", type=float, default=1.5)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N train rows")
    parser.add_argument(
        "--trainable-layers", type=int, default=None, help="train only the last N blocks"
    )
    parser.add_argument("--freeze-embeddings", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or cache_dir() / "ft" / args.task
    torch.manual_seed(0)
    model, tok = load_embedded()
    instruction = INSTRUCTIONS[args.task]
    prompt = TaskPrompt(tok, examples=(), instruction=instruction)
    end = answer_frame(tok).end
    rows = load_rows(DATA / args.task / "train.jsonl", limit=args.limit)
    examples = [
        (
            prompt.ids(r["input"])[0].tolist(),
            tok(r["output"] + end, add_special_tokens=False)["input_ids"],
        )
        for r in rows
    ]
    config = FinetuneConfig(
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        trainable_layers=args.trainable_layers,
        train_embeddings=not args.freeze_embeddings,
    )
    start = time.perf_counter()
    model = finetune(model, examples, out / "train", config, pad_id=tok.pad_token_id or 0)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    meta = {"task": args.task, "instruction": instruction, "rows": len(rows), **vars(config)}
    (out / "tasc_task.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    print(f"saved {out} after {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
