"""Every public entry point checks its arguments by type and names the argument in a TascError.

Two classes are covered for every entry point: token ids (any integer array or sequence; floats,
bools, nested arrays and ids beyond 64 bits refused with the exact id and its position) and
scalar settings (ints are ints, never bools or floats; floats are real numbers, never bools).
A hypothesis test then feeds arbitrary Python values to each argument: the call either works or
raises a TascError, never a builtin error from argument conversion.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasc_rs import (
    ArgumentTypeError,
    CorpusBuilder,
    DtypeError,
    InvalidConfigError,
    InvalidInputError,
    NgramDrafter,
    TascError,
)
from tasc_rs._core import enrich_vocabulary
from tasc_rs.ft.enrichment import enrich_ids

CORPUS = [[5, 6, 7, 8, 2], [5, 6, 7, 9, 2]] * 5


def drafter() -> NgramDrafter:
    return NgramDrafter.from_corpus(CORPUS, min_count=2, vocab_size=16)


def enrichment() -> Any:
    b = CorpusBuilder(vocab_size=3)
    b.add([0, 1, 2, 0, 1, 2])
    return enrich_vocabulary(b, [b"a", b"b", b"c"], budget=1)


# Every entry point that takes token ids, as (argument name, call with those ids).
ID_ENTRY_POINTS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "session": ("prompt", lambda ids: drafter().session(ids)),
    "propose": ("context", lambda ids: drafter().propose(ids, 2)),
    "extend": ("ids", lambda ids: drafter().session([5]).extend(ids)),
    "learn": ("ids", lambda ids: drafter().learn(ids)),
    "builder.add": ("ids", lambda ids: CorpusBuilder(vocab_size=16).add(ids)),
    "from_flat": ("tokens", lambda ids: NgramDrafter.from_flat(ids, [0, 2], min_count=1)),
    "stop_tokens": ("stop_tokens", lambda ids: drafter().batch_proposer(stop_tokens=ids)),
    "enrichment.apply": ("ids", lambda ids: enrichment().apply(ids)),
    "from_corpus": ("corpus sequence 0", lambda ids: NgramDrafter.from_corpus([ids])),
    "enrich_ids": ("sequences[0]", lambda ids: enrich_ids([ids], [b"a"] * 16, budget=1)),
}


@pytest.fixture(params=sorted(ID_ENTRY_POINTS))
def ids_entry(request: pytest.FixtureRequest) -> tuple[str, Callable[[Any], Any]]:
    return ID_ENTRY_POINTS[request.param]


@pytest.mark.parametrize(
    ("bad", "error", "words"),
    [
        ([1, 2.0], DtypeError, ["position 1", "must be an int", "float"]),
        ([1, True], DtypeError, ["position 1", "bool"]),
        ([1, "2"], DtypeError, ["position 1", "str"]),
        ([np.array([1, 2])], DtypeError, ["position 0", "flat sequence"]),
        ([[1, 2]], DtypeError, ["position 0", "flat sequence"]),
        ([1, 2**63], InvalidInputError, ["9223372036854775808", "position 1"]),
        ([2**200], InvalidInputError, [str(2**200), "position 0"]),
        ([1, -(2**70)], InvalidInputError, [str(-(2**70)), "position 1"]),
        (np.array([1, 2**63 + 7], dtype=np.uint64), InvalidInputError, [str(2**63 + 7)]),
        (np.array([[1, 2]]), InvalidInputError, ["1-D", "shape"]),
        (np.array([1.0, 2.0]), DtypeError, ["float64"]),
        (np.array([True]), DtypeError, ["bool"]),
        ("12", DtypeError, ["str"]),
        (7, DtypeError, ["int"]),
    ],
)
def test_bad_token_ids_name_the_argument(
    ids_entry: tuple[str, Callable[[Any], Any]], bad: Any, error: type, words: list[str]
) -> None:
    name, call = ids_entry
    if name == "stop_tokens":  # ids that are a setting: the setting's error classes
        error = ArgumentTypeError if error is DtypeError else InvalidConfigError
    with pytest.raises(error) as info:
        call(bad)
    message = str(info.value)
    for word in [name, *words]:
        assert word in message, (word, message)


@pytest.mark.parametrize("order", [">", "<"])
@pytest.mark.parametrize("dtype", ["i2", "i4", "i8", "u2", "u4", "u8"])
def test_any_byte_order_is_read_as_its_values(order: str, dtype: str) -> None:
    d = drafter()
    ids = np.array([5, 6], dtype=order + dtype)
    assert d.propose(ids, 3)[0].tolist() == d.propose([5, 6], 3)[0].tolist()
    assert d.session(ids).propose(3)[0].tolist() == d.propose([5, 6], 3)[0].tolist()


def test_tensors_and_integer_scalars_are_ids() -> None:
    torch = pytest.importorskip("torch")
    d = drafter()
    want = d.propose([5, 6], 3)[0].tolist()
    assert d.propose(torch.tensor([5, 6]), 3)[0].tolist() == want
    assert d.propose(torch.tensor([5, 6], dtype=torch.int32), 3)[0].tolist() == want
    assert d.propose([torch.tensor(5), np.int16(6)], 3)[0].tolist() == want
    with pytest.raises(DtypeError, match=r"context must hold integer token ids.*float32"):
        d.propose(torch.tensor([5.0, 6.0]), 3)
    with pytest.raises(InvalidInputError, match=r"context must be a 1-D array.*2 dimensions"):
        d.propose(torch.tensor([[5, 6]]), 3)
    with pytest.raises(DtypeError, match=r"position 1.*Tensor"):
        d.propose([torch.tensor(5), torch.tensor(6.5)], 3)


# Every scalar setting, as (argument name, kind, call with the value).
SCALARS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "k (session)": ("int", lambda v: drafter().session([5]).propose(v)),
    "k (propose)": ("int", lambda v: drafter().propose([5], v)),
    "k (batch)": (
        "int",
        lambda v: (
            drafter().batch_proposer().propose([[5]], [1], np.full((1, 8), 5, dtype=np.int32), v)
        ),
    ),
    "max_len": (
        "int",
        lambda v: (
            drafter()
            .batch_proposer()
            .propose([[5]], [1], np.full((1, 8), 5, dtype=np.int32), 2, max_len=v)
        ),
    ),
    "n_max": ("int", lambda v: NgramDrafter.from_corpus(CORPUS, n_max=v)),
    "min_count": ("int", lambda v: NgramDrafter.from_corpus(CORPUS, min_count=v)),
    "vocab_size": ("int", lambda v: NgramDrafter.from_corpus(CORPUS, vocab_size=v)),
    "max_requests": ("int", lambda v: drafter().batch_proposer(max_requests=v)),
    "stale_steps": ("int", lambda v: drafter().batch_proposer(stale_steps=v)),
    "online_capacity": ("int", lambda v: setattr(drafter(), "online_capacity", v)),
    "budget": ("int", lambda v: enrich_ids([[0, 0, 0]] * 2, [b"a"], budget=v)),
    "limit": ("int", lambda v: enrichment().apply([0, 1, 2], limit=v)),
    "corpus_weight": ("float", lambda v: NgramDrafter.from_corpus(CORPUS, corpus_weight=v)),
    "min_prob": ("float", lambda v: drafter().propose([5], 2, min_prob=v)),
    "min_prob (session)": ("float", lambda v: setattr(drafter().session([5]), "min_prob", v)),
    "corpus_weight (session)": (
        "float",
        lambda v: drafter().session([5]).propose(2, corpus_weight=v),
    ),
    "step_overhead": ("float", lambda v: drafter().batch_proposer(step_overhead=v)),
    "alpha": ("float", lambda v: enrich_ids([[0, 0, 0]] * 2, [b"a"], budget=1, alpha=v)),
    "strict": ("bool", lambda v: enrich_ids([[0, 0, 0]] * 2, [b"a"], budget=1, strict=v)),
}

WRONG_TYPES: dict[str, list[Any]] = {
    "int": [True, False, 2.0, 2.5, "3", b"3", [2], np.float64(2.0), np.bool_(True)],
    "float": [True, "0.5", [0.5], np.array([0.5, 0.5]), object()],
    "bool": [1, 0, "yes", None, 1.0],
}


@pytest.mark.parametrize("entry", sorted(SCALARS))
def test_wrong_scalar_types_raise_argument_type_error(entry: str) -> None:
    kind, call = SCALARS[entry]
    name = entry.split(" ")[0]
    for bad in WRONG_TYPES[kind]:
        with pytest.raises(ArgumentTypeError) as info:
            call(bad)
        assert isinstance(info.value, TypeError) and isinstance(info.value, TascError)
        assert name in str(info.value), (bad, str(info.value))


@pytest.mark.parametrize("entry", sorted(e for e, (kind, _) in SCALARS.items() if kind == "int"))
def test_huge_ints_are_reported_as_given(entry: str) -> None:
    _, call = SCALARS[entry]
    with pytest.raises(InvalidConfigError) as info:
        call(2**70)
    assert str(2**70) in str(info.value)
    assert entry.split(" ")[0] in str(info.value)


def test_numpy_scalars_are_numbers() -> None:
    d = NgramDrafter.from_corpus(
        CORPUS, n_max=np.int64(3), min_count=np.uint8(2), corpus_weight=np.float32(0.5)
    )
    assert (d.n_max, d.min_count, d.corpus_weight) == (3, 2, 0.5)
    plain = NgramDrafter.from_corpus(CORPUS, n_max=3, min_count=2, corpus_weight=0.5)
    assert d.to_bytes() == plain.to_bytes()
    got = d.propose([5], np.int32(2), min_prob=np.float64(0.1))[0].tolist()
    assert got == plain.propose([5], 2, min_prob=0.1)[0].tolist()
    d.online_capacity = np.int64(100)
    assert d.online_capacity == 100


def test_paths_and_bytes_are_checked(tmp_path: Any) -> None:
    d = drafter()
    for bad in (3, None, ["a"]):
        with pytest.raises(ArgumentTypeError, match=r"path must be a str or os\.PathLike"):
            d.save(bad)
        with pytest.raises(ArgumentTypeError, match=r"path must be a str or os\.PathLike"):
            NgramDrafter.load(bad)
    for bad in ("text", 3, [1, 2]):
        with pytest.raises(ArgumentTypeError, match="data must be bytes"):
            NgramDrafter.from_bytes(bad)
    data = d.to_bytes()
    for good in (bytearray(data), memoryview(data)):
        assert NgramDrafter.from_bytes(good).to_bytes() == data


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=4)
    | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    entry=st.sampled_from(sorted(SCALARS) + sorted(ID_ENTRY_POINTS)),
    value=values,
)
def test_any_value_works_or_raises_a_tasc_error(entry: str, value: Any) -> None:
    call = SCALARS[entry][1] if entry in SCALARS else ID_ENTRY_POINTS[entry][1]
    with contextlib.suppress(TascError):
        call(value)


def _env_config(monkeypatch: pytest.MonkeyPatch, raw: str) -> Any:
    from tasc_rs.vllm import resolve_settings

    monkeypatch.setenv("TASC_VLLM_CONFIG", raw)
    return resolve_settings()


def test_settings_of_the_wrong_shape_are_tasc_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The audit's builtin exceptions: each of these is a TascError now."""
    import json

    from tasc_rs import space_aliases
    from tasc_rs.drafter import restore_drafter

    d = NgramDrafter.from_corpus([[1, 2, 3, 4]] * 5, vocab_size=50, min_count=1)
    path = tmp_path / "d.tasc"
    d.save(path)
    drafter = {"drafter": str(path)}
    assert _env_config(monkeypatch, json.dumps(drafter))[0].drafter == path
    calls: list[Callable[[], Any]] = [
        lambda: NgramDrafter.from_corpus([[1, 2, 3]] * 5, mixing=5),  # type: ignore[arg-type]
        lambda: NgramDrafter.from_corpus([[1, 2, 3]] * 5, preset=["tuned"]),  # type: ignore[arg-type]
        lambda: setattr(d, "mixing", 5),
        lambda: setattr(d, "token_aliases", 5),
        lambda: setattr(d, "token_aliases", [(1,)]),
        lambda: setattr(d, "token_aliases", [("a", "b")]),
        lambda: setattr(d, "respelling", 5),
        lambda: setattr(d, "respelling", ([1], [])),
        lambda: space_aliases(5),
        lambda: restore_drafter(d.to_bytes(), mixing=5),  # type: ignore[arg-type]
        lambda: restore_drafter(d.to_bytes(), token_aliases=5),  # type: ignore[arg-type]
        lambda: restore_drafter(d.to_bytes(), respelling=5),  # type: ignore[arg-type]
        lambda: NgramDrafter.from_pairs(5, 5),  # type: ignore[arg-type]
        lambda: _env_config(monkeypatch, '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        lambda: _env_config(monkeypatch, json.dumps({**drafter, "online_capacity": 10**40})),
        lambda: _env_config(monkeypatch, json.dumps(drafter)[:-1] + ', "min_prob": 1e999}'),
    ]
    for call in calls:
        with pytest.raises(TascError):
            call()
