"""The examples in the core modules' docstrings run and print what they claim."""

from __future__ import annotations

import doctest

import pytest

import tasc_rs
import tasc_rs.drafter
import tasc_rs.errors
import tasc_rs.vllm


@pytest.mark.parametrize("module", [tasc_rs, tasc_rs.drafter, tasc_rs.errors, tasc_rs.vllm])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0


def test_import_does_not_pull_in_torch() -> None:
    import subprocess
    import sys

    code = "import sys, tasc_rs; tasc_rs.NgramDrafter; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
