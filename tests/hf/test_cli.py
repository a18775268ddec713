"""The ``tasc`` command line on the embedded model's tokenizer and model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasc_rs.cli import build_parser, main
from tasc_rs.hf.task import shipped_task_path

pytestmark = pytest.mark.timeout(300)


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for command in ("build", "generate", "bench", "demo"):
        assert command in text
    test = str(shipped_task_path("slurp", "test"))
    args = build_parser().parse_args(["bench", test, "--corpus", test, "-k", "4"])
    assert (args.command, args.num_draft_tokens, args.limit) == ("bench", 4, 20)


def test_build_then_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "slurp.tasc"
    corpus = str(shipped_task_path("slurp", "train"))
    assert main(["build", corpus, "-o", str(out), "--min-count", "2"]) == 0
    assert out.exists() and out.stat().st_size > 0
    shots = ["--shots-from", corpus, "--shots", "2"]
    argv = ["generate", "wake me up at seven", "-d", str(out), "--max-new-tokens", "12", *shots]
    assert main([*argv, "--device", "cpu", "-k", "6", "--min-prob", "0.1"]) == 0
    captured = capsys.readouterr()
    assert "intent" in captured.out
    assert "forward passes" in captured.err


def test_missing_file_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["build", "/nonexistent/corpus.jsonl", "-o", "/tmp/x.tasc"])
    assert exc.value.code == 2
    assert "tasc: error: argument corpus: /nonexistent/corpus.jsonl: no such file" in (
        capsys.readouterr().err
    )
