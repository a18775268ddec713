"""Fine-tuning a causal LM on a task's (input, output) pairs, the TASC-ft recipe.

The loss covers the answer tokens only (the assistant's output and its end-of-turn token), never
the prompt. Full fine-tuning suits small models on a CPU; ``lora_r`` switches to LoRA (needs the
``peft`` package) with the input embeddings and LM head kept trainable, as the paper does, so new
vocabulary tokens learn. Checkpoints (model, optimizer, step, RNG state) are written every
``save_every`` steps and at the end; calling :func:`finetune` again with the same ``output_dir``
resumes from the last checkpoint.

Example:
    >>> from tasc_rs.ft.finetune import FinetuneConfig, finetune  # doctest: +SKIP
    >>> pairs = [(prompt_ids, answer_ids), ...]  # doctest: +SKIP
    >>> finetune(model, pairs, "out/slurp-ft", FinetuneConfig(epochs=3))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from tasc_rs.errors import InvalidConfigError, InvalidInputError, TascError

CHECKPOINT = "checkpoint.pt"
IGNORE = -100


@dataclass
class FinetuneConfig:
    """Hyper-parameters of :func:`finetune`.

    Attributes:
        epochs: Passes over the data (fractions allowed, e.g. 1.5). The default 3 and ``lr``
            2e-4 are the paper's; on slurp with SmolLM2-135M (last 10 blocks) 3 epochs lift
            exact match from 44 to 58 at M = 0 and from 32 to 36 at M = 1000 over one epoch.
        lr: Peak learning rate (linear warm-up over ``warmup`` of the steps, then linear decay).
        batch_size: Examples per optimizer step.
        max_length: Prompt + answer tokens kept per example (longer prompts are cut on the left).
        lora_r: LoRA rank; ``None`` means full fine-tuning. Adapters (alpha = 2r) go on the
            attention and MLP projections, and with ``train_embeddings`` the input embeddings
            and LM head train in full (a tied matrix stays tied; peft >= 0.18). ``tasc
            finetune --lora-r`` merges the adapters before saving. ``trainable_layers`` does
            not apply.
        weight_decay: AdamW weight decay.
        warmup: Fraction of steps spent warming up.
        seed: Seeds shuffling and initialisation.
        save_every: Steps between checkpoints.
        trainable_layers: Train only the last N transformer blocks (backward stops there, which
            roughly halves a CPU step); ``None`` trains them all. Full fine-tuning only.
        train_embeddings: Train the input embeddings and LM head (needed when new vocabulary
            tokens were added); with tied embeddings they are one matrix.
        input_embedding_grad: With ``False`` the input embeddings' output is detached, so the
            backward pass stops at the first trainable block even though the embeddings train:
            a tied matrix then learns through the LM head only (untied input embeddings stay
            fixed). With ``trainable_layers`` this keeps a CPU step about as cheap as with frozen
            embeddings; new tokens keep their mean-of-parts input rows plus the head's updates.
        new_token_lr_scale: Multiplies the update of the embedding and LM-head rows of the new
            vocabulary tokens (rows from ``new_tokens_from`` of :func:`finetune` on). Old tokens
            need small corrections; new tokens start from the mean of their parts and must
            become the most likely token in their contexts, which at the base learning rate
            takes far more steps than a small-data run has. AdamW's step does not grow with the
            gradient, so the scale is applied to the step itself. The default 30 comes from
            benches/eval_ft.py on slurp with SmolLM2-135M: at M = 250 on 800 rows exact match
            is 5 with scale 1, 21 with 10 and 22 with 30; on all 2033 rows with 30, M = 500
            scores 43 against 44 at M = 0. No effect without new tokens.
    """

    epochs: float = 3.0
    lr: float = 2e-4
    batch_size: int = 8
    max_length: int = 256
    lora_r: int | None = None
    weight_decay: float = 0.0
    warmup: float = 0.05
    seed: int = 0
    save_every: int = 100
    trainable_layers: int | None = None
    train_embeddings: bool = True
    input_embedding_grad: bool = True
    new_token_lr_scale: float = 30.0

    def validate(self) -> None:
        """Raise :class:`InvalidConfigError` for a value out of range."""
        checks = [
            (self.epochs > 0, f"epochs must be > 0, got {self.epochs}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.max_length >= 8, f"max_length must be >= 8, got {self.max_length}"),
            (self.lora_r is None or self.lora_r >= 1, f"lora_r must be >= 1, got {self.lora_r}"),
            (0 <= self.warmup < 1, f"warmup must be in [0, 1), got {self.warmup}"),
            (self.save_every >= 1, f"save_every must be >= 1, got {self.save_every}"),
            (
                self.trainable_layers is None or self.trainable_layers >= 1,
                f"trainable_layers must be >= 1, got {self.trainable_layers}",
            ),
            (
                self.new_token_lr_scale > 0,
                f"new_token_lr_scale must be > 0, got {self.new_token_lr_scale}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidConfigError(message)


def encode_example(
    prompt_ids: Sequence[int], answer_ids: Sequence[int], max_length: int
) -> tuple[list[int], list[int]]:
    """Token ids and labels for one example; prompt positions are masked with -100.

    The prompt is cut on the left if prompt + answer exceed ``max_length``; the answer is kept
    whole when it fits, else cut on the right.

    Example:
        >>> encode_example([1, 2, 3], [7, 8], max_length=4)
        ([2, 3, 7, 8], [-100, -100, 7, 8])
    """
    answer = list(answer_ids)[:max_length]
    room = max_length - len(answer)
    prompt = list(prompt_ids)[len(prompt_ids) - room :] if room > 0 else []
    return prompt + answer, [IGNORE] * len(prompt) + answer


def _collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _answer_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The causal-LM loss with the LM head applied only where a label is scored.

    ``model(**batch).loss`` projects every position, prompt included, onto the vocabulary; on
    short answers after long prompts most of that work (a third of a SmolLM2 training step) is
    thrown away. Same value as the model's own loss when the model's logits are
    ``lm_head(decoder(x))``, which :func:`_loss_fn` checks before relying on it.
    """
    decoder = model.get_decoder()
    hidden = decoder(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    targets = batch["labels"][:, 1:]
    scored = targets != IGNORE
    logits = model.get_output_embeddings()(hidden[:, :-1][scored]).float()
    return torch.nn.functional.cross_entropy(logits, targets[scored])


def _full_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    loss: torch.Tensor = model(**batch).loss
    return loss


def _loss_fn(
    model: Any, batch: dict[str, torch.Tensor]
) -> Callable[[Any, dict[str, torch.Tensor]], torch.Tensor]:
    """:func:`_answer_loss` when it reproduces the model's loss on ``batch``, else the full one.

    Models that scale or soft-cap their logits, or whose decoder cannot be found, fail the check
    and train through their own ``forward``.
    """
    training = model.training
    model.eval()  # no dropout: both losses see the same network
    try:
        with torch.no_grad():
            fast = float(_answer_loss(model, batch))
            full = float(_full_loss(model, batch))
    except (AttributeError, TypeError, ValueError, RuntimeError):
        return _full_loss
    finally:
        model.train(training)
    return _answer_loss if math.isclose(fast, full, rel_tol=1e-4, abs_tol=1e-5) else _full_loss


def _blocks(model: Any) -> Any:
    """The list of transformer blocks of common architectures (Llama-, GPT-2- and OPT-like)."""
    for path in ("model.layers", "transformer.h", "model.decoder.layers", "gpt_neox.layers"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None:
            return obj
    raise TascError(f"cannot find the transformer blocks of {type(model).__name__}")


def _trainable(model: Any, config: FinetuneConfig) -> Any:
    lora_r = config.lora_r
    if lora_r is None:
        model.requires_grad_(config.trainable_layers is None)
        if config.trainable_layers is not None:
            for block in list(_blocks(model))[-config.trainable_layers :]:
                block.requires_grad_(True)
            for name in ("norm", "final_layernorm", "ln_f"):
                for module in (getattr(model, "model", None), getattr(model, "transformer", None)):
                    if module is not None and hasattr(module, name):
                        getattr(module, name).requires_grad_(True)
        model.get_input_embeddings().requires_grad_(config.train_embeddings)
        model.get_output_embeddings().requires_grad_(config.train_embeddings)
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:
        raise TascError("LoRA fine-tuning needs the peft package: pip install peft") from e
    names = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    vocab_modules = (model.get_input_embeddings(), model.get_output_embeddings())
    to_save = [
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if any(module is m for m in vocab_modules)
    ]
    extra: dict[str, Any] = {}
    inp, out = vocab_modules
    tied = out is not None and inp.weight is out.weight
    if tied and config.train_embeddings:
        # peft copies each module in modules_to_save; without this the tied matrix would
        # become two (input and head trained apart) under a config that still says tied.
        if "ensure_weight_tying" not in LoraConfig.__dataclass_fields__:
            raise TascError("LoRA on a model with tied embeddings needs peft >= 0.18")
        extra["ensure_weight_tying"] = True
    lora = LoraConfig(
        r=lora_r,
        lora_alpha=2 * lora_r,
        target_modules=[n for n in names if n in present] or "all-linear",
        modules_to_save=to_save if config.train_embeddings else None,
        task_type="CAUSAL_LM",
        **extra,
    )
    with warnings.catch_warnings():
        # peft reads transformers' deprecated `is_gradient_checkpointing`; not the user's concern.
        warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
        return get_peft_model(model, lora)


def finetune(
    model: Any,
    examples: Sequence[tuple[Sequence[int], Sequence[int]]],
    output_dir: str | Path,
    config: FinetuneConfig | None = None,
    pad_id: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
    new_tokens_from: int | None = None,
) -> Any:
    """Fine-tunes ``model`` in place on tokenized (prompt ids, answer ids) pairs.

    Args:
        model: A transformers causal LM (on any device; batches follow it).
        examples: Pairs of prompt ids (ending with the assistant header) and answer ids (the output
            followed by the end-of-turn token).
        output_dir: Where checkpoints go; an existing checkpoint there is resumed.
        config: Hyper-parameters (defaults: :class:`FinetuneConfig`).
        pad_id: Id used to pad batches (masked out of attention and loss).
        progress: Called as ``progress(step, total_steps, loss)`` after every step; a tqdm bar
            is shown when omitted.
        new_tokens_from: Id of the first added vocabulary token (the base vocabulary size);
            its rows and those after it get ``config.new_token_lr_scale``. ``None``: no new
            tokens.

    Returns:
        The trained model (a peft model when ``lora_r`` is set).

    Raises:
        InvalidInputError: no examples, or an example without answer tokens.
        InvalidConfigError: a hyper-parameter out of range, or ``new_tokens_from`` outside the
            embedding matrix.
    """
    config = config or FinetuneConfig()
    config.validate()
    rows = model.get_input_embeddings().weight.shape[0]
    if new_tokens_from is not None and not 0 < new_tokens_from <= rows:
        raise InvalidConfigError(
            f"new_tokens_from must be in [1, {rows}] (the embedding rows), got {new_tokens_from}"
        )
    if not examples:
        raise InvalidInputError("no training examples")
    if any(len(answer) == 0 for _, answer in examples):
        raise InvalidInputError("every example needs at least one answer token")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    model = _trainable(model, config)
    model.train()
    encoded = [encode_example(p, a, config.max_length) for p, a in examples]
    steps_per_epoch = math.ceil(len(encoded) / config.batch_size)
    total = max(1, round(steps_per_epoch * config.epochs))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    warm = max(1, int(total * config.warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    run = _run_key(model, config, new_tokens_from, encoded)
    step = _resume(out, model, optimizer, schedule, run)
    scaled = _new_rows(model, new_tokens_from, rows) if config.new_token_lr_scale != 1.0 else []
    bar = None
    if progress is None:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=step, desc="fine-tuning", unit="step")
    order = _order(len(encoded), total * config.batch_size, config.seed)
    hook = None
    if not config.input_embedding_grad:
        hook = model.get_input_embeddings().register_forward_hook(
            lambda _module, _inputs, output: output.detach()
        )
    loss_fn = None
    try:
        while step < total:
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            rows = _collate([encoded[i] for i in idx], pad_id)
            batch = {k: v.to(device) for k, v in rows.items()}
            loss_fn = loss_fn or _loss_fn(model, batch)
            loss = loss_fn(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            before = [weight[start:].detach().clone() for weight, start in scaled]
            optimizer.step()
            with torch.no_grad():
                for (weight, start), old in zip(scaled, before, strict=True):
                    new = weight[start:]
                    new.copy_(old + config.new_token_lr_scale * (new - old))
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            value = float(loss.detach())
            if step % config.save_every == 0 or step == total:
                _save(out, model, optimizer, schedule, step, run)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.3f}")
            elif progress is not None:
                progress(step, total, value)
    finally:
        if hook is not None:
            hook.remove()
    if bar is not None:
        bar.close()
    model.eval()
    return model


def _new_rows(model: Any, start: int | None, rows: int) -> list[tuple[torch.Tensor, int]]:
    """The trainable vocabulary matrices (embeddings, LM head; a tied one once) and ``start``.

    Read from the modules' parameters rather than their ``weight``, so peft's trainable copies
    of the embeddings and head (``modules_to_save`` wrappers) are found too.
    """
    if start is None:
        return []
    found: dict[int, tuple[torch.Tensor, int]] = {}
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        for p in module.parameters() if module is not None else ():
            if p.requires_grad and p.dim() == 2 and p.shape[0] == rows:
                found.setdefault(id(p), (p, start))
    return list(found.values())


def _order(n: int, needed: int, seed: int) -> list[int]:
    """Example indices for every step: shuffled epochs concatenated (deterministic per seed)."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < needed:
        epoch = list(range(n))
        rng.shuffle(epoch)
        order.extend(epoch)
    return order


def _run_key(
    model: Any,
    config: FinetuneConfig,
    new_tokens_from: int | None,
    encoded: list[tuple[list[int], list[int]]],
) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: settings, new-token rows, the data and the
    trainable parameters (names and shapes, so another model or peft layout is refused)."""
    digest = hashlib.sha256()
    for ids, labels in encoded:
        digest.update(json.dumps([ids, labels]).encode())
    params = hashlib.sha256()
    for name, p in model.named_parameters():
        if p.requires_grad:
            params.update(json.dumps([name, list(p.shape)]).encode())
    return {
        "config": asdict(config),
        "new_tokens_from": new_tokens_from,
        "examples": len(encoded),
        "data_sha256": digest.hexdigest(),
        "trainable_sha256": params.hexdigest(),
    }


def _save(
    out: Path, model: Any, optimizer: Any, schedule: Any, step: int, run: dict[str, Any]
) -> None:
    state = {
        "step": step,
        "run": run,
        "model": {k: v for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
    }
    tmp = out / (CHECKPOINT + ".tmp")
    torch.save(state, tmp)
    tmp.replace(out / CHECKPOINT)
    (out / "progress.json").write_text(json.dumps({"step": step}), encoding="utf-8")


def _resume(out: Path, model: Any, optimizer: Any, schedule: Any, run: dict[str, Any]) -> int:
    path = out / CHECKPOINT
    if not path.exists():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=False)
    saved = state.get("run") or {"config": state.get("config")}
    differ = [k for k in run if saved.get(k) != run[k]]
    if differ:
        raise InvalidConfigError(
            f"{path} was written for another run (differs in {', '.join(differ)}; saved "
            f"configuration {saved.get('config')}); use a fresh output_dir or the same "
            "settings, examples and new_tokens_from to resume"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    return int(state["step"])
