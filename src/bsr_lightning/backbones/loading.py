"""Backbone loading: sequence classifiers (reward models) and causal LMs aligned with their tokenizer, dropout, the
score head and its pooling, position ids."""

from __future__ import annotations

import logging
import math
import pickle

import torch
from safetensors import SafetensorError
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PreTrainedModel,
)

from bsr_lightning.args import Backbone
from bsr_lightning.backbones.adapters import bnb_config
from bsr_lightning.backbones.names import refuse_remote_code, resolve_model_path
from bsr_lightning.backbones.sizing import bytes_per_parameter, check_model_size
from bsr_lightning.errors import ConfigError, UserError

log = logging.getLogger(__name__)
HEAD_NAMES = ("score", "classifier")  # decoder-style (last-token pooled) first, then encoder-style


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
    raise ConfigError(f"{type(model).__name__} has no score head named one of {HEAD_NAMES}.")


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
        init: ``"default"`` keeps transformers' init; ``"normal"`` draws weights from N(0, 1/(H+1)) with zero bias
            (``std = 1/sqrt(H+1)``, TRL's reward examples after Stiennon et al. 2020, p. 11). The paper's code
            (``initialize_reward_model_head`` in ``modules/utils.py``) uses ``std = 1/sqrt(H)``: a factor
            ``sqrt(H/(H+1))`` apart, 1 - 1.2e-4 at H = 4096.
    """
    if init == "default":
        return
    if init != "normal":
        raise ConfigError(f"score_init must be 'default' or 'normal', got {init!r}.")
    linear = [m for m in find_score_head(model).modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        linear.weight.normal_(0.0, 1.0 / math.sqrt(linear.in_features + 1))
        if linear.bias is not None:
            linear.bias.zero_()


def load_reward_backbone(backbone: Backbone, tokenizer, score_init: str = "default") -> PreTrainedModel:
    """Load ``AutoModelForSequenceClassification`` with one label, aligned with ``tokenizer``.

    Args:
        backbone: the name and loading options (dtype, attention, remote code, dropout, quantization: every linear
            layer but the score head).
        tokenizer: from :func:`~bsr_lightning.backbones.tokenizers.load_tokenizer`; embeddings are resized if it
            added tokens.
        score_init: see :func:`init_score_head`.
    """
    model = _load(AutoModelForSequenceClassification, backbone, tokenizer, list(HEAD_NAMES), num_labels=1)
    if pooling_of(model) == "first":
        tokenizer.padding_side = "right"  # the first-token pooler needs the first real token at position 0
    init_score_head(model, score_init)
    return model


def load_causal_lm(backbone: Backbone, tokenizer) -> PreTrainedModel:
    """Load ``AutoModelForCausalLM`` aligned with ``tokenizer`` (the LM head stays unquantized); its generation config
    stops at the tokenizer's EOS and pads with its pad token."""
    model = _load(AutoModelForCausalLM, backbone, tokenizer, ["lm_head"])
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config.eos_token_id is None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def eos_token_ids(model: PreTrainedModel, tokenizer) -> list[int]:
    """Every token id that ends a response: the tokenizer's EOS and the generation config's (e.g. end-of-turn)."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    return sorted({tokenizer.eos_token_id, *ids} - {None})


def _from_pretrained_reporting(auto_cls, path: str, heads: list[str], **kwargs) -> PreTrainedModel:
    """``from_pretrained`` with transformers' multi-line load report replaced by ours: one info line when only the
    head (``heads``: a fresh score head on a base model) was newly initialized, a warning naming the keys when
    anything else was missing or unexpected."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = auto_cls.from_pretrained(path, output_loading_info=True, **kwargs)
    except (SafetensorError, EOFError, pickle.UnpicklingError) as err:  # a damaged or incomplete weights file
        raise UserError(f"model {path}: its weights cannot be read ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:200]}); the file is damaged or incomplete. Download or export "
                        "the model again.") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = sorted(info.get("missing_keys", []))
    unexpected = sorted(info.get("unexpected_keys", []))
    fresh_head = [k for k in missing if k.split(".")[0] in heads]
    if fresh_head:
        log.info("%s: new %s (%s), initialized here.", path, fresh_head[0].split(".")[0], ", ".join(fresh_head))
    model.fresh_score_head = bool(fresh_head)  # read by scoring, which refuses a head nobody trained
    others = [k for k in missing if k not in fresh_head]
    if others or unexpected:
        log.warning("%s: %d weights missing from the checkpoint (e.g. %s) and %d unused (e.g. %s); check that the "
                    "model class fits it.", path, len(others), others[:3], len(unexpected), unexpected[:3])
    return model


def _load(auto_cls, backbone: Backbone, tokenizer, keep: list[str], **config_kwargs) -> PreTrainedModel:
    path = resolve_model_path(backbone.name)
    refuse_remote_code(path, backbone.trust_remote_code, backbone.name)
    config = AutoConfig.from_pretrained(path, trust_remote_code=backbone.trust_remote_code, **config_kwargs)
    check_model_size(config, path, backbone.name, 0.5 if backbone.quantization else
                     bytes_per_parameter(backbone.dtype or getattr(config, "dtype", None)))
    if not backbone.dropout:
        disable_dropout(config)
    kwargs = {"config": config, "trust_remote_code": backbone.trust_remote_code}
    if backbone.dtype is not None:
        kwargs["dtype"] = getattr(torch, backbone.dtype)
    if backbone.attention is not None:
        kwargs["attn_implementation"] = backbone.attention
    if backbone.quantization is not None:
        kwargs["quantization_config"] = bnb_config(backbone.quantization, kwargs.get("dtype", torch.float32), keep)
    model = _from_pretrained_reporting(auto_cls, path, keep, **kwargs)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id  # exported models then pool the same token as training
    return model
