"""The ``tasc enrich`` and ``tasc finetune`` subcommands (TASC-ft from the shell).

Both write into a fresh temporary directory next to ``--out`` and rename it into place only when
everything succeeded, so a failed run never leaves a half-written model or tokenizer, and the
input model and tokenizer are only ever read.

Example:
    tasc enrich train.jsonl --budget 500 -o slurp-enriched
    tasc finetune train.jsonl --model slurp-enriched -o slurp-ft --epochs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasc_rs._cli_types import input_file, integer, model_ref, number, output_dir
from tasc_rs.errors import InvalidInputError

if TYPE_CHECKING:
    from tasc_rs.hf.task import TaskPrompt

FT_INSTRUCTION = "Answer the request in the task's format."
ENRICHMENT_REPORT = "tasc_enrichment.json"  # written by `tasc enrich` beside the model
TASK_META = "tasc_task.json"  # written by `tasc finetune` beside the model


def add_subcommands(sub: Any) -> dict[str, Any]:
    """Register ``enrich`` and ``finetune`` on an argparse subparsers object; return handlers."""
    e = sub.add_parser(
        "enrich",
        help="TASC-ft: add frequent output n-grams to a tokenizer and model",
        description="Run the vocabulary enrichment loop over task outputs and save the enriched "
        "tokenizer and model (new embeddings = mean of their parts) into --out.",
    )
    e.add_argument("corpus", type=input_file, help="JSONL file with the task outputs in --field")
    e.add_argument("-o", "--out", required=True, type=output_dir, help="directory to create")
    e.add_argument("--field", default="output", help='JSONL field (default: "output")')
    e.add_argument(
        "--model", default=None, type=model_ref, help="model dir or Hub name (default: embedded)"
    )
    e.add_argument("--budget", type=integer(1), default=500, help="tokens to add, M (default: 500)")
    e.add_argument("--n-max", type=integer(2, 8), default=4, help="longest n-gram (default: 4)")
    e.add_argument(
        "--alpha", type=number(0.0, 1.0), default=None, help="PCS threshold (default: 0.05)"
    )
    e.add_argument(
        "--min-count", type=integer(1), default=2, help="ignore rarer n-grams (default: 2)"
    )
    e.add_argument(
        "--boundaries",
        default="",
        help="ASCII characters delimiting output fields (e.g. ';'): no new token holds one "
        "after its first character (default: none)",
    )
    e.add_argument(
        "--exclude-copied",
        action="store_true",
        help="keep words the output copies from its request (--input-field) out of new "
        "tokens, so new tokens hold only the output format (not in the paper)",
    )
    e.add_argument("--input-field", default="input", help='JSONL request field (default: "input")')
    e.add_argument(
        "--allow-fewer", action="store_true", help="add fewer tokens if candidates run out"
    )
    f = sub.add_parser(
        "finetune",
        help="fine-tune a model on a JSONL task (loss on the outputs only)",
        description="Fine-tune on input/output rows with the chat template; resumable "
        "(rerun the same command after an interruption).",
    )
    f.add_argument("train", type=input_file, help="JSONL file with 'input' and 'output' fields")
    f.add_argument(
        "-o", "--out", required=True, type=output_dir, help="directory for the fine-tuned model"
    )
    f.add_argument(
        "--model", default=None, type=model_ref, help="model dir or Hub name (default: embedded)"
    )
    f.add_argument("--instruction", default=FT_INSTRUCTION, help="system message of the prompt")
    f.add_argument(
        "--epochs", type=number(0.0, open_lo=True), default=3.0, help="passes (default: 3)"
    )
    f.add_argument(
        "--lr", type=number(0.0, open_lo=True), default=2e-4, help="peak learning rate (2e-4)"
    )
    f.add_argument("--batch-size", type=integer(1), default=8)
    f.add_argument("--lora-r", type=integer(1), default=None, help="LoRA rank (needs peft)")
    f.add_argument(
        "--trainable-layers", type=integer(1), default=None, help="train the last N blocks"
    )
    f.add_argument("--freeze-embeddings", action="store_true")
    f.add_argument(
        "--no-input-embedding-grad",
        action="store_true",
        help="embeddings learn through the LM head only (no backward below --trainable-layers)",
    )
    f.add_argument(
        "--new-token-lr-scale",
        type=number(0.0),
        default=None,
        help="learning-rate multiplier of the tokens added by `tasc enrich` (default: 30)",
    )
    f.add_argument(
        "--prompt-tokens",
        choices=["base", "enriched"],
        default="base",
        help="vocabulary that encodes the requests of an enriched model (default: base; the "
        "answers always use the enriched one)",
    )
    f.add_argument("--limit", type=integer(1), default=None, help="use the first N rows only")
    return {"enrich": cmd_enrich, "finetune": cmd_finetune}


@contextmanager
def staged(out: str | Path) -> Iterator[Path]:
    """A temporary sibling of ``out`` that becomes ``out`` only if the block succeeds."""
    target = Path(out)
    if target.exists() and any(target.iterdir()):
        raise InvalidInputError(f"{target} exists and is not empty; choose a new --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            target.rmdir()
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def cmd_enrich(args: argparse.Namespace) -> None:
    """``tasc enrich``: enrichment, tokenizer and model expansion, saved together."""
    from tasc_rs.embedded import load_model
    from tasc_rs.ft import DEFAULT_ALPHA, enrich, expand_model, expand_tokenizer
    from tasc_rs.hf.corpus import read_outputs

    outputs = list(read_outputs(args.corpus, field=args.field))
    inputs = (
        list(read_outputs(args.corpus, field=args.input_field)) if args.exclude_copied else None
    )
    model, tokenizer = load_model(args.model, device="cpu")
    alpha = DEFAULT_ALPHA if args.alpha is None else args.alpha
    result = enrich(
        outputs,
        tokenizer,
        budget=args.budget,
        n_max=args.n_max,
        alpha=alpha,
        min_count=args.min_count,
        strict=not args.allow_fewer,
        boundaries=args.boundaries,
        inputs=inputs,
    )
    with staged(args.out) as tmp:
        new_tokenizer = expand_tokenizer(tokenizer, result)
        expand_model(model, new_tokenizer, result)
        new_tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp)
        report = {
            "settings": result.settings,
            "base_vocab_size": result.base_vocab_size,
            "compression_ratio": result.compression_ratio(),
            "corpus_tokens_after_each_step": result.compression_curve(),
            "tokens": [dataclasses.asdict(t) for t in result.tokens],
        }
        (tmp / ENRICHMENT_REPORT).write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(
        f"added {len(result.tokens)} tokens; outputs {result.compression_ratio():.2f}x shorter; "
        f"saved to {args.out}"
    )


def enriched_base_size(model: str | None) -> int | None:
    """The base vocabulary size recorded by ``tasc enrich`` in ``model``, if it wrote it."""
    report = Path(model) / ENRICHMENT_REPORT if model else None
    if report is None or not report.is_file():
        return None
    try:
        return int(json.loads(report.read_text(encoding="utf-8"))["base_vocab_size"])
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidInputError(f"{report}: no valid base_vocab_size ({e})") from e


def finetuned_prompt(model_dir: str | Path, tokenizer: Any) -> TaskPrompt:
    """The prompt a model written by ``tasc finetune`` was trained with (0-shot).

    Reads its ``tasc_task.json``: the instruction and, for an enriched model trained with
    ``--prompt-tokens base``, a base-vocabulary view of ``tokenizer`` for the requests. Models
    written before ``prompt_tokens`` was recorded were trained on enriched prompts.

    Raises:
        InvalidInputError: ``model_dir`` has no readable ``tasc_task.json``.

    Example:
        >>> model, tokenizer = load_model("slurp-ft")  # doctest: +SKIP
        >>> prompt = finetuned_prompt("slurp-ft", tokenizer)  # doctest: +SKIP
        >>> ids = prompt.ids("wake me up at seven")  # doctest: +SKIP
    """
    from tasc_rs.ft.expand import prompt_tokenizer
    from tasc_rs.hf.task import TaskPrompt

    path = Path(model_dir) / TASK_META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        instruction = str(meta["instruction"])
    except (OSError, ValueError, KeyError) as e:
        raise InvalidInputError(f"{path}: not a model written by `tasc finetune` ({e})") from e
    base = meta.get("new_tokens_from")
    view = None
    if base is not None and meta.get("prompt_tokens", "enriched") == "base":
        view = prompt_tokenizer(tokenizer, int(base))
    return TaskPrompt(tokenizer, examples=(), instruction=instruction, prompt_tokenizer=view)


def cmd_finetune(args: argparse.Namespace) -> None:
    """``tasc finetune``: answer-only fine-tuning with resumable checkpoints."""
    from tasc_rs.embedded import load_model
    from tasc_rs.ft.expand import prompt_tokenizer
    from tasc_rs.ft.finetune import FinetuneConfig, finetune
    from tasc_rs.hf.corpus import answer_frame
    from tasc_rs.hf.task import TaskPrompt, load_rows

    rows = load_rows(args.train, limit=args.limit)
    if any(not isinstance(r.get("output"), str) for r in rows):
        raise InvalidInputError(f"{args.train}: every row needs a string 'output'")
    new_from = enriched_base_size(args.model)
    if new_from is None and args.new_token_lr_scale is not None:
        raise InvalidInputError(
            "--new-token-lr-scale needs a --model written by `tasc enrich` "
            "(its tasc_enrichment.json tells which tokens are new)"
        )
    model, tokenizer = load_model(args.model)
    view = None
    if new_from is not None and args.prompt_tokens == "base":
        view = prompt_tokenizer(tokenizer, new_from)
    prompt = TaskPrompt(tokenizer, examples=(), instruction=args.instruction, prompt_tokenizer=view)
    end = answer_frame(tokenizer).end
    examples = [
        (
            prompt.ids(r["input"])[0].tolist(),
            tokenizer(r["output"] + end, add_special_tokens=False)["input_ids"],
        )
        for r in rows
    ]
    config = FinetuneConfig(
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        lora_r=args.lora_r,
        trainable_layers=args.trainable_layers,
        train_embeddings=not args.freeze_embeddings,
        input_embedding_grad=not args.no_input_embedding_grad,
    )
    if args.new_token_lr_scale is not None:
        config.new_token_lr_scale = args.new_token_lr_scale
    out = Path(args.out)
    # Checkpoints live beside --out so an interrupted run resumes; the model moves in at the end.
    work = out.parent / f".{out.name}.checkpoints"
    trained = finetune(
        model, examples, work, config, pad_id=tokenizer.pad_token_id or 0, new_tokens_from=new_from
    )
    if config.lora_r is not None:
        trained = trained.merge_and_unload()
    with staged(out) as tmp:
        trained.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        meta = {
            "instruction": args.instruction,
            "rows": len(rows),
            "new_tokens_from": new_from,
            "prompt_tokens": args.prompt_tokens if new_from is not None else "base",
            **dataclasses.asdict(config),
        }
        (tmp / TASK_META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    shutil.rmtree(work, ignore_errors=True)
    print(f"fine-tuned on {len(rows)} rows; saved to {out}")
