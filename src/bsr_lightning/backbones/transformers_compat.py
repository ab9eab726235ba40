"""transformers internals with no public getter, in one place (pinned by tests/test_transformers_compat.py)."""

from __future__ import annotations

from torch import nn


def attention_implementation(model: nn.Module) -> str:
    """The attention implementation a loaded model runs (``sdpa``, ``eager``, ``flex_attention``, ...).

    transformers 5 sets it with the public ``set_attn_implementation`` but reads it only through the config's
    private ``_attn_implementation`` property.
    """
    return str(model.config._attn_implementation)
