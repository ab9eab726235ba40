"""The maths of RLOO (Ahmadian et al. 2024, arXiv 2402.14740): leave-one-out advantages, KL penalties, the clipped
surrogate. Plain functions and one small class per KL penalty, so each can be tested by hand.

Shapes: ``N = B * k`` rollouts (``k`` samples for each of ``B`` prompts, grouped as ``[p0 s0..s(k-1), p1 ...]``),
``L`` response tokens, ``mask`` ``(N, L)`` 1 on response tokens up to and including the first EOS.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["KLPenalty", "SequenceKL", "TokenKL", "clipped_surrogate", "leave_one_out_advantages", "masked_mean",
           "whiten"]


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` where ``mask`` is 1 (over ``dim``, or everything)."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def leave_one_out_advantages(rewards: Tensor, k: int) -> Tensor:
    """RLOO advantages: each rollout's reward minus the mean reward of the other ``k - 1`` samples of its prompt.

    ``A_i = R_i - (sum_j R_j - R_i) / (k - 1)``; the advantages of a group sum to zero, and adding a constant to
    every reward of a group (or of the batch) leaves them unchanged.

    Args:
        rewards: ``(B * k,)`` in prompt-major order.
        k: samples per prompt, at least 2.

    Returns:
        ``(B * k,)`` advantages.
    """
    if k < 2:
        raise ValueError(f"RLOO needs k >= 2 samples per prompt, got {k}.")
    if rewards.numel() % k:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of k={k}.")
    grouped = rewards.view(-1, k)  # (B, k)
    baseline = (grouped.sum(-1, keepdim=True) - grouped) / (k - 1)
    return (grouped - baseline).view(-1)


def whiten(values: Tensor, eps: float = 1e-8) -> Tensor:
    """``(values - mean) / std`` over the batch (unbiased std); a batch of one value is returned centered."""
    centered = values - values.mean()
    if values.numel() < 2:
        return centered
    return centered / (values.std() + eps)


def clipped_surrogate(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip: float
                      ) -> tuple[Tensor, Tensor]:
    """PPO's clipped policy-gradient loss with per-token importance ratios (Schulman et al. 2017).

    ``loss = -mean_tokens(min(rho * A, clip(rho, 1 - clip, 1 + clip) * A))`` with ``rho = exp(logp - old_logp)``,
    averaged over each sequence's response tokens, then over sequences. On the first minibatch of a rollout
    ``rho = 1`` and the gradient is REINFORCE's ``-A * grad(mean log pi)``.

    Args:
        logp: ``(N, L)`` log-probabilities of the response tokens under the current policy (with gradient).
        old_logp: ``(N, L)`` the same at rollout time (no gradient).
        advantages: ``(N,)``.
        mask: ``(N, L)``.
        clip: the clip range epsilon, e.g. 0.2.

    Returns:
        the loss ``()`` and the fraction of response tokens whose ratio was clipped ``()``.
    """
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(-1)  # (N, 1)
    unclipped, clipped = ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv
    per_token = -torch.minimum(unclipped, clipped)
    loss = masked_mean(per_token, mask, dim=-1).mean()
    clip_fraction = masked_mean((clipped < unclipped).float(), mask)
    return loss, clip_fraction.detach()


class KLPenalty:
    """How the KL divergence to the reference policy enters RLOO. Subclasses implement one or both hooks.

    Args:
        beta: the KL coefficient.
    """

    def __init__(self, beta: float = 0.05) -> None:
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
    return ((old_logp - ref_logp) * mask).sum(-1)


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
