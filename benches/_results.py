"""Shared by the benchmark scripts: machine description, RESULTS.md section updates, task data."""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
NOTES = Path(__file__).resolve().parent / "NOTES.md"
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TASKS = ["slurp", "e2e_nlg", "spider_dev", "medquad"]
HEADER = (
    "# Benchmark results\n\n"
    "Each section is written by the script named in it; rerun that script to refresh it.\n"
)


def machine() -> str:
    """CPU model, core count and Python version, for the header of every table."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(key: str, markdown: str) -> None:
    """Replaces the section tagged ``key`` where it lives (benches/RESULTS.md, or NOTES.md for
    the history kept there), or appends it to RESULTS.md."""
    begin, end = f"<!-- begin:{key} -->", f"<!-- end:{key} -->"
    block = f"{begin}\n{markdown.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    for path in (RESULTS, NOTES):
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if pattern.search(text):
            path.write_text(pattern.sub(lambda _: block, text), encoding="utf-8")
            return
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else HEADER
    RESULTS.write_text(text.rstrip() + "\n\n" + block + "\n", encoding="utf-8")


def write_results(key: str, markdown: str, data: object) -> None:
    """Writes the section tagged ``key`` (:func:`write_section`) and its data, as
    ``benches/RESULTS_<key>.json``."""
    write_section(key, markdown)
    (RESULTS.parent / f"RESULTS_{key}.json").write_text(json.dumps(data, indent=1))


def load_tokenizer():  # type: ignore[no-untyped-def]
    """SmolLM2-135M-Instruct's tokenizer (the embedded default, fetched and cached on first use)."""
    from transformers import AutoTokenizer

    from tasc_rs.embedded import ensure_embedded

    return AutoTokenizer.from_pretrained(str(ensure_embedded()))


def outputs(task: str, split: str) -> list[str]:
    """The ``output`` field of ../shared/data/<task>/<split>.jsonl."""
    with open(DATA / task / f"{split}.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["output"] for line in f]


def dev_split(task: str, n: int = 100) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, dev) rows of ``task``'s train split, for choosing settings without the test
    split: dev is the rows of the last requests in the file (every row of each, as a test split
    repeats a request for several references; at most ``n`` rows) that never occur in the first
    800 rows (what ``finetune_task.py --limit 800`` trained on); train the rows of every other
    request, so that nothing retrieves a dev request's own answer."""
    from tasc_rs.hf.task import load_rows

    rows = load_rows(DATA / task / "train.jsonl")
    seen_early = {str(r.get("input")) for r in rows[:800]}
    by_input: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_input.setdefault(str(r.get("input")), []).append(i)
    chosen: set[str] = set()
    count = 0
    for r in reversed(rows):
        key = str(r.get("input"))
        if key in chosen or key in seen_early:
            continue
        if count + len(by_input[key]) > n:
            break
        chosen.add(key)
        count += len(by_input[key])
    train = [r for r in rows if str(r.get("input")) not in chosen]
    dev = [r for r in rows if str(r.get("input")) in chosen]
    return train, dev
