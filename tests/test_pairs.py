"""Drafters built from (request, answer) pairs: the copy pointer drafts the live request's value
where training answers copied theirs, in sessions, trees and batch proposers alike; saved with
the drafter (file format 2); answers-only corpora behave exactly as before."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tasc_rs import FORMAT_VERSION, InvalidInputError, NgramDrafter

# requests "1 2 <name> 3 ...", answers "<name> 40 41 42"
REQUESTS = [[1, 2, 10 + i, 20 + i, 3, 9] for i in range(6)]
ANSWERS = [[10 + i, 20 + i, 40, 41, 42] for i in range(6)]
PROMPT = [8, 1, 2, 77, 78, 3, 9, 5]  # a new request: its name is 77 78


def paired(**kw: Any) -> NgramDrafter:
    return NgramDrafter.from_pairs(REQUESTS, ANSWERS, vocab_size=100, min_count=1, **kw)


def test_the_answer_starts_with_the_requests_value() -> None:
    d = paired()
    assert d.stats()["copy_anchors"] >= 1
    ids, probs = d.session(PROMPT).propose(4, min_prob=0.0)
    assert ids.tolist()[:2] == [77, 78]
    assert probs[1] == 1.0
    plain = NgramDrafter.from_corpus(ANSWERS, vocab_size=100, min_count=1)
    assert plain.stats()["copy_anchors"] == 0
    assert plain.session(PROMPT).propose(4, min_prob=0.0)[0].tolist()[:1] != [77]


def test_trees_take_the_value_and_width_one_is_the_chain() -> None:
    s = paired().session(PROMPT)
    chain = s.propose(5, min_prob=0.0)[0].tolist()
    ids, parents, _ = s.propose_tree(5, width=1, min_prob=0.0)
    assert ids.tolist() == chain
    ids, parents, _ = s.propose_tree(8, width=3, min_prob=0.0)
    assert ids.tolist()[:2] == [77, 78] and parents.tolist()[:2] == [-1, 0]


def test_a_batch_proposer_drafts_what_a_session_does() -> None:
    d = paired()
    p = d.batch_proposer(min_prob=0.0)
    buf = np.zeros((2, 64), dtype=np.int32)
    first = [*PROMPT, 77]  # the engine's row: the prompt and the first sampled token
    buf[0, : len(first)] = first
    buf[1, :3] = [1, 2, 3]
    drafts = p.propose([[77], [3]], np.array([len(first), 3], dtype=np.int32), buf, 4)
    session = d.session(PROMPT)
    session.extend([77])
    assert drafts[0] == session.propose(4, min_prob=0.0)[0].tolist()
    assert drafts[0][0] == 78


def test_saved_loaded_and_pickled_with_the_drafter(tmp_path: Path) -> None:
    d = paired()
    path = tmp_path / "pairs.tasc"
    d.save(path)
    assert int.from_bytes(path.read_bytes()[8:12], "little") == FORMAT_VERSION == 4
    back = NgramDrafter.load(path)
    assert back.stats()["copy_anchors"] == d.stats()["copy_anchors"]
    want = d.session(PROMPT).propose(4, min_prob=0.0)[0].tolist()
    assert back.session(PROMPT).propose(4, min_prob=0.0)[0].tolist() == want
    again = pickle.loads(pickle.dumps(d))
    assert again.session(PROMPT).propose(4, min_prob=0.0)[0].tolist() == want


def test_bad_pairs_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="differ in length"):
        NgramDrafter.from_pairs(REQUESTS, ANSWERS[:2])
    with pytest.raises(InvalidInputError, match="pair 1"):
        NgramDrafter.from_pairs([[1], [1, 500]], [[2], [3]], vocab_size=100)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    transformers = pytest.importorskip("transformers")
    from tasc_rs.embedded import ensure_embedded

    return transformers.AutoTokenizer.from_pretrained(str(ensure_embedded()))


def test_build_drafter_keeps_pairs_from_a_jsonl_file(tokenizer: Any, tmp_path: Path) -> None:
    from tasc_rs.hf.corpus import build_drafter, request_lead

    rows = [
        {"input": f"name[{name}], area[riverside]", "output": f"{name} is by the riverside."}
        for name in ["The Mill", "Aromi", "Zizzi", "Cotto", "The Eagle", "Wildwood"] * 2
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    d = build_drafter(tokenizer, path, min_count=1, progress=False)
    assert d.stats()["copy_anchors"] >= 1
    assert build_drafter(tokenizer, path, progress=False, pairs=False).stats()["copy_anchors"] == 0
    assert request_lead(tokenizer) == "\n"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "name[Blue Spice], area[riverside]"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    prompt = tokenizer.encode(text, add_special_tokens=False)
    ids = d.session(prompt).propose(8, min_prob=0.0)[0].tolist()
    assert tokenizer.decode(ids).startswith("Blue Spice")
    # rows without an input: outputs only
    path.write_text("".join(json.dumps({"output": r["output"]}) + "\n" for r in rows))
    assert build_drafter(tokenizer, path, progress=False).stats()["copy_anchors"] == 0


def test_finished_responses_teach_the_pointer_what_the_model_does() -> None:
    """Training answers open with the name; a model that never does stops being drafted it."""
    d = paired()
    first = d.session(PROMPT).propose(1, min_prob=0.0)[0].tolist()
    assert first == [77]
    for _ in range(40):
        s = d.session(PROMPT)
        s.extend([40, 41, 42])  # this model opens otherwise
        s.finish()
    assert d.session(PROMPT).propose(1, min_prob=0.0)[0].tolist() != [77]
    # a batch proposer shares what the drafter learned
    p = d.batch_proposer(min_prob=0.0)
    buf = np.zeros((1, 64), dtype=np.int32)
    row = [*PROMPT, 40]
    buf[0, : len(row)] = row
    drafts = p.propose([[40]], np.array([len(row)], dtype=np.int32), buf, 2)
    assert drafts[0][:1] != [77]
