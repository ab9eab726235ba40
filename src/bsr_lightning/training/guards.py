"""NaN/inf guards: stop with the step and the batch's row ids, or skip the batch and count it."""

from __future__ import annotations

import logging
from typing import Literal

import torch
from torch import Tensor

from bsr_lightning.errors import check_choice

log = logging.getLogger(__name__)
OnNonFinite = Literal["error", "skip"]


class NonFiniteGuard:
    """Checks the tensors of a training batch before the optimizer sees them.

    Args:
        policy: ``error`` raises ``FloatingPointError`` naming the step, the tensors and the batch's row ids;
            ``skip`` drops the batch (no backward, no optimizer step), logs a warning and counts it in ``skipped``.
    """

    def __init__(self, policy: OnNonFinite = "error") -> None:
        check_choice(policy, OnNonFinite, "on_nonfinite")
        self.policy = policy
        self.skipped = 0

    @staticmethod
    def all_ranks(trainer, flag: bool) -> bool:
        """``flag`` on every rank (one all-reduce under DDP/FSDP): every rank skips or stops together, so none waits
        alone in the next collective."""
        strategy = getattr(trainer, "strategy", None)
        return bool(strategy.reduce_boolean_decision(flag, all=True)) if strategy is not None else flag

    def grads_ok(self, step: int, optimizer, trainer) -> bool:
        """True when every gradient of ``optimizer``'s parameters is finite, or when the trainer's precision plugin
        has a gradient scaler (fp16): it already skips overflowing steps and lowers its scale. Otherwise (fp32, bf16)
        non-finite gradients raise or, with ``skip``, are set to None so the optimizer step leaves the weights
        alone."""
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            return True
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        grads = [p.grad for p in parameters if p.grad is not None]
        finite = not grads or bool(torch.isfinite(torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False)))
        if self.all_ranks(trainer, finite):
            return True
        if self.policy == "error":
            raise FloatingPointError(f"step {step}: non-finite gradients. Lower the learning rate, clip gradients "
                                     "(`trainer.gradient_clip_val`), or set `on_nonfinite: skip` to skip such steps.")
        for p in parameters:
            p.grad = None
        self.skipped += 1
        log.warning("step %d: non-finite gradients; optimizer step skipped (%d so far).", step, self.skipped)
        return False

    def ok(self, step: int, row_ids: Tensor | None, trainer=None, **tensors: Tensor) -> bool:
        """True when every tensor is finite on every rank of ``trainer``'s strategy; else raise or count a skip (per
        ``policy``), on all ranks alike."""
        bad = [name for name, value in tensors.items() if not torch.isfinite(value.detach()).all()]
        if self.all_ranks(trainer, not bad):
            return True
        rows = row_ids.tolist() if row_ids is not None else "unknown"
        what = f"{', '.join(bad)} in the batch with row ids {rows}" if bad else "values on another rank"
        message = f"step {step}: non-finite {what}"
        if self.policy == "error":
            raise FloatingPointError(f"{message}. Lower the learning rate, train in bf16 rather than fp16, check "
                                     "those rows, or set `on_nonfinite: skip` to skip such batches (counted).")
        self.skipped += 1
        log.warning("%s: batch skipped (%d so far).", message, self.skipped)
        return False
