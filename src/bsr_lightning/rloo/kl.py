"""How the KL divergence to the reference policy enters RLOO: one small class per penalty.

Shapes: ``N`` rollouts, ``L`` response tokens, ``mask`` ``(N, L)``; log-probabilities ``(N, L)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bsr_lightning.errors import check
from bsr_lightning.rloo.loss import masked_mean, masked_sum

__all__ = ["KLPenalty", "SequenceKL", "TokenKL", "sequence_kl"]


class KLPenalty:
    """Base class. Subclasses implement one or both hooks.

    Args:
        beta: the KL coefficient.
    """

    def __init__(self, beta: float = 0.05) -> None:
        check(beta >= 0, "model.kl.init_args.beta", f"must be 0 or more, got {beta}.")
        self.beta = beta

    def reward_penalty(self, old_logp: Tensor, ref_logp: Tensor, mask: Tensor) -> Tensor:
        """``(N,)`` subtracted from each rollout's reward before the baseline (no gradient flows)."""
        return old_logp.new_zeros(old_logp.size(0))

    def loss_penalty(self, logp: Tensor, ref_logp: Tensor, mask: Tensor) -> Tensor:
        """``()`` added to the policy loss (with gradient)."""
        return logp.new_zeros(())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta={self.beta})"


def sequence_kl(old_logp: Tensor, ref_logp: Tensor, mask: Tensor) -> Tensor:
    """``(N,)`` the sampled sequence-level KL estimate ``sum_t (log pi - log pi_ref)`` over response tokens."""
    return masked_sum(old_logp - ref_logp, mask, -1)


class SequenceKL(KLPenalty):
    """The RLOO paper's penalty: ``R = r - beta * sum_t (log pi - log pi_ref)``, part of the reward, so the
    leave-one-out baseline and the clipped ratio apply to it as to the score."""

    def reward_penalty(self, old_logp: Tensor, ref_logp: Tensor, mask: Tensor) -> Tensor:
        return self.beta * sequence_kl(old_logp, ref_logp, mask)


class TokenKL(KLPenalty):
    """A per-token penalty in the loss instead of the reward: ``beta * mean_t k3`` with the non-negative, unbiased
    estimator ``k3 = exp(ref - logp) - (ref - logp) - 1`` (Schulman 2020), differentiated directly (as in GRPO)."""

    def loss_penalty(self, logp: Tensor, ref_logp: Tensor, mask: Tensor) -> Tensor:
        delta = ref_logp - logp
        k3 = torch.exp(delta) - delta - 1
        return self.beta * masked_mean(k3, mask, dim=-1).mean()
