"""Where tests read the slurp task: ``../shared/data/slurp`` when present (CI has it), else the
sample the package ships (``tasc_rs/data/slurp``), so a fresh clone runs every test too.
``TASC_SHARED_DATA`` points elsewhere (set it to a missing folder to try the fallback).
"""

from __future__ import annotations

import os
from pathlib import Path

from tasc_rs.hf.task import shipped_task_path

SHARED_DATA = Path(
    os.environ.get("TASC_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def slurp_path(split: str) -> Path:
    """The slurp ``split`` ("train" or "test") JSONL file."""
    shared = SHARED_DATA / "slurp" / f"{split}.jsonl"
    return shared if shared.is_file() else Path(shipped_task_path("slurp", split))
