"""Reward regularizers: one pluggable interface shared by reward-model and policy training.

A :class:`Regularizer` has three hooks:

* ``margin(chosen, rejected) -> (B,)``: the logit fed to the pairwise loss (default ``chosen - rejected``).
* ``penalty(chosen, rejected) -> ()``: a scalar added to the reward-model loss (default ``0``).
* ``shape_rewards(scores) -> (N,)``: applied by policy training to a rollout batch's reward-model scores
  (default identity).

Write your own by subclassing :class:`Regularizer` in your own module and select it from the command line with
``--model.regularizer your_module.YourRegularizer`` (no edit to this package).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["BatchSumToZero", "LogitNorm", "NoRegularizer", "Regularizer", "RewardCentering"]


class Regularizer:
    """Base class: plain Bradley-Terry margin, no penalty, unshaped rollout rewards."""

    def margin(self, chosen: Tensor, rejected: Tensor) -> Tensor:
        """Logit of the pairwise loss.

        Args:
            chosen: rewards of the chosen responses, shape ``(B,)``.
            rejected: rewards of the rejected responses, shape ``(B,)``.

        Returns:
            ``(B,)`` tensor, ``chosen - rejected`` unless overridden.
        """
        return chosen - rejected

    def penalty(self, chosen: Tensor, rejected: Tensor) -> Tensor:
        """Scalar added to the loss. ``0`` unless overridden.

        Args:
            chosen: rewards of the chosen responses, shape ``(B,)``.
            rejected: rewards of the rejected responses, shape ``(B,)``.
        """
        return chosen.new_zeros(())

    def shape_rewards(self, scores: Tensor) -> Tensor:
        """Reward-side hook for policy training, applied to one rollout batch of scores ``(N,)``. Identity here."""
        return scores

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class NoRegularizer(Regularizer):
    """The plain Bradley-Terry reward model: margin ``c - r``, no penalty."""


def _gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` ``(N,)`` over all ranks, keeping the autograd graph (identity without distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()))


class BatchSumToZero(Regularizer):
    """Batch-wise sum-to-zero regularization (BSR), Hong et al. 2025, arXiv 2505.07271, Eq. (7).

    ``penalty = weight * B * mean(cat(chosen, rejected)) ** 2`` where ``B`` is the number of pairs and the mean is
    over all ``2B`` rewards. It pushes the rewards of every batch to sum to zero, which bounds the spread of the
    hidden-state norms that feed the score head.

    Args:
        weight: the coefficient; the paper uses ``1e-3``.
        scope: ``"device"`` takes the mean over the micro-batch on each device (the paper's code); ``"global"``
            all-gathers the rewards of every device (with gradient) and uses the global ``B`` and mean.
    """

    def __init__(self, weight: float = 1e-3, scope: Literal["device", "global"] = "device") -> None:
        if scope not in ("device", "global"):
            raise ValueError(f"BatchSumToZero scope must be 'device' or 'global', got {scope!r}.")
        self.weight = weight
        self.scope = scope

    def penalty(self, chosen: Tensor, rejected: Tensor) -> Tensor:
        rewards = torch.cat([chosen, rejected])  # (2B,)
        if self.scope == "global":
            rewards = _gather_with_grad(rewards)
        num_pairs = rewards.numel() // 2
        return self.weight * num_pairs * rewards.mean() ** 2

    def shape_rewards(self, scores: Tensor) -> Tensor:
        """Center the rollout batch's scores ``(N,)`` to sum to zero."""
        return scores - scores.mean()


class LogitNorm(Regularizer):
    """BT-Norm baseline of Hong et al. 2025: the pairwise logit normalized by the rewards' joint norm.

    ``margin = (c - r) / sqrt(c**2 + r**2 + eps)``, after logit normalization (Wei et al. 2022, arXiv 2205.09310).

    Args:
        eps: added under the square root for stability.
    """

    def __init__(self, eps: float = 1e-6) -> None:
        self.eps = eps

    def margin(self, chosen: Tensor, rejected: Tensor) -> Tensor:
        return (chosen - rejected) / torch.sqrt(chosen**2 + rejected**2 + self.eps)

    def shape_rewards(self, scores: Tensor) -> Tensor:
        """Scale the rollout batch's scores ``(N,)`` to unit root-mean-square."""
        return scores / torch.sqrt(scores.pow(2).mean() + self.eps)


class RewardCentering(Regularizer):
    """Reward centering of Eisenstein et al. 2023 (arXiv 2312.09244); TRL's ``center_rewards_coefficient``.

    ``penalty = weight * mean((c + r) ** 2)`` over the ``B`` pairs.

    Args:
        weight: the coefficient; TRL suggests ``0.01``.
    """

    def __init__(self, weight: float = 0.01) -> None:
        self.weight = weight

    def penalty(self, chosen: Tensor, rejected: Tensor) -> Tensor:
        return self.weight * ((chosen + rejected) ** 2).mean()
