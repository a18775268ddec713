"""Every bad input to the ``tasc`` command line is one ``tasc: error:`` line and a non-zero exit.

Bad values are refused while the arguments are parsed (exit 2, before any model loads); bad
file contents (not UTF-8, not JSON, nested too deeply, unpaired surrogates, empty) and bad model
or tokenizer folders are refused when read (exit 1). Never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from task_data import slurp_path  # noqa: E402

from tasc_rs.cli import main  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def assert_one_error_line(err: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("tasc: error:")]
    assert len(lines) == 1, err
    assert "\n" not in lines[0]


@pytest.fixture
def files(tmp_path: Path) -> Callable[[str], str]:
    """Test inputs by name, written on demand."""
    good = slurp_path("train").read_text(encoding="utf-8").splitlines()[:20]
    contents: dict[str, bytes] = {
        "good": ("\n".join(good) + "\n").encode(),
        "latin1": '{"input": "caf\u00e9", "output": "caf\u00e9"}\n'.encode("latin-1"),
        "binary": b"\xff\xfe\x00\x01garbage\n",
        "bad_json": ("\n".join(good[:3]) + '\n{"input": "x", "output": \n').encode(),
        "nested": ("[" * 200_000 + "]" * 200_000 + "\n").encode(),
        "surrogate": b'{"input": "a \\ud800 b", "output": "x \\udfff"}\n',
        "empty": b"",
        "blank": b"\n\n  \n",
        "no_output": b'{"input": "only an input"}\n',
    }

    def path(name: str) -> str:
        p = tmp_path / f"{name}.jsonl"
        if not p.exists():
            p.write_bytes(contents[name])
        return str(p)

    return path


PARSE_ERRORS = [
    ["build", "{missing}", "-o", "{out}"],
    ["build", "{good}", "-o", "{tmp}/no/such/dir/x.tasc"],
    ["build", "{good}", "-o", "{tmp}"],
    ["build", "{good}", "-o", "{out}", "--n-max", "0"],
    ["build", "{good}", "-o", "{out}", "--min-count", "0"],
    ["build", "{good}", "-o", "{out}", "--corpus-weight", "2"],
    ["build", "{good}", "-o", "{out}", "--tokenizer", "/no/such/tokenizer/dir"],
    ["generate", "hi", "-d", "{missing}"],
    ["generate", "hi", "-d", "{good}", "--max-new-tokens", "0"],
    ["generate", "hi", "-d", "{good}", "--temperature", "-1"],
    ["generate", "hi", "-d", "{good}", "--temperature", "nan"],
    ["generate", "hi", "-d", "{good}", "--top-p", "5"],
    ["generate", "hi", "-d", "{good}", "--top-p", "0"],
    ["generate", "hi", "-d", "{good}", "--top-k", "0"],
    ["generate", "hi", "-d", "{good}", "-k", "100000"],
    ["generate", "hi", "-d", "{good}", "-k", "four"],
    ["generate", "hi", "-d", "{good}", "--min-prob", "1.5"],
    ["generate", "hi", "-d", "{good}", "--tree-width", "0"],
    ["bench", "{good}", "--corpus", "{good}", "--tree-width", "65"],
    ["generate", "hi", "-d", "{good}", "--seed", "-3"],
    ["generate", "hi", "-d", "{good}", "--model", "/no/such/model/dir"],
    ["generate", "hi", "-d", "{good}", "--shots-from", "{missing}"],
    ["bench", "{good}", "--corpus", "{good}", "--limit", "0"],
    ["bench", "{good}", "--corpus", "{good}", "--json", "{tmp}/no/dir/r.json"],
    ["bench", "{good}", "--corpus", "{good}", "--json", "{tmp}"],
    ["demo", "--limit", "0"],
    ["demo", "--limit", "1000"],
    ["enrich", "{good}", "-o", "{tmp}/e", "--budget", "0"],
    ["enrich", "{good}", "-o", "{tmp}/e", "--alpha", "7"],
    ["finetune", "{good}", "-o", "{tmp}/f", "--epochs", "0"],
    ["finetune", "{good}", "-o", "{tmp}/f", "--lr", "-1"],
    ["finetune", "{good}", "-o", "{tmp}/f", "--limit", "0"],
    # names the file system refuses (too long): one line, not an OSError traceback
    ["build", "{tmp}/" + "a" * 300, "-o", "{out}"],
    ["build", "{good}", "-o", "{tmp}/" + "b" * 300],
    ["generate", "hi", "-d", "{good}", "--model", "{tmp}/" + "c" * 5000],
    ["enrich", "{good}", "-o", "{tmp}/" + "e" * 300],
]


@pytest.mark.parametrize("argv", PARSE_ERRORS, ids=lambda a: " ".join(a)[:60])
def test_bad_arguments_are_refused_before_any_work(
    argv: list[str],
    files: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded for arguments that are invalid")

    monkeypatch.setattr("tasc_rs.embedded.load_model", no_model)
    monkeypatch.setattr("tasc_rs.embedded.load_embedded", no_model)
    names = {"missing": str(tmp_path / "missing.jsonl"), "out": str(tmp_path / "d.tasc")}
    names.update(good=files("good"), tmp=str(tmp_path))
    code, err = run([a.format(**names) for a in argv], capsys)
    assert code == 2, err
    assert_one_error_line(err)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("latin1", ["not UTF-8", ":1:"]),
        ("binary", ["not UTF-8"]),
        ("bad_json", [":4:", "not JSON"]),
        ("nested", ["nested too deeply"]),
        ("surrogate", ["unpaired surrogate"]),
        ("empty", ["empty"]),
        ("blank", ["empty"]),
        ("no_output", ["string 'output'"]),
    ],
)
def test_bad_corpus_files_are_one_line(
    name: str,
    words: list[str],
    files: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run(["build", files(name), "-o", str(tmp_path / "d.tasc")], capsys)
    assert code == 1
    assert_one_error_line(err)
    for word in words:
        assert word in err, err
    assert not (tmp_path / "d.tasc").exists()


@pytest.mark.parametrize("name", ["latin1", "bad_json", "nested", "surrogate", "empty"])
def test_bad_test_shot_and_train_files_are_one_line(
    name: str,
    files: Callable[[str], str],
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = ["--model", str(tiny_model_dir), "--device", "cpu"]
    good, bad = files("good"), files(name)
    drafter = str(tmp_path / "d.tasc")
    assert main(["build", good, "-o", drafter, "--tokenizer", str(tiny_model_dir)]) == 0
    for argv in (
        ["bench", bad, "-d", drafter, *model, "--limit", "5", "--max-new-tokens", "2"],
        ["bench", good, "-d", drafter, *model, "--limit", "1", "--shots-from", bad],
        ["generate", "hi", "-d", drafter, *model, "--max-new-tokens", "2", "--shots-from", bad],
        ["finetune", bad, "-o", str(tmp_path / "ft"), "--model", str(tiny_model_dir)],
        ["enrich", bad, "-o", str(tmp_path / "en"), "--model", str(tiny_model_dir)],
    ):
        capsys.readouterr()
        code, err = run(argv, capsys)
        assert code == 1, (argv, err)
        assert_one_error_line(err)
    assert not (tmp_path / "ft").exists() and not (tmp_path / "en").exists()


def test_folders_without_a_model_or_tokenizer_are_one_line(
    files: Callable[[str], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty_model"
    empty.mkdir()
    (tmp_path / "config_only").mkdir()
    (tmp_path / "config_only" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    for folder in (empty, tmp_path / "config_only"):
        for argv in (
            ["build", files("good"), "-o", str(tmp_path / "d.tasc"), "--tokenizer", str(folder)],
            ["generate", "hi", "-d", files("good"), "--model", str(folder)],
        ):
            code, err = run(argv, capsys)
            assert code == 1, (argv, err)
            assert_one_error_line(err)
            assert str(folder) in err
