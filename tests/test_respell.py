"""Respelling: the prompt's words counted by the context as the tokenizer splits them elsewhere.

The differential test re-encodes every word of real slurp requests with SmolLM2's tokenizer and
compares the Rust byte-level BPE with the Hugging Face tokenizer's own output.
"""

from __future__ import annotations

import json
import pickle
import re
from typing import Any

import pytest

from tasc_rs import InvalidInputError, NgramDrafter, Respelling, bpe_respelling


def drafter() -> NgramDrafter:
    return NgramDrafter.from_corpus([[1, 2, 3, 4]] * 5, vocab_size=300, min_count=1)


def byte_vocab(*merged: str) -> tuple[Respelling, dict[str, int]]:
    """Every byte as a token, then ``merged`` strings built by merging left to right."""
    token_bytes = [bytes([b]) for b in range(256)]
    ids = {chr(b): b for b in range(256)}
    merges = []
    for text in merged:
        left, right = text[:-1], text[-1]
        for part in (left, right):
            assert part in ids, part
        ids[text] = len(token_bytes)
        token_bytes.append(text.encode())
        merges.append((ids[left], ids[right]))
    return Respelling(token_bytes, merges), ids


def test_a_multi_token_word_is_found_in_its_other_spelling() -> None:
    table, ids = byte_vocab(" c", " ch", " cha", " char", "ch", "ar", "arl")
    d = drafter()
    prompt = [ids[" char"], ids["l"], ids[" "], ids["="]]
    answer = [ids["="], ids["ch"]]  # the answer writes the word without its space
    plain = d.session(prompt + answer).propose(3, corpus_weight=0.0)[0].tolist()
    d.respelling = table
    assert d._store.respelled(prompt) == [[ids["ch"], ids["arl"], ids[" "], ids["="]]]
    drafted = d.session(prompt + answer).propose(2, corpus_weight=0.0)[0].tolist()
    assert drafted == [ids["arl"], ids[" "]]
    assert drafted != plain[:2]
    # the drafting history is the request itself: side sequences are counted, not appended
    assert d.session(prompt).tokens().tolist() == prompt
    d.respelling = None
    assert d.respelling is None and d._store.respelled(prompt) == []


def test_respelling_survives_token_aliases_and_pickling() -> None:
    table, ids = byte_vocab(" c", " ch", "ch", "ar", "arl")
    d = drafter()
    d.respelling = table
    d.token_aliases = [(ids["ch"], ids[" ch"])]
    assert d._store.has_respelling
    d.token_aliases = None
    assert d._store.has_respelling
    back = pickle.loads(pickle.dumps(d))
    assert back.respelling == d.respelling
    assert back._store.respelled([ids[" ch"], ids["ar"]]) == d._store.respelled(
        [ids[" ch"], ids["ar"]]
    )


def test_bad_merges_are_refused() -> None:
    d = drafter()
    with pytest.raises(InvalidInputError, match="merges"):
        d.respelling = Respelling([b"a", b"b"], [(0, 5)])
    with pytest.raises(InvalidInputError):
        d.respelling = Respelling([b"a", b"b"], [(-1, 0)])
    assert d.respelling is None


def test_non_byte_level_tokenizers_get_none() -> None:
    class Slow:
        pass

    assert bpe_respelling(Slow()) is None


@pytest.fixture(scope="module")
def smollm2_tokenizer() -> Any:
    transformers = pytest.importorskip("transformers")
    from tasc_rs.embedded import ensure_embedded

    return transformers.AutoTokenizer.from_pretrained(str(ensure_embedded()))


def test_respelled_words_match_the_tokenizer(smollm2_tokenizer: Any) -> None:
    from task_data import slurp_path

    tok = smollm2_tokenizer
    table = bpe_respelling(tok)
    assert table is not None and len(table.merges) > 40_000
    d = NgramDrafter.from_corpus([[1, 2, 3]] * 5, vocab_size=len(tok), min_count=1)
    d.respelling = table
    rows = [json.loads(line) for line in slurp_path("test").read_text().splitlines()[:60]]
    checked = 0
    for row in rows:
        text = row["input"]
        prompt = tok.encode(text, add_special_tokens=False)
        sides = d._store.respelled(prompt)
        words = re.findall(r" ?[A-Za-z]+", text)
        # every side sequence starts with the tokenizer's encoding of a word's other spelling
        expected = {}
        for w in words:
            other = w[1:] if w.startswith(" ") else " " + w
            if (
                len(tok.encode(w, add_special_tokens=False)) > 1
                or len(tok.encode(other, add_special_tokens=False)) > 1
            ):
                expected[other] = tok.encode(other, add_special_tokens=False)
        for side in sides:
            heads = [e for e in expected.values() if side[: len(e)] == e]
            assert heads, (text, tok.convert_ids_to_tokens(side))
            checked += 1
    assert checked > 50


def test_a_batch_proposer_reads_respelled_words() -> None:
    import numpy as np

    table, ids = byte_vocab(" c", " ch", " cha", " char", "ch", "ar", "arl")
    d = drafter()
    d.respelling = table
    tokens = [ids[" char"], ids["l"], ids[" "], ids["="], ids["="], ids["ch"]]
    row = np.zeros((1, 32), dtype=np.int32)
    row[0, : len(tokens)] = tokens
    p = d.batch_proposer(min_prob=0.0, corpus_weight=0.0)
    drafted = p.propose([[ids["ch"]]], np.array([len(tokens)], dtype=np.int32), row, 2)
    assert drafted == [[ids["arl"], ids[" "]]]


def test_build_drafter_gives_the_tokenizer_respelling(smollm2_tokenizer: Any) -> None:
    from tasc_rs.hf.corpus import build_drafter

    texts = ["intent: alarm_set; slots: time=seven am"] * 6
    tok = smollm2_tokenizer
    assert build_drafter(tok, texts, progress=False).respelling == bpe_respelling(tok)
    assert build_drafter(tok, texts, progress=False, respelling=False).respelling is None
