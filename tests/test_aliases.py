"""Token aliases: a word's token with and without its leading space read as one by the context."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from tasc_rs import InvalidInputError, NgramDrafter, space_aliases

# " mon" (5) "a" (6) " t" (7) "uesday" (8) in the prompt; the answer writes "mon" (4) after "=" (9)
PROMPT = [3, 5, 6, 7, 8, 2]
ANSWER_SO_FAR = [9, 4]


class Vocab:
    """The tokenizer interface ``space_aliases`` reads."""

    def __init__(self, vocab: dict[str, int], special: tuple[int, ...] = ()) -> None:
        self.vocab, self.all_special_ids = vocab, list(special)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def get_added_vocab(self) -> dict[str, int]:
        return {}


def drafter() -> NgramDrafter:
    # a task corpus that knows nothing of the prompt's words
    return NgramDrafter.from_corpus([[9, 10, 11, 2]] * 5, vocab_size=20, min_count=1)


def test_byte_level_and_sentencepiece_vocabularies() -> None:
    bpe = {"mon": 4, "\u0120mon": 5, "a": 6, "\u0120t": 7, "t": 10, "\u0120": 11, "<s>": 12}
    bpe["\u0120<s>"] = 13
    assert space_aliases(Vocab(bpe, special=(12,))) == [(4, 5), (10, 7)]
    sp = {"mon": 1, "\u2581mon": 2, "x": 3, "\u2581y": 4}
    assert space_aliases(Vocab(sp)) == [(1, 2)]
    # no leading-space convention: nothing to pair
    assert (
        space_aliases(
            Vocab({"ab": 1, "cd": 2, "\u0120ab": 3} | {f"w{i}": 10 + i for i in range(60)})
        )
        == []
    )


def test_a_session_reads_the_alias_where_the_token_has_no_context() -> None:
    d = drafter()
    session = d.session(PROMPT + ANSWER_SO_FAR)
    assert session.propose(3, min_prob=0.5)[0].tolist() == []
    d.token_aliases = [(4, 5)]
    assert d.token_aliases == [(4, 5)]
    session = d.session(PROMPT + ANSWER_SO_FAR)
    assert session.propose(3, min_prob=0.5)[0].tolist() == [6, 7, 8]
    # carried by pickling; cleared by None
    assert pickle.loads(pickle.dumps(d)).token_aliases == [(4, 5)]
    d.token_aliases = None
    assert d.token_aliases == []


def test_a_batch_proposer_reads_aliases() -> None:
    import numpy as np

    d = drafter()
    d.token_aliases = [(5, 4)]  # either order
    p = d.batch_proposer(min_prob=0.5)
    tokens = PROMPT + ANSWER_SO_FAR
    row = np.zeros((1, 32), dtype=np.int32)  # the engine's buffer: room for the drafts
    row[0, : len(tokens)] = tokens
    assert p.propose([[4]], np.array([len(tokens)], dtype=np.int32), row, 3) == [[6, 7, 8]]


@pytest.mark.parametrize(
    ("pairs", "message"),
    [([(1, -2)], "negative"), ([(1, 20)], "out of range"), ([(3, 1 << 40)], "out of range")],
)
def test_bad_ids_are_refused(pairs: Any, message: str) -> None:
    d = drafter()
    with pytest.raises(InvalidInputError, match=message):
        d.token_aliases = pairs
    assert d.token_aliases == []


@pytest.mark.parametrize("pairs", [[(1,)], "ab", 5])
def test_malformed_pairs_are_refused(pairs: Any) -> None:
    d = drafter()
    with pytest.raises((TypeError, ValueError)):
        d.token_aliases = pairs
    assert d.token_aliases == []


def test_smollm2_pairs(tiny_model_dir: Any) -> None:
    transformers = pytest.importorskip("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(str(tiny_model_dir))
    pairs = set(space_aliases(tok))
    word = tok.convert_tokens_to_ids("mon")
    spaced = tok.convert_tokens_to_ids("\u0120mon")
    assert (word, spaced) in pairs
    assert all(tok.decode([b]) == " " + tok.decode([a]) for a, b in list(pairs)[:200])


def test_build_drafter_gives_the_tokenizer_aliases(tiny_model_dir: Any) -> None:
    transformers = pytest.importorskip("transformers")
    from tasc_rs.hf.corpus import build_drafter

    tok = transformers.AutoTokenizer.from_pretrained(str(tiny_model_dir))
    texts = ["intent: alarm_set; slots: time=seven am"] * 6
    assert build_drafter(tok, texts, progress=False).token_aliases == space_aliases(tok)
    assert build_drafter(tok, texts, progress=False, token_aliases=False).token_aliases == []
