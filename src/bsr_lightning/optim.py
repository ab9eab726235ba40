"""AdamW with linear warmup then a constant, linear or cosine schedule."""

from __future__ import annotations

import math
from typing import Literal

import torch

Schedule = Literal["constant", "linear", "cosine"]


def warmup_lambda(warmup_steps: int, total_steps: int, schedule: Schedule):
    """The LR multiplier at each step: ``step/warmup`` during warmup, then ``schedule`` decaying to 0 at
    ``total_steps``."""
    if schedule not in ("constant", "linear", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant', 'linear' or 'cosine', got {schedule!r}.")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_optimizer(module: torch.nn.Module, lr: float, weight_decay: float, betas: tuple[float, float],
                    warmup_ratio: float, schedule: Schedule, total_steps: int) -> dict:
    """A Lightning ``configure_optimizers`` dict: AdamW on trainable parameters (no decay on biases and norms)."""
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas)
    warmup = int(warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_lambda(warmup, total_steps, schedule))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
