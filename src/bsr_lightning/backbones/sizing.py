"""A model's size from its ``config.json``, checked before anything is built: a folder whose config describes far
more than its weight files hold (``num_hidden_layers: 200000`` beside a 2-layer model's weights) or more than this
machine's memory is refused with the numbers, instead of building layers for minutes until memory runs out."""

from __future__ import annotations

import os
from pathlib import Path

from bsr_lightning.errors import ConfigError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
SLACK = 50_000_000  # parameters a config may describe beyond its weights: a new score head, resized embeddings


def estimated_parameters(config) -> int | None:
    """About how many parameters a transformer with this config has: embeddings (input and output) and, per layer,
    attention (4 h^2) and an MLP (3 h i), an upper estimate for the common shapes; None when the config lacks the
    fields."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    fields = [getattr(text, k, None) for k in ("hidden_size", "num_hidden_layers", "vocab_size")]
    if not all(isinstance(v, int) and v > 0 for v in fields):
        return None
    hidden, layers, vocab = fields
    intermediate = getattr(text, "intermediate_size", None)
    intermediate = intermediate if isinstance(intermediate, int) and intermediate > 0 else 4 * hidden
    return 2 * vocab * hidden + layers * (4 * hidden * hidden + 3 * hidden * intermediate)


def bytes_per_parameter(dtype) -> float:
    """2 for ``bfloat16``/``float16`` (a name or a torch dtype, as ``config.dtype`` holds it), else 4."""
    return 2 if str(dtype).removeprefix("torch.") in ("bfloat16", "float16") else 4


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` of ``/proc/meminfo``); None off Linux."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_model_size(config, path: str, name: str, bytes_per_parameter: float) -> None:
    """Refuse (:class:`ConfigError`, with the numbers) a model whose ``config`` describes more parameters than the
    weight files in the folder ``path`` could hold (8 times, with :data:`SLACK`; a 4-bit checkpoint packs two per
    byte), or more bytes than the memory available."""
    params = estimated_parameters(config)
    if params is None:
        return
    weights = sum(f.stat().st_size for f in Path(path).glob("*") if f.name.endswith(WEIGHT_SUFFIXES)) \
        if os.path.isdir(path) else 0
    if weights and params > 8 * 2 * weights + SLACK:
        raise ConfigError(f"model {name!r}: config.json describes about {params / 1e6:,.0f}M parameters "
                          f"({_shape(config)}), but the folder's weight files hold {weights / 1e6:,.1f} MB; the "
                          "config does not fit the weights. Check config.json.")
    memory = available_memory()
    if memory is not None and params * bytes_per_parameter > memory:
        raise ConfigError(f"model {name!r}: config.json describes about {params / 1e9:,.1f}B parameters "
                          f"({_shape(config)}), {params * bytes_per_parameter / 2**30:,.1f} GiB of weights, more "
                          f"than the {memory / 2**30:,.1f} GiB of memory available here. Use a smaller model, "
                          "backbone.dtype bfloat16, or 4-bit quantization.")


def _shape(config) -> str:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return f"{text.num_hidden_layers} layers of width {text.hidden_size}, vocabulary {text.vocab_size}"
