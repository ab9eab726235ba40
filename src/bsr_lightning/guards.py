"""NaN/inf guards: stop with the step and the batch's row ids, or skip the batch and count it."""

from __future__ import annotations

import logging
from typing import Literal

import torch
from torch import Tensor

log = logging.getLogger(__name__)
OnNonFinite = Literal["error", "skip"]


class NonFiniteGuard:
    """Checks the tensors of a training batch before the optimizer sees them.

    Args:
        policy: ``error`` raises ``FloatingPointError`` naming the step, the tensors and the batch's row ids;
            ``skip`` drops the batch (no backward, no optimizer step), logs a warning and counts it in ``skipped``.
    """

    def __init__(self, policy: OnNonFinite = "error") -> None:
        if policy not in ("error", "skip"):
            raise ValueError(f"on_nonfinite must be 'error' or 'skip', got {policy!r}.")
        self.policy = policy
        self.skipped = 0

    def ok(self, step: int, row_ids: Tensor | None, **tensors: Tensor) -> bool:
        """True when every tensor is finite; else raise or count a skip (per ``policy``)."""
        bad = [name for name, value in tensors.items() if not torch.isfinite(value.detach()).all()]
        if not bad:
            return True
        rows = row_ids.tolist() if row_ids is not None else "unknown"
        message = f"step {step}: non-finite {', '.join(bad)} in the batch with row ids {rows}"
        if self.policy == "error":
            raise FloatingPointError(f"{message}. Lower the learning rate, train in bf16 rather than fp16, check "
                                     "those rows, or set `on_nonfinite: skip` to skip such batches (counted).")
        self.skipped += 1
        log.warning("%s: batch skipped (%d so far).", message, self.skipped)
        return False
