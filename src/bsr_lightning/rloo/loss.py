"""The policy side of RLOO's update: response log-probabilities and the clipped policy losses, one class each.

Shapes: ``N`` rollouts, ``L`` response tokens, ``mask`` ``(N, L)`` 1 on response tokens up to and including the first
EOS.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bsr_lightning.backbones.loading import position_ids_of
from bsr_lightning.errors import check

__all__ = ["PolicyLoss", "SequenceClip", "TokenClip", "masked_mean", "masked_sum", "response_logprobs"]


def masked_sum(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``values`` where ``mask`` is 1 (over ``dim``, or everything). Masked positions are filled with 0, never
    multiplied by it, so a -inf or NaN there (a log-prob past the response's end) gives no NaN, as the authors'
    ``masked_fill``."""
    kept = values.masked_fill(~mask.bool(), 0.0)
    return kept.sum() if dim is None else kept.sum(dim)


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` where ``mask`` is 1 (over ``dim``, or everything); see :func:`masked_sum`."""
    count = mask.to(values.dtype).sum() if dim is None else mask.to(values.dtype).sum(dim)
    return masked_sum(values, mask, dim) / count.clamp(min=1)


class PolicyLoss:
    """Base class of RLOO's policy losses: how the clipped importance ratio turns advantages into a loss.

    Args:
        clip: the ratio clip range epsilon: ratios outside ``[1 - clip, 1 + clip]`` stop the gradient where the
            clipped term is the smaller one (PPO's pessimistic bound).
    """

    unit = "sequence"  # what train/clip_fraction counts

    def __init__(self, clip: float = 0.2) -> None:
        check(clip > 0, "model.policy_loss.init_args.clip", f"must be positive, got {clip}.")
        self.clip = clip

    def __call__(self, logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The loss ``()`` and the fraction ``()`` of clipped units (sequences or tokens, :attr:`unit`).

        Args:
            logp: ``(N, L)`` response-token log-probabilities under the current policy (with gradient).
            old_logp: ``(N, L)`` the same at rollout time (no gradient).
            advantages: ``(N,)``.
            mask: ``(N, L)``, 1 on response tokens.
        """
        raise NotImplementedError

    def _surrogate(self, ratio: Tensor, advantages: Tensor) -> tuple[Tensor, Tensor]:
        """``-min(rho * A, clip(rho) * A)`` elementwise, and where the clipped term won."""
        unclipped, clipped = ratio * advantages, ratio.clamp(1 - self.clip, 1 + self.clip) * advantages
        return -torch.minimum(unclipped, clipped), (clipped < unclipped).float()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(clip={self.clip})"


class SequenceClip(PolicyLoss):
    """The RLOO paper's objective: the whole response is one action (Ahmadian et al. 2024, arXiv 2402.14740, Sec. 3;
    the sequence-level ratio of TRL's RLOOTrainer, which the paper's code runs).

    ``rho_i = exp(sum_t mask_it (logp_it - old_logp_it))``, ``loss = mean_i -min(rho_i A_i, clip(rho_i) A_i)``, so
    with ``rho = 1`` the gradient is ``-A_i * grad(sum_t log pi)`` / N: every token of a response gets the same
    weight whatever its length, and one clip decides per response. ``train/clip_fraction`` counts sequences.
    """

    unit = "sequence"

    def __call__(self, logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        log_ratio = masked_sum(logp - old_logp, mask, -1)  # (N,)
        loss, clipped = self._surrogate(torch.exp(log_ratio), advantages)
        return loss.mean(), clipped.mean().detach()


class TokenClip(PolicyLoss):
    """PPO/GRPO's per-token objective (Schulman et al. 2017, arXiv 1707.06347): a ratio and a clip per token,
    averaged over each response's tokens, then over responses.

    ``loss = mean_i mean_t -min(rho_it A_i, clip(rho_it) A_i)`` with ``rho_it = exp(logp_it - old_logp_it)``. With
    ``rho = 1`` the gradient is ``-A_i * grad(mean_t log pi)`` / N, so a long response's tokens weigh less.
    ``train/clip_fraction`` counts response tokens.
    """

    unit = "token"

    def __call__(self, logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        log_ratio = (logp - old_logp).masked_fill(~mask.bool(), 0.0)  # no NaN from -inf past the end, nor its grad
        per_token, clipped = self._surrogate(torch.exp(log_ratio), advantages.unsqueeze(-1))
        return masked_mean(per_token, mask, dim=-1).mean(), masked_mean(clipped, mask).detach()


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
