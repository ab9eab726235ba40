"""LoRA adapters and 4-bit/8-bit quantized loading (QLoRA).

Supported combinations: ``quantization`` needs ``lora`` (quantized weights cannot be trained directly; checked by
:class:`~bsr_lightning.args.Backbone`), and runs under single-device or DDP strategies; FSDP shards full-precision or
bf16 weights and refuses ``quantization`` (:func:`~bsr_lightning.backbones.sharding.check_strategy`).
"""

from __future__ import annotations

import torch

from bsr_lightning.args import LoRA
from bsr_lightning.errors import require


def bnb_config(quantization: str, compute_dtype: torch.dtype, keep: list[str]):
    """A transformers ``BitsAndBytesConfig``: ``nf4`` (4-bit NormalFloat, double quantization, ``compute_dtype``
    matmuls) or ``int8`` (LLM.int8); the modules named in ``keep`` (score head, LM head) stay in full precision."""
    from transformers import BitsAndBytesConfig

    require("bitsandbytes", f"backbone.quantization: {quantization}")
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
    require("peft", "backbone.lora")
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules, modules_to_save=modules_to_save)
    return get_peft_model(model, config)
