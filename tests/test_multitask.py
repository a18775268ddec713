"""One drafter for several tasks: a store per task, each request routed to the task whose
training requests it resembles (or named), context-only drafting for a request like no task,
one file for all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tasc_rs import (
    DrafterFileError,
    DtypeError,
    InvalidInputError,
    MultiTaskDrafter,
    NgramDrafter,
)

# task "alarm": requests 1 2 3 <n>, answers 50 51 52; task "sql": requests 5 <t> 6 7, answers
# 60 61 62. Both answer after the same token 40 (the chat template's answer header, say).
ALARM = NgramDrafter.from_pairs(
    [[1, 2, 3, 100 + i] for i in range(12)], [[40, 50, 51, 52]] * 12, vocab_size=300, min_count=1
)
SQL = NgramDrafter.from_pairs(
    [[5, 200 + i, 6, 7] for i in range(12)], [[40, 60, 61, 62]] * 12, vocab_size=300, min_count=1
)


def multi() -> MultiTaskDrafter:
    return MultiTaskDrafter({"alarm": ALARM, "sql": SQL})


def draft(m: MultiTaskDrafter, prompt: list[int], **kw: Any) -> list[int]:
    return m.session(prompt, **kw).propose(3, min_prob=0.0)[0].tolist()


def test_requests_are_routed_to_their_tasks_store() -> None:
    m = multi()
    assert m.tasks == ["alarm", "sql"] and len(m) == 2 and list(m) == m.tasks
    alarm, sql = [9, 1, 2, 3, 299, 40], [9, 5, 288, 6, 7, 40]
    assert m.route(alarm) == "alarm" and m.route(sql) == "sql"
    assert draft(m, alarm) == [50, 51, 52]
    assert draft(m, sql) == [60, 61, 62]
    # named: that task's store, whatever the request resembles
    assert draft(m, alarm, task="sql") == [60, 61, 62]
    with pytest.raises(InvalidInputError, match="unknown task 'nope'"):
        m.session(alarm, task="nope")
    assert m["alarm"] is ALARM


def test_a_request_like_no_task_drafts_from_its_context_alone() -> None:
    m = multi()
    prompt = [8, 9, 10, 8, 9, 10, 8, 9, 40]
    assert m.route(prompt) is None
    # the context continues 8 9 -> 10; no task store's answer (50.., 60..) is drafted
    assert draft(m, [8, 9, 10, 8, 9, 10, 8, 9])[:1] == [10]
    assert not set(draft(m, prompt)) & {50, 51, 52, 60, 61, 62}


def test_finished_sessions_teach_their_tasks_drafter() -> None:
    m = MultiTaskDrafter(
        {
            "alarm": NgramDrafter.from_bytes(ALARM.to_bytes()),
            "sql": NgramDrafter.from_bytes(SQL.to_bytes()),
        }
    )
    s = m.session([1, 2, 3, 299, 40])
    s.extend([50, 51, 52])
    s.finish()
    assert m["alarm"].online_stats()["responses"] == 1
    assert m["sql"].online_stats()["responses"] == 0


def test_one_file_round_trips_and_damage_is_refused(tmp_path: Path) -> None:
    m = multi()
    path = tmp_path / "tasks.tasc"
    m.save(path)
    back = MultiTaskDrafter.load(path)
    assert back.tasks == m.tasks
    for prompt in ([9, 1, 2, 3, 299, 40], [9, 5, 288, 6, 7, 40]):
        assert back.route(prompt) == m.route(prompt)
        assert draft(back, prompt) == draft(m, prompt)
    data = path.read_bytes()
    for bad in (
        data[:-1],
        data[:20],
        b"TASCNGR\0" + data[8:],
        data[:40] + bytes([data[40] ^ 1]) + data[41:],
    ):
        with pytest.raises(DrafterFileError):
            MultiTaskDrafter.from_bytes(bad)
    # a single drafter's file is not a multi-task one
    with pytest.raises(DrafterFileError, match="bad magic"):
        MultiTaskDrafter.from_bytes(ALARM.to_bytes())
    with pytest.raises(DrafterFileError, match="not a regular file"):
        m.save(tmp_path)
    with pytest.raises(DrafterFileError, match="cannot read"):
        MultiTaskDrafter.load(tmp_path / "missing.tasc")


def test_bad_drafter_sets_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        MultiTaskDrafter({})
    with pytest.raises(DtypeError):
        MultiTaskDrafter({"a": "not a drafter"})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match="names"):
        MultiTaskDrafter({"": ALARM})
    other = NgramDrafter.from_corpus([[1, 2, 3]], vocab_size=50, min_count=1)
    with pytest.raises(InvalidInputError, match="vocabularies"):
        MultiTaskDrafter({"a": ALARM, "b": other})


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("transformers")
    d = tmp_path_factory.mktemp("tasks")
    a, b = d / "alarm.jsonl", d / "sql.jsonl"
    a.write_text(
        "".join(
            json.dumps({"input": f"wake me up at {n} am", "output": f"alarm_set; time={n} am"})
            + "\n"
            for n in range(1, 13)
        )
    )
    b.write_text(
        "".join(
            json.dumps(
                {"input": f"how many rows in table t{n}", "output": f"SELECT count(*) FROM t{n}"}
            )
            + "\n"
            for n in range(1, 13)
        )
    )
    return a, b


def test_cli_builds_one_file_for_several_tasks(
    cli_files: tuple[Path, Path], tmp_path: Path
) -> None:
    from tasc_rs.cli import main
    from tasc_rs.embedded import ensure_embedded, load_tokenizer

    a, b = cli_files
    out = tmp_path / "tasks.tasc"
    assert (
        main(
            [
                "build",
                "--task",
                f"alarm={a}",
                "--task",
                f"sql={b}",
                "--min-count",
                "1",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    m = MultiTaskDrafter.load(out)
    assert m.tasks == ["alarm", "sql"]
    tok = load_tokenizer(ensure_embedded())
    assert m.route(tok.encode("\nwake me up at 7 am")) == "alarm"
    assert m.route(tok.encode("\nhow many rows in table users")) == "sql"
    # either a corpus or tasks; a task named twice
    assert main(["build", str(a), "--task", f"sql={b}", "-o", str(out)]) == 1
    assert main(["build", "--task", f"x={a}", "--task", f"x={b}", "-o", str(out)]) == 1
