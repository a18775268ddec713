"""The main job: TASC-spec vs plain greedy on the embedded SmolLM2-135M and shipped SLURP data.

Steps: load the embedded model (downloaded and cached on first use), build few-shot chat
prompts so the base instruct model answers in the task's ``intent: ...; slots: ...`` format,
build the drafter from the shipped train outputs (references plus the model's own greedy
answers to the train prompts, which ship as ``smollm2_outputs.jsonl``) with the tuned settings
(n_max 8, lambda 0.9, longer-match mixing, online learning of each answer), calibrate the verify
cost on this device (each draft is cut where expected tokens per unit of cost peak), and time
both decoders on shipped test prompts.

Example:
    >>> from tasc_rs.hf.demo import run_demo  # doctest: +SKIP
    >>> print(run_demo(limit=10).table())  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from tasc_rs.errors import InvalidInputError
from tasc_rs.hf.adaptive import calibrate
from tasc_rs.hf.corpus import build_drafter
from tasc_rs.hf.task import (
    SLURP_INSTRUCTION,
    Comparison,
    TaskPrompt,
    compare,
    load_rows,
    shipped_task_path,
)

DEMO_TASK = "slurp"
DEMO_SHOTS = 6
SELF_OUTPUTS = "smollm2_outputs"


@dataclass
class DemoResult:
    """What :func:`run_demo` measured.

    Attributes:
        comparison: Plain vs TASC-spec timings and statistics.
        num_draft_tokens: Draft length used.
        min_prob: Drafting threshold used.
        corpus_size: Outputs the drafter was built from.
        device: Where the model ran.
    """

    comparison: Comparison
    num_draft_tokens: int
    min_prob: float
    corpus_size: int
    device: str

    def table(self) -> str:
        """The side-by-side table with a header line."""
        head = (
            f"TASC-spec on SmolLM2-135M-Instruct ({self.device}), task slurp, "
            f"{len(self.comparison.new_tokens)} test prompts, "
            f"drafter from {self.corpus_size} outputs, "
            f"k<={self.num_draft_tokens} cut by verify cost, min_prob={self.min_prob}"
        )
        return f"{head}\n{self.comparison.table()}"


def demo_corpus() -> list[str]:
    """Shipped train references plus the embedded model's own answers to the train prompts."""
    texts = [row["output"] for row in load_rows(shipped_task_path(DEMO_TASK, "train"))]
    with contextlib.suppress(InvalidInputError):  # optional file; references alone still work
        texts += [row["output"] for row in load_rows(shipped_task_path(DEMO_TASK, SELF_OUTPUTS))]
    return texts


def run_demo(
    limit: int = 20,
    max_new_tokens: int = 48,
    device: str | None = None,
    dtype: Any = None,
    num_draft_tokens: int | None = None,
    min_prob: float | None = None,
    model_and_tokenizer: tuple[Any, Any] | None = None,
    out: TextIO | None = sys.stderr,
    tree_width: int | None = None,
) -> DemoResult:
    """Run the side-by-side benchmark on the embedded model and shipped data.

    Args:
        limit: Test prompts to run (the package ships 100).
        max_new_tokens: Generation budget per prompt.
        device: Torch device; default CUDA when available, else CPU.
        dtype: Model dtype; default float32.
        num_draft_tokens: Draft length; default calibrated on this device.
        min_prob: Drafting threshold; default calibrated on this device.
        model_and_tokenizer: Use these instead of loading the embedded model.
        out: Where progress lines go (None for silence).
        tree_width: Children per node of drafted token trees (1: chains; default: trees).

    Returns:
        A :class:`DemoResult`; ``print(result.table())`` shows the table.

    Example:
        >>> result = run_demo(limit=5)  # doctest: +SKIP
    """

    def say(msg: str) -> None:
        if out is not None:
            print(msg, file=out, flush=True)

    start = time.perf_counter()
    if model_and_tokenizer is None:
        from tasc_rs.embedded import load_embedded

        say("loading SmolLM2-135M-Instruct (first run downloads ~95 MB and converts it once)...")
        model, tokenizer = load_embedded(device=device, dtype=dtype)
    else:
        model, tokenizer = model_and_tokenizer
    train = load_rows(shipped_task_path(DEMO_TASK, "train"))
    test = load_rows(shipped_task_path(DEMO_TASK, "test"), limit=limit)
    prompt = TaskPrompt(tokenizer, examples=train[:DEMO_SHOTS], instruction=SLURP_INSTRUCTION)
    texts = demo_corpus()
    drafter = build_drafter(tokenizer, texts, min_count=2)  # the tuned preset (the default)
    if num_draft_tokens is None:
        say("measuring the cost of verifying k tokens on this device...")
        num_draft_tokens = calibrate(model).max_draft_tokens
    min_prob = 0.0 if min_prob is None else min_prob
    say(
        f"ready in {time.perf_counter() - start:.1f} s; k<={num_draft_tokens} cut by verify "
        f"cost, min_prob={min_prob}"
    )
    comparison = compare(
        model,
        tokenizer,
        [prompt.ids(row["input"]) for row in test],
        drafter,
        max_new_tokens=max_new_tokens,
        num_draft_tokens=num_draft_tokens,
        min_prob=min_prob,
        progress=out is not None,
        tree_width=tree_width,
    )
    return DemoResult(comparison, num_draft_tokens, min_prob, len(texts), str(model.device))
