"""Sharded training through Lightning strategies: FSDP (``FSDPStrategy``, CUDA) wrapped at the decoder layer, and
FSDP2 (``fully_shard``) under ``ModelParallelStrategy`` (CUDA, and CPU with gloo, which the tests use).

Supported combinations:

============================  =====  ====  =========================  ==============
strategy                      fp32   bf16  quantization (nf4, int8)   LoRA
============================  =====  ====  =========================  ==============
auto / single device / DDP    yes    yes   yes (QLoRA)                yes
``DecoderFSDPStrategy``       yes    yes   no: refused at start       no: refused
``ModelParallelStrategy``     yes    yes   no: refused at start       no: refused
============================  =====  ====  =========================  ==============

Lightning's ``BitsandbytesPrecision`` plugin (quantizing a model after construction) is not used; quantized loading
goes through transformers' ``BitsAndBytesConfig``. Sharding quantized weights or peft adapters is refused because
the flat-parameter and DTensor wrappers do not preserve bitsandbytes' quantization state.
"""

from __future__ import annotations

import torch
from lightning.pytorch.strategies import FSDPStrategy
from torch import nn

from bsr_lightning.backbones.export import rebuild_plain
from bsr_lightning.class_paths import import_class
from bsr_lightning.errors import ConfigError


def decoder_layer_classes(model: nn.Module) -> set[type[nn.Module]]:
    """The transformer-block classes of a Hugging Face model (its ``_no_split_modules`` found among its modules)."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    classes = {type(m) for m in model.modules() if type(m).__name__ in names}
    if not classes:
        raise ConfigError(f"{type(model).__name__} names no decoder layer class (_no_split_modules={sorted(names)}); "
                         "give `layer_classes` explicitly.")
    return classes


class DecoderFSDPStrategy(FSDPStrategy):
    """Lightning's ``FSDPStrategy`` with each decoder layer its own FSDP unit (and, optionally, activation
    checkpointing on the same class), configurable from YAML by class path.

    Args:
        layer_classes: import paths of the transformer-block classes, e.g.
            ``[transformers.models.llama.modeling_llama.LlamaDecoderLayer]``.
        activation_checkpointing: recompute each layer's activations in the backward pass.
        sharding_strategy: ``FULL_SHARD``, ``SHARD_GRAD_OP``, ``HYBRID_SHARD`` or ``NO_SHARD``.
        state_dict_type: ``sharded`` (one file per rank: fast saves, resume on the same world size) or ``full``.
        cpu_offload: keep parameters and gradients on the CPU between uses.
        limit_all_gathers: rate-limit all-gathers to bound memory.
    """

    def __init__(self, layer_classes: list[str], activation_checkpointing: bool = False,
                 sharding_strategy: str = "FULL_SHARD", state_dict_type: str = "sharded", cpu_offload: bool = False,
                 limit_all_gathers: bool = True) -> None:
        classes = {import_class(path) for path in layer_classes}
        super().__init__(auto_wrap_policy=classes, activation_checkpointing_policy=classes if activation_checkpointing
                         else None, sharding_strategy=sharding_strategy, state_dict_type=state_dict_type,
                         cpu_offload=cpu_offload, limit_all_gathers=limit_all_gathers, use_orig_params=True)


def shard_fsdp2(backbone: nn.Module, mesh, param_dtype: torch.dtype | None = None) -> None:
    """Apply FSDP2 ``fully_shard`` to every decoder layer, then to the whole backbone, over the data-parallel mesh.

    Args:
        backbone: a Hugging Face model (not quantized, no peft adapters).
        mesh: the strategy's device mesh (its ``data_parallel`` dimension is used).
        param_dtype: compute dtype of the all-gathered parameters (e.g. ``torch.bfloat16``); gradients are reduced in
            float32. None keeps the parameters' dtype.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32 if param_dtype else None)
    dp_mesh = mesh["data_parallel"] if "data_parallel" in (mesh.mesh_dim_names or ()) else mesh
    classes = decoder_layer_classes(backbone)
    for module in backbone.modules():
        if type(module) in classes:
            fully_shard(module, mesh=dp_mesh, mp_policy=mp)
    fully_shard(backbone, mesh=dp_mesh, mp_policy=mp)


def check_strategy(trainer, quantization: str | None, lora) -> None:
    """Stop unsupported combinations at the start of a run (see the module docstring's table); a module without a
    trainer (or a strategy) passes."""
    from lightning.pytorch.strategies import ModelParallelStrategy

    strategy = getattr(trainer, "strategy", trainer)
    if not isinstance(strategy, FSDPStrategy | ModelParallelStrategy):
        return
    name = type(strategy).__name__
    if quantization is not None:
        raise ConfigError(f"quantization={quantization!r} cannot be combined with {name}: sharding does not keep "
                         "bitsandbytes' quantization state. Use DDP (`strategy: ddp`) for QLoRA, or drop "
                         "`quantization` and shard bf16 weights.")
    if lora is not None:
        raise ConfigError(f"LoRA is not supported with {name} in bsr_lightning; use DDP for LoRA/QLoRA, or train all "
                         "weights with sharding.")


def is_sharded(trainer) -> bool:
    """Whether the trainer's strategy shards parameters (FSDP or FSDP2)."""
    from lightning.pytorch.strategies import ModelParallelStrategy

    return isinstance(trainer.strategy, FSDPStrategy | ModelParallelStrategy)


def gathered_backbone(trainer, pl_module):
    """The full, unsharded backbone as a plain model on rank 0 (None on other ranks). Every rank must call it: the
    shards are all-gathered (to CPU) into a full state dict."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(trainer.strategy.model, options=options)
    if trainer.global_rank != 0:
        return None
    backbone = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    return rebuild_plain(pl_module.backbone, backbone)
