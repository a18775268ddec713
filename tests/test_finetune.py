"""The fine-tuning recipe: answer-only loss, learning, partial training, resuming, bad input."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tasc_rs.errors import InvalidConfigError, InvalidInputError  # noqa: E402
from tasc_rs.ft.finetune import (  # noqa: E402
    IGNORE,
    FinetuneConfig,
    _answer_loss,
    _collate,
    _full_loss,
    _loss_fn,
    encode_example,
    finetune,
)

PAIRS = [([1, 2, 3, 4], [10, 11, 12]), ([5, 6], [13, 14, 12])] * 4


def tiny_llama(seed: int = 0, tied: bool = False):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        tie_word_embeddings=tied,
        vocab_size=32,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(config)


def answer_loss(model) -> float:  # type: ignore[no-untyped-def]
    losses = []
    with torch.no_grad():
        for prompt, answer in PAIRS[:2]:
            ids, labels = encode_example(prompt, answer, 64)
            out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
            losses.append(float(out.loss))
    return sum(losses) / len(losses)


def test_prompt_tokens_are_masked_and_long_prompts_cut_on_the_left() -> None:
    ids, labels = encode_example([1, 2, 3, 4, 5], [8, 9], max_length=5)
    assert ids == [3, 4, 5, 8, 9]
    assert labels == [IGNORE, IGNORE, IGNORE, 8, 9]


def padded_batch() -> dict[str, torch.Tensor]:
    return _collate([encode_example(p, a, 64) for p, a in PAIRS[:2]], pad_id=0)


@pytest.mark.parametrize("tied", [False, True])
def test_answer_only_logits_give_the_models_loss_and_gradients(tied: bool) -> None:
    model = tiny_llama(tied=tied)
    batch = padded_batch()
    assert _loss_fn(model, batch) is _answer_loss
    grads = []
    for loss_fn in (_answer_loss, _full_loss):
        model.zero_grad()
        loss = loss_fn(model, batch)
        loss.backward()
        grads.append((float(loss.detach()), [p.grad.clone() for p in model.parameters()]))
    (fast, fast_grads), (full, full_grads) = grads
    assert fast == pytest.approx(full, rel=1e-5)
    for a, b in zip(fast_grads, full_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_models_that_rescale_their_logits_train_through_their_own_forward() -> None:
    model = tiny_llama()
    forward = model.forward

    def scaled(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = forward(*args, **kwargs)
        out.loss = out.loss * 2  # stands in for a logit scale or soft-cap in the head
        return out

    model.forward = scaled  # type: ignore[method-assign]
    assert _loss_fn(model, padded_batch()) is _full_loss


@pytest.mark.timeout(120)
def test_training_lowers_the_answer_loss(tmp_path) -> None:
    model = tiny_llama()
    before = answer_loss(model)
    finetune(
        model,
        PAIRS,
        tmp_path,
        FinetuneConfig(epochs=15, lr=3e-3, batch_size=4),
        progress=lambda *a: None,
    )
    assert answer_loss(model) < before * 0.5


@pytest.mark.timeout(120)
def test_partial_training_leaves_frozen_weights(tmp_path) -> None:
    model = tiny_llama()
    first = model.model.layers[0].self_attn.q_proj.weight.clone()
    last = model.model.layers[1].self_attn.q_proj.weight.clone()
    emb = model.get_input_embeddings().weight.clone()
    config = FinetuneConfig(
        epochs=3, lr=1e-2, batch_size=4, trainable_layers=1, train_embeddings=False
    )
    finetune(model, PAIRS, tmp_path, config, progress=lambda *a: None)
    assert torch.equal(first, model.model.layers[0].self_attn.q_proj.weight)
    assert torch.equal(emb, model.get_input_embeddings().weight)
    assert not torch.equal(last, model.model.layers[1].self_attn.q_proj.weight)


@pytest.mark.parametrize("input_grad", [True, False])
def test_head_only_embeddings_stop_the_backward_at_the_trainable_blocks(
    tmp_path, input_grad: bool
) -> None:
    model = tiny_llama(tied=True)
    first = model.model.layers[0]
    first_before = [p.detach().clone() for p in first.parameters()]
    emb_before = model.get_input_embeddings().weight.detach().clone()
    backward_calls: list[int] = []
    first.register_full_backward_hook(lambda *_: backward_calls.append(1))
    config = FinetuneConfig(
        epochs=2, lr=1e-2, batch_size=4, trainable_layers=1, input_embedding_grad=input_grad
    )
    finetune(model, PAIRS, tmp_path, config, progress=lambda *a: None)
    # The tied matrix learns either way; only the full backward reaches the first block.
    assert not torch.equal(model.get_input_embeddings().weight, emb_before)
    assert bool(backward_calls) is input_grad
    for before, after in zip(first_before, first.parameters(), strict=True):
        torch.testing.assert_close(before, after)
    # The detaching hook is gone after training: embeddings feed gradients again.
    out = model.get_input_embeddings()(torch.tensor([[1, 2]]))
    assert out.requires_grad


@pytest.mark.parametrize(("tied", "lora"), [(True, False), (False, False), (True, True)])
def test_new_token_rows_take_a_scaled_step(tmp_path, tied: bool, lora: bool) -> None:
    # One step from the same weights and batch: with scale 5 the new rows (ids >= 12, which the
    # answers use) move five times as far as without it; every other weight moves as without it.
    if lora:
        pytest.importorskip("peft")
    config = FinetuneConfig(
        epochs=0.25,
        lr=1e-2,
        batch_size=4,
        warmup=0.0,
        new_token_lr_scale=1.0,
        lora_r=4 if lora else None,
    )
    scaled_config = FinetuneConfig(**{**config.__dict__, "new_token_lr_scale": 5.0})
    start = tiny_llama(tied=tied).state_dict()

    def one_step(out: str, cfg: FinetuneConfig) -> dict[str, torch.Tensor]:
        model = tiny_llama(tied=tied)  # seeds torch: LoRA starts the same in both runs
        out_dir = tmp_path / out
        trained = finetune(model, PAIRS, out_dir, cfg, progress=lambda *a: None, new_tokens_from=12)
        return (trained.merge_and_unload() if lora else trained).state_dict()

    plain = one_step("a", config)
    scaled = one_step("b", scaled_config)
    matrices = {"model.embed_tokens.weight", "lm_head.weight"}
    for name, before in start.items():
        if name in matrices:
            torch.testing.assert_close(scaled[name][:12], plain[name][:12])
            moved = plain[name][12:] - before[12:]
            assert moved.abs().max() > 0
            torch.testing.assert_close(scaled[name][12:] - before[12:], 5.0 * moved)
        else:
            torch.testing.assert_close(scaled[name], plain[name])


def test_new_tokens_from_must_be_an_embedding_row(tmp_path) -> None:
    with pytest.raises(InvalidConfigError, match="new_tokens_from"):
        finetune(tiny_llama(), PAIRS, tmp_path, new_tokens_from=33, progress=lambda *a: None)
    with pytest.raises(InvalidConfigError, match="new_token_lr_scale"):
        finetune(tiny_llama(), PAIRS, tmp_path, FinetuneConfig(new_token_lr_scale=0.0))


@pytest.mark.timeout(120)
def test_resume_continues_to_the_same_weights(tmp_path) -> None:
    config = FinetuneConfig(epochs=4, lr=1e-3, batch_size=4, save_every=3)
    straight = finetune(tiny_llama(), PAIRS, tmp_path / "a", config, progress=lambda *a: None)
    steps: list[int] = []

    def stop_after_three(step: int, total: int, loss: float) -> None:
        steps.append(step)
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(tiny_llama(), PAIRS, tmp_path / "b", config, progress=stop_after_three)
    resumed = finetune(
        tiny_llama(),
        PAIRS,
        tmp_path / "b",
        config,
        progress=lambda s, t, v: steps.append(s),
    )
    assert steps[:3] == [1, 2, 3] and steps[3] == 4
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_bad_input(tmp_path) -> None:
    with pytest.raises(InvalidInputError):
        finetune(tiny_llama(), [], tmp_path)
    with pytest.raises(InvalidInputError):
        finetune(tiny_llama(), [([1], [])], tmp_path)
    with pytest.raises(InvalidConfigError):
        finetune(tiny_llama(), PAIRS, tmp_path, FinetuneConfig(epochs=0))
    finetune(tiny_llama(), PAIRS, tmp_path, FinetuneConfig(epochs=1), progress=lambda *a: None)
    quiet = {"progress": lambda *a: None}
    with pytest.raises(InvalidConfigError, match="differs in config"):
        finetune(tiny_llama(), PAIRS, tmp_path, FinetuneConfig(epochs=2), **quiet)
    # Resuming also needs the same examples and the same new-token rows.
    one = FinetuneConfig(epochs=1)
    with pytest.raises(InvalidConfigError, match="differs in examples, data_sha256"):
        finetune(tiny_llama(), PAIRS[:4], tmp_path, one, **quiet)
    with pytest.raises(InvalidConfigError, match="differs in data_sha256"):
        finetune(tiny_llama(), PAIRS[::-1], tmp_path, one, **quiet)
    with pytest.raises(InvalidConfigError, match="differs in new_tokens_from"):
        finetune(tiny_llama(), PAIRS, tmp_path, one, new_tokens_from=30, **quiet)
    # ... and the same trainable parameters: another model's checkpoint is refused up front.
    with pytest.raises(InvalidConfigError, match="differs in trainable_sha256"):
        finetune(tiny_llama(tied=True), PAIRS, tmp_path, one, **quiet)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("tied", [True, False])
def test_lora_trains_adapters_and_the_vocabulary_rows(tmp_path, tied: bool) -> None:
    pytest.importorskip("peft")
    model = tiny_llama(tied=tied)
    before = answer_loss(model)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    config = FinetuneConfig(epochs=15, lr=3e-3, batch_size=4, lora_r=4)
    peft_model = finetune(model, PAIRS, tmp_path, config, progress=lambda *a: None)
    # Only adapters and the vocabulary matrices train; the blocks' own weights stay put.
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all(
        "lora_" in n or "embed_tokens" in n or "lm_head" in n for n in trainable
    )
    merged = peft_model.merge_and_unload()
    emb, head = merged.get_input_embeddings().weight, merged.get_output_embeddings().weight
    assert (emb is head) is tied  # a tied matrix stays one matrix
    assert not torch.equal(emb, start["model.embed_tokens.weight"])
    q = merged.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(q, start["model.layers.0.self_attn.q_proj.weight"])  # adapter merged
    assert answer_loss(merged) < before * 0.5
    # The merged model saves and loads as a plain transformers model with the same loss.
    merged.save_pretrained(tmp_path / "merged")
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert answer_loss(loaded) == pytest.approx(answer_loss(merged), rel=1e-5)
