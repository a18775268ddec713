"""TASC-ft with Hugging Face: SmolLM2's real tokenizer on slurp outputs, tiny random Llamas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from task_data import slurp_path  # noqa: E402

from tasc_rs import InvalidInputError  # noqa: E402
from tasc_rs.ft import (  # noqa: E402
    EnrichmentResult,
    enrich,
    expand_model,
    expand_tokenizer,
    is_byte_level,
    prompt_tokenizer,
    token_bytes,
)

BUDGET = 300


def _outputs(split: str) -> list[str]:
    with slurp_path(split).open() as f:
        return [json.loads(line)["output"] for line in f]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from tasc_rs.embedded import ensure_embedded

    return transformers.AutoTokenizer.from_pretrained(str(ensure_embedded(verbose=False)))


@pytest.fixture(scope="module")
def result(tokenizer: Any) -> EnrichmentResult:
    return enrich(_outputs("train"), tokenizer, budget=BUDGET)


@pytest.fixture(scope="module")
def expanded(tokenizer: Any, result: EnrichmentResult) -> Any:
    return expand_tokenizer(tokenizer, result)


def test_token_bytes_spell_every_output(tokenizer: Any) -> None:
    vocab = token_bytes(tokenizer)
    assert len(vocab) == len(tokenizer) and is_byte_level(tokenizer)
    for text in _outputs("test")[:200]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert b"".join(vocab[i] for i in ids) == text.encode()


def test_expanded_tokenizer_encodes_the_predicted_merges(
    tokenizer: Any, result: EnrichmentResult, expanded: Any
) -> None:
    assert len(result.tokens) == BUDGET and len(expanded) == result.vocab_size
    assert len(tokenizer) == result.base_vocab_size  # the original is untouched
    outputs = _outputs("train")
    base = tokenizer(outputs, add_special_tokens=False)["input_ids"]
    merged = expanded(outputs, add_special_tokens=False)["input_ids"]
    exact = sum(result.apply(b).tolist() == m for b, m in zip(base, merged, strict=True))
    assert exact / len(outputs) >= 0.99
    # Compression: the issue quotes ~5x at M = 500 without PCS; at M = 300 with it, > 4x.
    assert sum(map(len, base)) / sum(map(len, merged)) > 4.0


@pytest.mark.parametrize("split", ["train", "test"])
def test_decoding_round_trips_exactly(expanded: Any, split: str) -> None:
    outputs = _outputs(split)
    encoded = expanded(outputs, add_special_tokens=False)["input_ids"]
    decoded = expanded.batch_decode(encoded, clean_up_tokenization_spaces=False)
    assert decoded == outputs


def test_save_and_load_keep_the_new_tokens(
    expanded: Any, result: EnrichmentResult, tmp_path: Path
) -> None:
    expanded.save_pretrained(tmp_path)
    loaded = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert len(loaded) == result.vocab_size
    outputs = _outputs("test")[:300]
    assert loaded(outputs)["input_ids"] == expanded(outputs)["input_ids"]
    assert loaded.convert_tokens_to_ids(result.tokens[0].text) == result.tokens[0].id


def _inputs(split: str) -> list[str]:
    with slurp_path(split).open() as f:
        return [json.loads(line)["input"] for line in f]


def test_prompt_view_encodes_requests_as_the_base_tokenizer(
    tokenizer: Any, result: EnrichmentResult, expanded: Any
) -> None:
    view = prompt_tokenizer(expanded, result.base_vocab_size)
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        for text in _inputs("test")
    ]
    base = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    assert view(prompts, add_special_tokens=False)["input_ids"] == base
    # Without the view the new tokens also match inside requests (what the view is for).
    merged = expanded(prompts, add_special_tokens=False)["input_ids"]
    assert sum(a != b for a, b in zip(merged, base, strict=True)) > 0
    assert len(expanded) == result.vocab_size  # the enriched tokenizer is left as it was
    with pytest.raises(InvalidInputError, match="base_vocab_size"):
        prompt_tokenizer(expanded, 0)


def test_tokenizer_errors(tokenizer: Any, result: EnrichmentResult, expanded: Any) -> None:
    with pytest.raises(InvalidInputError, match="not a fast"):
        enrich(["a b"], object(), budget=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="no outputs"):
        enrich([], tokenizer, budget=1)
    with pytest.raises(InvalidInputError, match="base vocabulary"):
        expand_tokenizer(expanded, result)  # already expanded: sizes disagree


def _tiny_llama(vocab_size: int, tied: bool) -> Any:
    config = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        tie_word_embeddings=tied,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("tied", [True, False])
def test_expand_model_initializes_new_rows_as_means(
    expanded: Any, result: EnrichmentResult, tied: bool
) -> None:
    model = _tiny_llama(result.base_vocab_size, tied)
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    expand_model(model, expanded, result)
    new_in = model.get_input_embeddings().weight.detach()
    new_out = model.get_output_embeddings().weight.detach()
    assert new_in.shape[0] == result.vocab_size and new_out.shape[0] == result.vocab_size
    assert torch.equal(new_in[: result.base_vocab_size], old_in)
    assert torch.equal(new_out[: result.base_vocab_size], old_out)
    assert (new_in.data_ptr() == new_out.data_ptr()) == tied
    for token in (result.tokens[0], result.tokens[-1]):
        ids = torch.tensor(token.base_ids)
        assert torch.allclose(new_in[token.id], old_in[ids].mean(0))
        assert torch.allclose(new_out[token.id], old_out[ids].mean(0))
    # The expanded pair runs end to end.
    prompt = expanded("intent: calendar_set; slots:", return_tensors="pt")
    out = model.generate(**prompt, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 3


def test_expand_model_rejects_a_mismatched_model(expanded: Any, result: EnrichmentResult) -> None:
    model = _tiny_llama(1000, tied=True)
    with pytest.raises(InvalidInputError, match="do not match"):
        expand_model(model, expanded, result)
    assert model.get_input_embeddings().weight.shape[0] == 1000  # untouched
    with pytest.raises(InvalidInputError, match="not a fast"):
        expand_model(_tiny_llama(result.base_vocab_size, True), object(), result)  # type: ignore[arg-type]


def _rows(split: str) -> list[dict[str, str]]:
    with slurp_path(split).open() as f:
        return [json.loads(line) for line in f]


def test_exclude_copied_keeps_request_words_out_of_new_tokens(tokenizer: Any) -> None:
    import re

    rows = _rows("train")
    outputs, inputs = [r["output"] for r in rows], [r["input"] for r in rows]
    guarded = enrich(outputs, tokenizer, budget=1000, strict=False, inputs=inputs)
    plain = enrich(outputs, tokenizer, budget=len(guarded.tokens), strict=False)
    assert guarded.settings["exclude_copied"] and guarded.settings["copied_tokens"] > 0
    # Held-out tokens still count: both runs start from the same corpus length.
    assert guarded.initial_tokens == plain.initial_tokens
    assert 1 < guarded.compression_ratio() < plain.compression_ratio()
    # Without the guard, frequent copied values become tokens; with it, none does.
    copied = {w for r in rows for w in re.findall(r"\w+", r["output"]) if w in r["input"].split()}
    words = lambda res: {w for t in res.tokens for w in re.findall(r"\w+", t.text)}  # noqa: E731
    assert {"tomorrow", "meeting", "alarm"} & words(plain) & copied
    assert not {"tomorrow", "meeting", "alarm"} & words(guarded)
    # The enriched tokenizer encodes the train outputs as the guarded loop predicted (each
    # piece between held-out tokens merged, held-out tokens kept) for at least 99% of them.
    from tasc_rs.ft.enrichment import copied_token_mask, split_held_out

    expanded = expand_tokenizer(tokenizer, guarded)
    batch = tokenizer(outputs, add_special_tokens=False, return_offsets_mapping=True)
    merged = expanded(outputs, add_special_tokens=False)["input_ids"]
    exact = 0
    for text, source, ids, offsets, got in zip(
        outputs, inputs, batch["input_ids"], batch["offset_mapping"], merged, strict=True
    ):
        pieces = split_held_out(ids, copied_token_mask(text, source, offsets))
        exact += [t for p in pieces for t in guarded.apply(p).tolist()] == got
    assert exact / len(outputs) >= 0.99
    # On the test outputs the copied values keep their base tokens: the enriched tokenizer's
    # ids for a value equal the base tokenizer's.
    for r in _rows("test")[:300]:
        out = r["output"]
        for m in re.finditer(r"=([a-z]+)$", out):
            value = m.group(1)
            if value in r["input"].split():
                ids = expanded(out, add_special_tokens=False)["input_ids"]
                assert expanded.decode(ids[-len(tokenizer(value)["input_ids"]) :]).endswith(value)
    with pytest.raises(InvalidInputError, match="inputs holds 1 requests"):
        enrich(outputs[:2], tokenizer, budget=1, inputs=inputs[:1])
