"""Task prompts and the side-by-side benchmark (plain greedy vs TASC-spec).

A task is a JSONL file of ``{"input": ..., "output": ...}`` rows. A prompt is the chat template
applied to an instruction, a few solved examples as earlier chat turns (so even a base
instruct model answers in the task's format), and the new input.

Example:
    >>> rows = load_rows(shipped_task_path("slurp", "test"))  # doctest: +SKIP
    >>> shots = load_rows(shipped_task_path("slurp", "train"), limit=6)  # doctest: +SKIP
    >>> ids = TaskPrompt(tokenizer, examples=shots).ids("wake me up at 7")  # doctest: +SKIP
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from tasc_rs._jsonl import jsonl_values, text_field
from tasc_rs.errors import InvalidInputError
from tasc_rs.hf.speculative import generate
from tasc_rs.hf.stats import SpecStats

SLURP_INSTRUCTION = (
    "Label the user's request with its intent and slots. Answer with exactly one line: "
    "'intent: <intent>; slots: <type>=<value>, ...' or 'intent: <intent>; slots: none'."
)
DEFAULT_INSTRUCTION = "Answer in exactly the same format as the examples."


def shipped_task_path(task: str, split: str) -> Path:
    """Path of a JSONL split shipped inside the package (``tasc_rs/data/<task>/<split>.jsonl``).

    Example:
        >>> shipped_task_path("slurp", "train").name
        'train.jsonl'
    """
    path = Path(str(resources.files("tasc_rs") / "data" / task / f"{split}.jsonl"))
    if not path.exists():
        raise InvalidInputError(f"no shipped data for task {task!r} split {split!r} at {path}")
    return path


def load_rows(path: str | Path, limit: int | None = None) -> list[dict[str, str]]:
    """Read ``{"input", "output"}`` rows from a JSONL file.

    Example:
        >>> len(load_rows(shipped_task_path("slurp", "test"), limit=5))
        5
    """
    rows: list[dict[str, str]] = []
    if limit is not None and limit <= 0:
        return rows
    for lineno, row in jsonl_values(path):
        text_field(path, lineno, row, "input")
        if isinstance(row.get("output"), str):
            text_field(path, lineno, row, "output")
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise InvalidInputError(f"{path} holds no rows (one JSON object per line expected)")
    return rows


@dataclass
class TaskPrompt:
    """Builds few-shot chat prompts for one task.

    Attributes:
        tokenizer: The target's tokenizer (with a chat template, or plain text is used).
        examples: Solved rows shown as earlier chat turns.
        instruction: System message.
        prompt_tokenizer: Encodes the rendered prompt (default: ``tokenizer``). For a model
            fine-tuned after ``tasc enrich``, the base-vocabulary view from
            :func:`tasc_rs.ft.prompt_tokenizer`, so requests keep their base tokenization.
    """

    tokenizer: Any
    examples: Sequence[dict[str, str]] = ()
    instruction: str = DEFAULT_INSTRUCTION
    prompt_tokenizer: Any = None

    def messages(self, text: str) -> list[dict[str, str]]:
        """Chat messages for input ``text``."""
        msgs = [{"role": "system", "content": self.instruction}]
        for ex in self.examples:
            msgs.append({"role": "user", "content": ex["input"]})
            msgs.append({"role": "assistant", "content": ex["output"]})
        msgs.append({"role": "user", "content": text})
        return msgs

    def ids(self, text: str) -> torch.Tensor:
        """``(1, n)`` prompt ids for input ``text``, ending with the assistant header."""
        if getattr(self.tokenizer, "chat_template", None):
            rendered = self.tokenizer.apply_chat_template(
                self.messages(text), tokenize=False, add_generation_prompt=True
            )
        else:
            shots = "".join(
                f"Input: {e['input']}\nOutput: {e['output']}\n\n" for e in self.examples
            )
            rendered = f"{self.instruction}\n\n{shots}Input: {text}\nOutput:"
        encoder = self.prompt_tokenizer or self.tokenizer
        ids = encoder(rendered, add_special_tokens=False)["input_ids"]
        return torch.tensor([ids], dtype=torch.long)


@dataclass
class Comparison:
    """Plain greedy ``model.generate`` vs TASC-spec on the same prompts.

    Attributes:
        plain_seconds: Wall time per prompt of plain greedy decoding.
        spec_seconds: Wall time per prompt of TASC-spec.
        new_tokens: Generated tokens per prompt (identical for both when outputs match).
        identical: Per prompt, whether the two outputs are token-identical.
        stats: TASC-spec counters summed over all prompts.
        outputs: The TASC-spec output texts.
    """

    plain_seconds: list[float] = field(default_factory=list)
    spec_seconds: list[float] = field(default_factory=list)
    new_tokens: list[int] = field(default_factory=list)
    identical: list[bool] = field(default_factory=list)
    stats: SpecStats = field(default_factory=SpecStats)
    outputs: list[str] = field(default_factory=list)

    @property
    def plain_tokens_per_second(self) -> float:
        """Generated tokens per second of plain greedy decoding."""
        return sum(self.new_tokens) / max(sum(self.plain_seconds), 1e-9)

    @property
    def spec_tokens_per_second(self) -> float:
        """Generated tokens per second of TASC-spec."""
        return sum(self.new_tokens) / max(sum(self.spec_seconds), 1e-9)

    @property
    def speedup(self) -> float:
        """Total plain time over total TASC-spec time."""
        return sum(self.plain_seconds) / max(sum(self.spec_seconds), 1e-9)

    @property
    def median_speedup(self) -> float:
        """Median of per-prompt speedups."""
        pairs = zip(self.plain_seconds, self.spec_seconds, strict=True)
        ratios = [p / max(s, 1e-9) for p, s in pairs]
        return statistics.median(ratios) if ratios else 0.0

    def table(self) -> str:
        """Side-by-side text table."""
        n = len(self.new_tokens)
        same = f"{sum(self.identical)}/{n}"
        lines = [
            f"{'':28}{'plain greedy':>14}{'TASC-spec':>14}",
            f"{'tokens / s':28}{self.plain_tokens_per_second:>14.1f}"
            f"{self.spec_tokens_per_second:>14.1f}",
            f"{'mean tokens / forward pass':28}{1.0:>14.2f}{self.stats.tokens_per_forward:>14.2f}",
            f"{'wall time (s)':28}{sum(self.plain_seconds):>14.2f}{sum(self.spec_seconds):>14.2f}",
            f"{'speedup (total / median)':28}{'1.00x':>14}"
            f"{f'{self.speedup:.2f}x / {self.median_speedup:.2f}x':>14}",
            f"{'outputs identical':28}{'':>14}{same:>14}",
            f"{'draft acceptance':28}{'':>14}{self.stats.acceptance_rate:>14.0%}",
            f"{'drafting share of time':28}{'':>14}"
            f"{self.stats.draft_seconds / max(self.stats.total_seconds, 1e-9):>14.1%}",
        ]
        return "\n".join(lines)


@torch.no_grad()
def compare(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[torch.Tensor],
    drafter: Any,
    max_new_tokens: int = 64,
    num_draft_tokens: int | None = None,
    min_prob: float | None = None,
    progress: bool = True,
    tree_width: int | None = None,
) -> Comparison:
    """Time plain greedy ``model.generate`` against TASC-spec on each prompt.

    Args:
        model: Target causal LM.
        tokenizer: Its tokenizer (to decode outputs).
        prompts: ``(1, n)`` prompt id tensors.
        drafter: A ``tasc_rs.NgramDrafter``.
        max_new_tokens: Generation budget per prompt.
        num_draft_tokens: Longest draft; default from calibration.
        min_prob: Drafting threshold; default from calibration.
        progress: Show a progress bar.
        tree_width: Children per node of drafted token trees (1: chains); default
            ``tasc_rs.drafter.DEFAULT_TREE_WIDTH``.

    Returns:
        A :class:`Comparison`.

    Example:
        >>> print(compare(model, tok, prompts, drafter).table())  # doctest: +SKIP
    """
    result = Comparison()
    eos = model.generation_config.eos_token_id
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": False, "eos_token_id": eos}
    items: Any = prompts
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(prompts, desc="plain vs TASC-spec", unit="prompt")
    warm = prompts[0].to(model.device)
    model.generate(warm, max_new_tokens=2, do_sample=False)  # one-off allocations, kernel warm-up
    for ids in items:
        ids = ids.to(model.device)
        start = time.perf_counter()
        plain = model.generate(ids, **kwargs)
        result.plain_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        out = generate(
            model,
            ids,
            drafter,
            num_draft_tokens=num_draft_tokens,
            min_prob=min_prob,
            tree_width=tree_width,
            **kwargs,
        )
        result.spec_seconds.append(time.perf_counter() - start)
        result.stats += out.stats
        result.new_tokens.append(plain.shape[1] - ids.shape[1])
        result.identical.append(torch.equal(plain, out.sequences))
        result.outputs.append(
            tokenizer.decode(out.sequences[0, ids.shape[1] :], skip_special_tokens=True).strip()
        )
    return result
