"""`tasc enrich` and `tasc finetune` end to end, and that a failed run touches nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from task_data import slurp_path  # noqa: E402

from tasc_rs.cli import _task_prompt, build_parser, main  # noqa: E402
from tasc_rs.ft.cli import finetuned_prompt  # noqa: E402


def rows(n: int) -> list[dict[str, str]]:
    with slurp_path("train").open(encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(n), f, strict=False)]


def write_jsonl(path: Path, data: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    return path


@pytest.mark.timeout(300)
def test_enrich_writes_an_expanded_tokenizer_and_model(tmp_path: Path, tiny_model_dir) -> None:
    corpus = write_jsonl(tmp_path / "train.jsonl", rows(400))
    out = tmp_path / "enriched"
    args = ["enrich", str(corpus), "-o", str(out), "--model", str(tiny_model_dir)]
    assert main([*args, "--budget", "20"]) == 0
    report = json.loads((out / "tasc_enrichment.json").read_text())
    assert len(report["tokens"]) == 20 and report["compression_ratio"] > 1.5
    tok = transformers.AutoTokenizer.from_pretrained(out)
    model = transformers.AutoModelForCausalLM.from_pretrained(out)
    assert len(tok) == report["base_vocab_size"] + 20
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)
    # A second run into the same directory fails and leaves it as it was.
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(SystemExit) as refused:  # refused as the arguments are parsed
        main([*args, "--budget", "5"])
    assert refused.value.code == 2
    assert sorted(p.name for p in out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # The enriched model fine-tunes with a faster rate for its new tokens' rows (default 30).
    tune = ["finetune", str(corpus), "--model", str(out), "--limit", "8", "--epochs", "1"]
    assert main([*tune, "-o", str(tmp_path / "ft")]) == 0
    ft10 = [*tune, "-o", str(tmp_path / "ft10"), "--new-token-lr-scale", "10"]
    assert main([*ft10, "--prompt-tokens", "enriched"]) == 0
    for name, scale, prompts in (("ft", 30, "base"), ("ft10", 10, "enriched")):
        meta = json.loads((tmp_path / name / "tasc_task.json").read_text())
        assert meta["new_token_lr_scale"] == scale
        assert meta["new_tokens_from"] == report["base_vocab_size"]
        assert meta["prompt_tokens"] == prompts
        # The saved model is prompted as it was trained: requests in the base vocabulary or not.
        view = finetuned_prompt(tmp_path / name, tok).prompt_tokenizer
        assert (view is not None and len(view) == report["base_vocab_size"]) == (prompts == "base")
        # So does `tasc generate --model` (instruction and request vocabulary from the model).
        argv = ["generate", "--model", str(tmp_path / name), "-d", str(corpus), "hi"]
        prompt = _task_prompt(build_parser().parse_args(argv), tok)
        assert prompt.instruction == meta["instruction"]
        assert (prompt.prompt_tokenizer is not None) == (prompts == "base")
    argv = ["generate", "--model", str(out), "-d", str(corpus), "hi"]  # enriched, not fine-tuned
    assert len(_task_prompt(build_parser().parse_args(argv), tok).prompt_tokenizer) == len(tok) - 20


@pytest.mark.timeout(300)
def test_enrich_exclude_copied_reads_the_requests(tmp_path: Path, tiny_model_dir) -> None:
    data = rows(400)
    corpus = write_jsonl(tmp_path / "train.jsonl", data)
    out = tmp_path / "guarded"
    args = ["enrich", str(corpus), "-o", str(out), "--model", str(tiny_model_dir)]
    assert main([*args, "--budget", "1000", "--allow-fewer", "--exclude-copied"]) == 0
    report = json.loads((out / "tasc_enrichment.json").read_text())
    assert report["settings"]["exclude_copied"] and 0 < len(report["tokens"]) < 1000
    assert not any("tomorrow" in t["text"] for t in report["tokens"])
    # The requests come from --input-field; a missing field is a clear error.
    bad = [*args[:3], str(tmp_path / "bad"), *args[4:], "--exclude-copied", "--input-field", "x"]
    assert main([*bad, "--budget", "5"]) == 1
    assert not (tmp_path / "bad").exists()


@pytest.mark.timeout(300)
def test_finetune_saves_a_loadable_model(tmp_path: Path, tiny_model_dir) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", rows(8))
    out = tmp_path / "ft"
    argv = ["finetune", str(train), "-o", str(out), "--model", str(tiny_model_dir)]
    assert main([*argv, "--epochs", "1", "--batch-size", "4"]) == 0
    meta = json.loads((out / "tasc_task.json").read_text())
    assert meta["rows"] == 8 and meta["epochs"] == 1
    transformers.AutoModelForCausalLM.from_pretrained(out)
    assert not (tmp_path / ".ft.checkpoints").exists()


@pytest.mark.timeout(300)
def test_finetune_with_lora_saves_a_merged_model(tmp_path: Path, tiny_model_dir) -> None:
    pytest.importorskip("peft")
    train = write_jsonl(tmp_path / "train.jsonl", rows(8))
    out = tmp_path / "lora"
    argv = ["finetune", str(train), "-o", str(out), "--model", str(tiny_model_dir)]
    assert main([*argv, "--epochs", "1", "--batch-size", "4", "--lora-r", "2"]) == 0
    assert json.loads((out / "tasc_task.json").read_text())["lora_r"] == 2
    assert not (out / "adapter_config.json").exists()  # adapters merged into the weights
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tuned = transformers.AutoModelForCausalLM.from_pretrained(out)
    assert set(tuned.state_dict()) == set(base.state_dict())
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(tuned.state_dict()[q], base.state_dict()[q])


def test_finetune_rejects_rows_without_output(tmp_path: Path, tiny_model_dir) -> None:
    train = write_jsonl(tmp_path / "bad.jsonl", [{"input": "hi"}])
    out = tmp_path / "never"
    assert main(["finetune", str(train), "-o", str(out), "--model", str(tiny_model_dir)]) == 1
    assert not out.exists()


def test_new_token_lr_scale_needs_an_enriched_model(tmp_path: Path, tiny_model_dir, capsys) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", rows(8))
    out = tmp_path / "never"
    argv = ["finetune", str(train), "-o", str(out), "--model", str(tiny_model_dir)]
    assert main([*argv, "--new-token-lr-scale", "10"]) == 1
    assert "tasc enrich" in capsys.readouterr().err
    assert not out.exists()
