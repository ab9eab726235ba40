"""The policy side of RLOO's update: response log-probabilities and PPO's clipped surrogate loss.

Shapes: ``N`` rollouts, ``L`` response tokens, ``mask`` ``(N, L)`` 1 on response tokens up to and including the first
EOS.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bsr_lightning.backbones.loading import position_ids_of


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` where ``mask`` is 1 (over ``dim``, or everything)."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def clipped_surrogate(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip: float
                      ) -> tuple[Tensor, Tensor]:
    """PPO's clipped policy-gradient loss with per-token importance ratios (Schulman et al. 2017, arXiv 1707.06347).

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


def response_logprobs(model, input_ids: Tensor, attention_mask: Tensor, prompt_width: int, temperature: float,
                      with_entropy: bool = False) -> tuple[Tensor, Tensor | None]:
    """Log-probabilities ``(N, L)`` of the response tokens of ``(N, P + L)`` sequences under ``model`` at the
    sampling temperature, and with ``with_entropy`` the entropy ``(N, L)`` of each next-token distribution (no
    gradient)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask,
                   position_ids=position_ids_of(attention_mask)).logits
    logits = logits[:, prompt_width - 1 : -1].float()  # (N, L, V): position t predicts token t + 1
    if temperature > 0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(-1, input_ids[:, prompt_width:].unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy
