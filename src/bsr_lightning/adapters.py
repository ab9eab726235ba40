"""LoRA adapters, 4-bit/8-bit quantized loading (QLoRA), and the dense full-precision copy written at export.

Supported combinations (checked at start by :func:`check_quantization`): ``quantization`` needs ``lora`` (quantized
weights cannot be trained directly), and runs under single-device or DDP strategies; FSDP shards full-precision or
bf16 weights and refuses ``quantization``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Quantization = Literal["nf4", "int8"]


@dataclass
class LoRA:
    """LoRA adapters (Hu et al. 2021) via peft.

    Args:
        r: the adapters' rank.
        alpha: the scaling numerator (``alpha / r`` multiplies the update).
        dropout: dropout on the adapters' input.
        target_modules: module names to adapt, or ``all-linear``.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"


def check_quantization(quantization: str | None, lora) -> None:
    """Refuse combinations that cannot train, with what to do instead."""
    if quantization is None:
        return
    if quantization not in ("nf4", "int8"):
        raise ValueError(f"quantization must be 'nf4', 'int8' or null, got {quantization!r}.")
    if lora is None:
        raise ValueError(f"quantization={quantization!r} needs LoRA adapters: quantized weights are frozen. Add "
                         "`lora: {r: 16, alpha: 32}` to the model's init_args, or drop `quantization`.")


def bnb_config(quantization: str, compute_dtype: torch.dtype, keep: list[str]):
    """A transformers ``BitsAndBytesConfig``: ``nf4`` (4-bit NormalFloat, double quantization, ``compute_dtype``
    matmuls) or ``int8`` (LLM.int8); the modules named in ``keep`` (score head, LM head) stay in full precision."""
    from transformers import BitsAndBytesConfig

    if quantization == "nf4":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype, llm_int8_skip_modules=keep)
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=keep)


def apply_lora(model, lora: LoRA | dict | None, modules_to_save: list[str] | None = None,
               quantized: bool = False):
    """Wrap ``model`` with LoRA adapters (only they, and ``modules_to_save``, train); unchanged when ``lora`` is
    None. A dict (as stored in checkpoints) is read as :class:`LoRA`'s fields. ``quantized`` models are first
    prepared for k-bit training (norms in fp32, input gradients on)."""
    if lora is None:
        return model
    lora = LoRA(**lora) if isinstance(lora, dict) else lora
    try:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    except ImportError as err:
        raise ImportError("LoRA needs peft: pip install 'bsr_lightning[lora]'.") from err
    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules, modules_to_save=modules_to_save)
    return get_peft_model(model, config)


class AdapterCheckpoints:
    """LightningModule mixin for modules with ``lora`` and ``quantization`` hyperparameters: ``setup`` refuses
    strategies that cannot shard them (:func:`~bsr_lightning.parallel.check_strategy`), and with LoRA, checkpoints
    hold only the trainable weights (adapters, score head), since the frozen (possibly quantized) base is rebuilt
    from ``model_name_or_path`` on load. An 8B QLoRA checkpoint is then tens of MB, and no bitsandbytes quantization
    state is pickled. A checkpoint missing a trainable weight is refused on load."""

    def setup(self, stage: str) -> None:
        from bsr_lightning.parallel import check_strategy

        check_strategy(self._trainer, self.hparams.get("quantization"), self.hparams.get("lora"))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.hparams.get("lora") is not None:
            trainable = {n for n, p in self.named_parameters() if p.requires_grad}
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.hparams.get("lora") is None:
            return
        self.strict_loading = False  # the frozen base is not in the checkpoint
        missing = sorted(n for n, p in self.named_parameters() if p.requires_grad and n not in checkpoint["state_dict"])
        if missing:
            raise KeyError(f"Checkpoint lacks {len(missing)} trainable LoRA/head weights (first: {missing[0]}); was it "
                           "written with the same `lora` settings?")


def merged_for_export(model):
    """A plain ``transformers`` model for ``save_pretrained``: LoRA adapters merged and 4-bit/8-bit weights
    dequantized into a new full-precision model (the score head kept). Plain models are returned unchanged.

    peft's own ``merge_and_unload`` re-quantizes merged weights of a quantized base, so the saved model would not
    score as the trained one did; here every weight is ``dequantize(W) + B @ A * scale`` in the compute dtype."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if inner is model and getattr(model, "hf_quantizer", None) is None:
        return model
    return rebuild_plain(inner, dense_state_dict(inner))


def rebuild_plain(model, state: dict[str, torch.Tensor]):
    """A new, plain (unquantized, unwrapped) model of ``model``'s class and config holding ``state``; non-persistent
    buffers (e.g. rotary frequencies) are copied from ``model``."""
    config = copy.deepcopy(model.config)
    for key in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, key):
            delattr(config, key)
    dtype = next(v.dtype for v in state.values() if v.is_floating_point())
    with torch.device("meta"):
        plain = type(model)(config)
    plain.load_state_dict(state, strict=True, assign=True)
    source_buffers = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in model.named_buffers()}
    for name, buffer in list(plain.named_buffers()):  # non-persistent buffers (e.g. rotary frequencies)
        if buffer.is_meta:
            owner, _, leaf = name.rpartition(".")
            plain.get_submodule(owner).register_buffer(leaf, source_buffers[name].detach().cpu().clone(),
                                                       persistent=False)
    plain.tie_weights()
    return plain.to(dtype).eval()


def dense_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The effective weights of a (LoRA-injected, possibly quantized) transformers model under its plain names."""
    from peft.tuners.lora import LoraLayer
    from peft.utils import ModulesToSaveWrapper

    state, done = {}, []
    for name, module in model.named_modules():
        if any(name.startswith(prefix) for prefix in done):
            continue
        prefix = f"{name}." if name else ""
        if isinstance(module, LoraLayer):
            base = module.get_base_layer()
            weight = _dense_weight(base).float()
            for adapter in module.active_adapters:
                weight = weight + module.get_delta_weight(adapter).float()
            state.update(_tensors(prefix, weight=weight.to(_compute_dtype(base)), bias=base.bias))
            done.append(prefix)
        elif isinstance(module, ModulesToSaveWrapper):
            trained = module.modules_to_save[module.active_adapters[0]]
            state.update({prefix + k: v for k, v in trained.state_dict().items()})
            done.append(prefix)
        elif _is_bnb(module):
            state.update(_tensors(prefix, weight=_dense_weight(module).to(_compute_dtype(module)), bias=module.bias))
            done.append(prefix)
        else:
            persistent = {k: v for k, v in module._buffers.items() if k not in module._non_persistent_buffers_set}
            state.update(_tensors(prefix, **module._parameters, **persistent))
    return {k: v.detach().clone() for k, v in state.items()}


def _tensors(prefix: str, **tensors) -> dict:
    return {prefix + k: v for k, v in tensors.items() if v is not None}


def _is_bnb(module: nn.Module) -> bool:
    return type(module).__module__.startswith("bitsandbytes") and hasattr(module, "weight")


def _compute_dtype(layer: nn.Module) -> torch.dtype:
    if _is_bnb(layer):
        return getattr(layer, "compute_dtype", None) or torch.float32
    return layer.weight.dtype


def _dense_weight(layer: nn.Module) -> torch.Tensor:
    """``(out, in)`` weight of a linear layer, dequantized when it is a bitsandbytes layer."""
    if not _is_bnb(layer):
        return layer.weight
    from peft.utils.integrations import dequantize_bnb_weight

    layer.state_dict()  # bitsandbytes restores its standard layout here if CPU inference re-packed the weight
    return dequantize_bnb_weight(layer.weight, state=getattr(layer, "state", None))
