"""Optimizers by class path (AdamW by default), with linear warmup then a constant, linear or cosine schedule."""

from __future__ import annotations

import inspect
import math

import torch

from bsr_lightning.args import Optimization, Schedule
from bsr_lightning.class_paths import import_subclass
from bsr_lightning.errors import require


def warmup_lambda(warmup_steps: int, total_steps: int, schedule: Schedule):
    """The LR multiplier at each step: ``step/warmup`` during warmup, then ``schedule`` decaying to 0 at
    ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_optimizer(module: torch.nn.Module, optimization: Optimization, total_steps: int,
                    amp_clipping: bool = False) -> dict:
    """A Lightning ``configure_optimizers`` dict: ``optimization.optimizer`` on the trainable parameters (no weight
    decay on biases and norms) and a per-step ``LambdaLR`` schedule over ``total_steps`` optimizer steps.

    ``optimization.fused=None`` takes the fused kernel when the optimizer has one, the parameters are plain tensors
    and gradients are not clipped under mixed precision (``amp_clipping``; Lightning refuses to clip for a fused
    optimizer there)."""
    if optimization.optimizer.startswith("bitsandbytes."):
        require("bitsandbytes", f"optimization.optimizer: {optimization.optimizer}")
    cls = import_subclass(optimization.optimizer, torch.optim.Optimizer, "optimization.optimizer")
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": optimization.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    kwargs = {"lr": optimization.lr}
    if "betas" in inspect.signature(cls).parameters:
        kwargs["betas"] = tuple(optimization.betas)
    if "fused" in inspect.signature(cls).parameters and optimization.fused is not False:
        plain = all(type(p) is torch.nn.Parameter and p.device.type in ("cpu", "cuda") for p in params)
        kwargs["fused"] = (plain and not amp_clipping) if optimization.fused is None else True
    optimizer = cls([g for g in groups if g["params"]], **kwargs)
    warmup = int(optimization.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_lambda(warmup, total_steps, optimization.schedule))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
