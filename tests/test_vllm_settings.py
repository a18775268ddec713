"""tasc_rs.vllm without vLLM: how the proposer finds its drafter and settings, and how it
behaves when vLLM calls it (a stand-in VllmConfig; the engine itself is tested in tests/vllm)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tasc_rs import DrafterFileError, InvalidConfigError, NgramDrafter, TascIOError
from tasc_rs.vllm import (
    CONFIG_ENV,
    CPU_STEP_OVERHEAD,
    DEFAULTS,
    DRAFTER_ENV,
    TascProposer,
    resolve_settings,
    speculative_config,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv(DRAFTER_ENV, raising=False)


@pytest.fixture
def drafter_file(tmp_path: Path) -> Path:
    path = tmp_path / "task.tasc"
    NgramDrafter.from_corpus([[1, 2, 3, 4, 0]] * 5, vocab_size=100).save(path)
    return path


def vllm_config(model: str = "no-such-model", k: int = 4, vocab: int = 100) -> Any:
    model_config = SimpleNamespace(
        model=model,
        tokenizer=None,
        max_model_len=64,
        hf_config=SimpleNamespace(eos_token_id=0),
        try_get_generation_config=lambda: {"eos_token_id": [0, 7]},
        get_vocab_size=lambda: vocab,
    )
    return SimpleNamespace(
        model_config=model_config,
        speculative_config=SimpleNamespace(num_speculative_tokens=k),
        scheduler_config=SimpleNamespace(max_num_seqs=8),
    )


def test_drafter_env_and_defaults(monkeypatch: pytest.MonkeyPatch, drafter_file: Path) -> None:
    monkeypatch.setenv(DRAFTER_ENV, str(drafter_file))
    settings, origin = resolve_settings()
    assert settings.drafter == drafter_file and origin == f"${DRAFTER_ENV}"
    assert settings.mixing == DEFAULTS["mixing"] == "longer_match"
    assert settings.online_capacity == DEFAULTS["online_capacity"] > 0


def test_config_env_wins_as_json_or_file(
    monkeypatch: pytest.MonkeyPatch, drafter_file: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv(DRAFTER_ENV, "/ignored.tasc")
    monkeypatch.setenv(CONFIG_ENV, json.dumps({"drafter": str(drafter_file), "min_prob": 0.5}))
    assert resolve_settings()[0].min_prob == 0.5
    # a file: relative drafter paths are read from the file's folder
    (tmp_path / "cfg.json").write_text(json.dumps({"drafter": "task.tasc", "preset": "paper"}))
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "cfg.json"))
    s = resolve_settings()[0]
    assert s.drafter == drafter_file
    assert (s.min_prob, s.mixing, s.online_capacity) == (0.0, "fixed", 0)


def test_model_directory_then_class_config(tmp_path: Path, drafter_file: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    with pytest.raises(InvalidConfigError, match="TASC_VLLM_DRAFTER"):
        resolve_settings(str(model))
    assert resolve_settings(str(model), {"drafter": str(drafter_file)})[1] == "TascProposer.config"
    (model / "drafter.tasc").write_bytes(drafter_file.read_bytes())
    assert resolve_settings(str(model))[0].drafter == model / "drafter.tasc"
    (model / "tasc_vllm.json").write_text(json.dumps({"drafter": "drafter.tasc", "k": 3}))
    with pytest.raises(InvalidConfigError, match=r"unknown setting.*k"):
        resolve_settings(str(model))


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ({"min_prob": 0.3}, "'drafter'"),
        ({"drafter": "x", "min_prob": "high"}, "min_prob has the wrong type"),
        ({"drafter": "x", "online_capacity": True}, "online_capacity has the wrong type"),
        ({"drafter": "x", "stop_token_ids": "2"}, "must be a list"),
        ({"drafter": "x", "verify_cost": [1, "a"]}, "list of numbers"),
        ({"drafter": "x", "preset": "fast"}, "preset"),
        ({"drafter": "x", "lambda": 0.5}, "unknown setting"),
        ({"drafter": "x", "step_overhead": -1}, "step_overhead"),
        ({"drafter": "x", "step_overhead": "big"}, "step_overhead"),
        ({"drafter": "x", "threads": 0}, "threads"),
        ({"drafter": "x", "threads": 2.0}, "threads has the wrong type"),
        ({"drafter": "x", "measure_step_cost": 1}, "measure_step_cost has the wrong type"),
        ({"drafter": "x", "mmap": "yes"}, "mmap has the wrong type"),
    ],
)
def test_bad_configs_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config: Any, match: str
) -> None:
    if isinstance(config, str) and config.startswith("["):
        path = tmp_path / "c.json"
        path.write_text(config)
        monkeypatch.setenv(CONFIG_ENV, str(path))
    else:
        monkeypatch.setenv(CONFIG_ENV, config if isinstance(config, str) else json.dumps(config))
    with pytest.raises(InvalidConfigError, match=match):
        resolve_settings()


def test_speculative_config_sets_the_environment(
    monkeypatch: pytest.MonkeyPatch, drafter_file: Path
) -> None:
    config = speculative_config(drafter_file, k=5, min_prob=0.2)
    assert config == {
        "method": "custom_class",
        "model": "tasc_rs.vllm.TascProposer",
        "num_speculative_tokens": 5,
    }
    assert json.loads(__import__("os").environ[CONFIG_ENV])["min_prob"] == 0.2
    with pytest.raises(InvalidConfigError):
        speculative_config(drafter_file, k=0)
    with pytest.raises(InvalidConfigError):
        speculative_config(drafter_file, mixing=3)
    with pytest.raises(InvalidConfigError, match="need a drafter"):
        speculative_config(min_prob=0.2)


def test_step_overhead_cuts_a_cpu_batch(
    monkeypatch: pytest.MonkeyPatch, drafter_file: Path
) -> None:
    """'auto' turns the batch cut on for vLLM's CPU backend: a big batch drafts less."""
    # after 1 2 the task goes three ways: a GPU engine drafts every chain, the CPU cut not
    branching = drafter_file.with_name("branching.tasc")
    corpus = [[1, 2, 3, 4, 5, 6, 0], [1, 2, 7, 8, 9, 10, 0], [1, 2, 11, 12, 13, 14, 0]]
    NgramDrafter.from_corpus(corpus * 5, vocab_size=100).save(branching)
    config = {"drafter": str(branching), "min_prob": 0.0, "step_overhead": "auto"}
    monkeypatch.setenv(CONFIG_ENV, json.dumps(config))
    cfg = vllm_config(k=4)
    buf = np.zeros((16, 64), dtype=np.int32)
    buf[:, :2] = [1, 2]
    num = np.full(16, 2, dtype=np.int32)
    sampled = [[2]] * 16
    on_gpu = TascProposer(cfg)
    gpu = on_gpu.propose(sampled, num, buf)
    cfg.device_config = SimpleNamespace(device_type="cpu")
    on_cpu = TascProposer(cfg)
    cpu = on_cpu.propose(sampled, num, buf)
    assert sum(map(len, cpu)) < sum(map(len, gpu)) == 16 * 4
    # the CPU backend drafts on the engine's thread; a GPU engine's idle cores may draft
    assert "threads=1)" in repr(on_cpu._batch)
    default = repr(on_gpu.drafter.batch_proposer()).rsplit("threads=", 1)[1]
    assert repr(on_gpu._batch).endswith(f"threads={default}")
    # the CPU cut starts from the fitted constant and times the engine's steps from there
    assert on_gpu.stats()["step_overhead"] is None
    assert on_cpu.stats()["step_overhead"] == CPU_STEP_OVERHEAD
    for _ in range(3):  # every row gains a token (not an EOS: the rows keep running)
        buf[np.arange(16), num] = 3
        num += 1
        on_cpu.propose([[3]] * 16, num, buf)
    assert on_cpu.stats()["step_cost_samples"] == 3
    config["step_overhead"] = 7.5  # a number: fixed, not measured
    monkeypatch.setenv(CONFIG_ENV, json.dumps(config))
    fixed = TascProposer(cfg)
    for _ in range(3):
        buf[np.arange(16), num] = 3
        num += 1
        fixed.propose([[3]] * 16, num, buf)
    assert fixed.stats()["step_overhead"] == 7.5
    assert fixed.stats()["step_cost_samples"] == 0


def test_proposer_drafts_for_the_batch(monkeypatch: pytest.MonkeyPatch, drafter_file: Path) -> None:
    monkeypatch.setenv(CONFIG_ENV, json.dumps({"drafter": str(drafter_file), "min_prob": 0.0}))
    p = TascProposer(vllm_config(k=3))
    p.load_model(object())  # vLLM's CPU runner calls it with the model
    buf = np.zeros((4, 64), dtype=np.int32)
    buf[0, :2] = [1, 2]
    buf[1, :3] = [9, 9, 1]
    num = np.array([2, 3, 0, 0], dtype=np.int32)
    assert p.propose([[2], [1]], num, buf, slot_mappings=None) == [[3, 4, 0], [2, 3, 4]]
    # the model's EOS ids (config and generation config) end responses
    buf[0, 2:5] = [3, 4, 0]
    num[0] = 5
    p.propose([[3, 4, 0], [1]], num, buf)
    assert p.stats()["stopped"] == 1
    assert p.drafter.online_stats()["responses"] == 1


def test_proposer_failures_never_reach_the_engine(
    monkeypatch: pytest.MonkeyPatch, drafter_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(DRAFTER_ENV, str(drafter_file))
    p = TascProposer(vllm_config())
    with caplog.at_level(logging.ERROR, logger="vllm.tasc_rs"):
        out = p.propose([[1], [2]], np.zeros(2, dtype=np.int32), np.zeros((2, 4), np.float64))
    assert out == [[], []]
    assert p.stats()["failures"] == 1
    assert "drafting failed" in caplog.text


def test_start_up_errors_are_clear(
    monkeypatch: pytest.MonkeyPatch, drafter_file: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv(DRAFTER_ENV, str(tmp_path / "missing.tasc"))
    with pytest.raises(TascIOError, match="cannot load the drafter"):
        TascProposer(vllm_config())
    (tmp_path / "junk.tasc").write_bytes(b"not a drafter")
    monkeypatch.setenv(DRAFTER_ENV, str(tmp_path / "junk.tasc"))
    with pytest.raises(DrafterFileError, match="cannot load the drafter"):
        TascProposer(vllm_config())
    monkeypatch.setenv(DRAFTER_ENV, str(drafter_file))
    with pytest.raises(InvalidConfigError, match="vocabulary of 100 tokens"):
        TascProposer(vllm_config(vocab=50))


def test_a_mapped_drafter_serves_and_multi_task_files_are_not_mapped(
    monkeypatch: pytest.MonkeyPatch, drafter_file: Path, tmp_path: Path
) -> None:
    from tasc_rs import MultiTaskDrafter

    monkeypatch.setenv(CONFIG_ENV, json.dumps({"drafter": str(drafter_file), "mmap": True}))
    p = TascProposer(vllm_config(k=3))
    assert p.drafter.stats()["mapped"]
    buf = np.zeros((1, 64), dtype=np.int32)
    buf[0, :2] = [1, 2]
    assert p.propose([[2]], np.array([2], dtype=np.int32), buf) == [[3, 4, 0]]
    multi = tmp_path / "tasks.tasc"
    MultiTaskDrafter({"a": NgramDrafter.load(drafter_file)}).save(multi)
    monkeypatch.setenv(CONFIG_ENV, json.dumps({"drafter": str(multi), "mmap": True}))
    with pytest.raises(InvalidConfigError, match="single-task drafter files"):
        TascProposer(vllm_config())


def test_drafts_end_with_the_eos(monkeypatch: pytest.MonkeyPatch, drafter_file: Path) -> None:
    """The engine drops what follows an EOS: a draft never runs past one."""
    monkeypatch.setenv(CONFIG_ENV, json.dumps({"drafter": str(drafter_file), "min_prob": 0.0}))
    p = TascProposer(vllm_config(k=6))
    buf = np.zeros((1, 64), dtype=np.int32)
    buf[0, :3] = [9, 1, 2]
    assert p.propose([[2]], np.array([3], dtype=np.int32), buf) == [[3, 4, 0]]


def test_token_aliases_come_from_the_served_tokenizer(
    monkeypatch: pytest.MonkeyPatch,
    drafter_file: Path,
    tiny_model_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tasc_rs import bpe_respelling, space_aliases

    transformers = pytest.importorskip("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(str(tiny_model_dir))
    path = drafter_file.with_name("smollm2.tasc")
    NgramDrafter.from_corpus([[1, 2, 3, 4, 0]] * 5, vocab_size=len(tok)).save(path)
    cfg = vllm_config(model=str(tiny_model_dir), vocab=len(tok))
    monkeypatch.setenv(CONFIG_ENV, json.dumps({"drafter": str(path)}))
    p = TascProposer(cfg)
    assert p.drafter.token_aliases == space_aliases(tok) != []
    assert p.drafter.respelling == bpe_respelling(tok) is not None
    monkeypatch.setenv(CONFIG_ENV, json.dumps({"drafter": str(path), "token_aliases": False}))
    assert TascProposer(cfg).drafter.token_aliases == []
    assert TascProposer(cfg).drafter.respelling is not None
    monkeypatch.setenv(CONFIG_ENV, json.dumps({"drafter": str(path), "respelling": False}))
    assert TascProposer(cfg).drafter.respelling is None
    monkeypatch.setenv(CONFIG_ENV, json.dumps({"drafter": str(path), "preset": "paper"}))
    assert TascProposer(cfg).drafter.respelling is None
    # a tokenizer that cannot be loaded here: drafting goes on without aliases, and says so
    monkeypatch.setenv(CONFIG_ENV, json.dumps({"drafter": str(drafter_file)}))
    with caplog.at_level("WARNING", logger="vllm.tasc_rs"):
        assert TascProposer(vllm_config()).drafter.token_aliases == []
    assert "without token aliases and respelling" in caplog.text
    monkeypatch.setenv(CONFIG_ENV, json.dumps({"drafter": str(path), "token_aliases": "yes"}))
    with pytest.raises(InvalidConfigError, match="token_aliases has the wrong type"):
        TascProposer(cfg)


def test_out_of_range_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, drafter_file: Path, tmp_path: Path
) -> None:
    from tasc_rs import MAX_K

    with pytest.raises(InvalidConfigError, match="k must be an int"):
        speculative_config(k=MAX_K + 1)
    with pytest.raises(InvalidConfigError, match="drafter must be the path"):
        speculative_config("")
    monkeypatch.setenv(CONFIG_ENV, json.dumps({"drafter": str(drafter_file)}))
    with pytest.raises(InvalidConfigError, match="num_speculative_tokens must be in"):
        TascProposer(vllm_config(k=MAX_K + 1))
    monkeypatch.setenv(CONFIG_ENV, json.dumps({"drafter": str(drafter_file), "max_requests": 0}))
    with pytest.raises(InvalidConfigError, match="max_requests must be >= 1"):
        resolve_settings()


def test_config_files_that_are_not_regular_files_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import os

    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    for path in (str(fifo), "/dev/zero", str(tmp_path)):
        monkeypatch.setenv(CONFIG_ENV, path)
        with pytest.raises(InvalidConfigError, match="not a regular file"):
            resolve_settings()
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (2 << 20) + b"{}")
    monkeypatch.setenv(CONFIG_ENV, str(big))
    with pytest.raises(InvalidConfigError, match="larger than"):
        resolve_settings()


def test_learned_state_survives_a_restart_of_the_proposer(
    monkeypatch: pytest.MonkeyPatch, drafter_file: Path, tmp_path: Path
) -> None:
    state = tmp_path / "learned.bin"
    config = {"drafter": str(drafter_file), "min_prob": 0.0, "learned_state": str(state)}
    monkeypatch.setenv(CONFIG_ENV, json.dumps(config))
    p = TascProposer(vllm_config(k=3))
    buf = np.zeros((1, 64), dtype=np.int32)
    buf[0, :6] = [9, 9, 5, 6, 7, 0]  # a response the corpus never held, ended by the EOS
    p.propose([[0]], np.array([6], dtype=np.int32), buf)
    assert p.drafter.online_stats()["responses"] == 1
    p.drafter.stop_autosave()  # what interpreter exit does
    assert state.exists()
    again = TascProposer(vllm_config(k=3))
    assert again.drafter.online_stats()["tokens"] == p.drafter.online_stats()["tokens"]
    again.drafter.stop_autosave(save=False)
    # another tensor-parallel rank reads the file but never writes it (rank 0 does)
    import tasc_rs.vllm as tv

    monkeypatch.setattr(tv, "_parallel_rank", lambda: 1)
    before = state.read_bytes()
    other = TascProposer(vllm_config(k=3))
    assert other.drafter.online_stats()["tokens"] == p.drafter.online_stats()["tokens"]
    other.propose([[0]], np.array([6], dtype=np.int32), buf)
    other.drafter.learn([11, 12, 13])
    other.drafter.stop_autosave()  # none runs: nothing saved
    assert state.read_bytes() == before
    state.write_bytes(b"not a learned state")
    assert TascProposer(vllm_config(k=3)).drafter.online_stats()["tokens"] == 0  # logged
    monkeypatch.setattr(tv, "_parallel_rank", lambda: 0)
    # relative to the config file's folder; a directory is refused
    monkeypatch.setenv(CONFIG_ENV, json.dumps({**config, "learned_state": str(tmp_path)}))
    with pytest.raises(InvalidConfigError, match="not a regular file"):
        resolve_settings()
    monkeypatch.setenv(CONFIG_ENV, json.dumps({**config, "save_every_tokens": 0}))
    with pytest.raises(InvalidConfigError, match="save_every_tokens must be >= 1"):
        resolve_settings()


def test_one_server_drafts_for_several_tasks_from_one_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tasc_rs import MultiTaskDrafter

    a = NgramDrafter.from_pairs(
        [[1, 2, 3, 20 + i] for i in range(8)], [[40, 50, 51, 52]] * 8, vocab_size=100, min_count=1
    )
    b = NgramDrafter.from_pairs(
        [[5, 20 + i, 6, 7] for i in range(8)], [[40, 60, 61, 62]] * 8, vocab_size=100, min_count=1
    )
    path = tmp_path / "tasks.tasc"
    MultiTaskDrafter({"a": a, "b": b}).save(path)
    monkeypatch.setenv(CONFIG_ENV, json.dumps({"drafter": str(path), "min_prob": 0.0}))
    p = TascProposer(vllm_config(k=3))
    buf = np.zeros((3, 64), dtype=np.int32)
    rows = [[9, 1, 2, 3, 99, 40], [9, 5, 88, 6, 7, 40], [11, 12, 13, 11, 12]]
    for i, row in enumerate(rows):
        buf[i, : len(row)] = row
    num = np.array([6, 6, 5], dtype=np.int32)
    drafts = p.propose([[40], [40], [12]], num, buf)
    assert drafts[:2] == [[50, 51, 52], [60, 61, 62]]
    assert drafts[2][:1] == [13]  # like no task: its context alone
    assert set(p.stats()["tasks"]) == {"a", "b", ""}
    # the next step: each request keeps its task (routed once)
    buf[0, 6], buf[1, 6] = 50, 60
    num[:2] = 7
    drafts = p.propose([[50], [60]], num[:2], buf[:2])
    assert [d[:2] for d in drafts] == [[51, 52], [61, 62]]
