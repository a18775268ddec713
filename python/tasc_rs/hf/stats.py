"""Statistics of a speculative generation run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SpecStats:
    """Counters filled in by the speculative decoding loop; add runs together with ``+=``.

    Attributes:
        forward_passes: Target-model forward passes, the prefill included.
        new_tokens: Tokens generated (emitted) in total.
        drafted: Draft tokens sent to the target for verification.
        accepted: Draft tokens the target accepted.
        drafted_at: ``drafted_at[i]`` is how many drafts had a token at position ``i``.
        accepted_at: ``accepted_at[i]`` is how many draft tokens at position ``i`` were accepted.
        draft_seconds: Wall time spent in the drafter (propose + extend).
        verify_seconds: Wall time spent in target forward passes and acceptance.
        sequences: Sequences (batch rows) decoded.
        rows: One ``SpecStats`` per decoded row (in batch order; ``+=`` appends them). In a
            batched run ``forward_passes`` counts the batch's forward passes (one per step for
            all rows) and each row's counts the steps it took part in.

    Example:
        >>> s = SpecStats(forward_passes=4, new_tokens=10, drafted=8, accepted=6)
        >>> s.tokens_per_forward, s.acceptance_rate
        (2.5, 0.75)
    """

    forward_passes: int = 0
    new_tokens: int = 0
    drafted: int = 0
    accepted: int = 0
    drafted_at: list[int] = field(default_factory=list)
    accepted_at: list[int] = field(default_factory=list)
    draft_seconds: float = 0.0
    verify_seconds: float = 0.0
    sequences: int = 0
    rows: list[SpecStats] = field(default_factory=list, repr=False)

    @property
    def tokens_per_forward(self) -> float:
        """Mean tokens generated per target forward pass (1.0 for plain decoding)."""
        return self.new_tokens / self.forward_passes if self.forward_passes else 0.0

    @property
    def acceptance_rate(self) -> float:
        """Fraction of drafted tokens that were accepted."""
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def acceptance_by_position(self) -> list[float]:
        """Acceptance rate of the draft token at each position (0 = first drafted token)."""
        return [a / d if d else 0.0 for a, d in zip(self.accepted_at, self.drafted_at, strict=True)]

    @property
    def total_seconds(self) -> float:
        """Drafting plus verification wall time."""
        return self.draft_seconds + self.verify_seconds

    def record_step(self, drafted: int, accepted: int) -> None:
        """Record one verification step that sent ``drafted`` tokens and accepted ``accepted``."""
        self.forward_passes += 1
        self.drafted += drafted
        self.accepted += accepted
        if len(self.drafted_at) < drafted:
            grow = drafted - len(self.drafted_at)
            self.drafted_at.extend([0] * grow)
            self.accepted_at.extend([0] * grow)
        for i in range(drafted):
            self.drafted_at[i] += 1
        for i in range(accepted):
            self.accepted_at[i] += 1

    def __iadd__(self, other: SpecStats) -> SpecStats:
        for name in ("forward_passes", "new_tokens", "drafted", "accepted", "sequences"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.draft_seconds += other.draft_seconds
        self.verify_seconds += other.verify_seconds
        width = max(len(self.drafted_at), len(other.drafted_at))
        self.drafted_at = _add_padded(self.drafted_at, other.drafted_at, width)
        self.accepted_at = _add_padded(self.accepted_at, other.accepted_at, width)
        self.rows = [*self.rows, *other.rows]
        return self

    def as_dict(self) -> dict[str, Any]:
        """Counters and derived rates as a plain, JSON-serializable dict."""
        return {
            "forward_passes": self.forward_passes,
            "new_tokens": self.new_tokens,
            "drafted": self.drafted,
            "accepted": self.accepted,
            "sequences": self.sequences,
            "tokens_per_forward": round(self.tokens_per_forward, 4),
            "acceptance_rate": round(self.acceptance_rate, 4),
            "acceptance_by_position": [round(x, 4) for x in self.acceptance_by_position],
            "draft_seconds": round(self.draft_seconds, 6),
            "verify_seconds": round(self.verify_seconds, 6),
        }

    def summary(self) -> str:
        """One human-readable line.

        Example:
            >>> SpecStats(forward_passes=2, new_tokens=5).summary().startswith("5 tokens")
            True
        """
        return (
            f"{self.new_tokens} tokens in {self.forward_passes} forward passes "
            f"({self.tokens_per_forward:.2f} tokens/forward), "
            f"accepted {self.accepted}/{self.drafted} "
            f"drafted ({self.acceptance_rate:.0%}), drafting {self.draft_seconds * 1e3:.1f} ms, "
            f"verification {self.verify_seconds * 1e3:.1f} ms"
        )


def _add_padded(a: list[int], b: list[int], width: int) -> list[int]:
    return [(a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(width)]
