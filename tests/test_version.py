"""One version, in Cargo.toml: the native module, the package metadata, the CLI and the changelog
all say the same."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

import tasc_rs
from tasc_rs.cli import main

CHANGELOG = Path(__file__).resolve().parents[1] / "CHANGELOG.md"


def test_metadata_version_is_the_native_one() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]\d+|rc\d+)?", tasc_rs.__version__)
    assert importlib.metadata.version("tasc-rs") == tasc_rs.__version__


def test_cli_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"tasc-rs {tasc_rs.__version__}"


def test_changelog_starts_with_this_version() -> None:
    headings = re.findall(r"^## \[?([^\]\s]+)\]?", CHANGELOG.read_text(encoding="utf-8"), re.M)
    assert headings, "CHANGELOG.md has no release headings"
    assert headings[0] == tasc_rs.__version__
