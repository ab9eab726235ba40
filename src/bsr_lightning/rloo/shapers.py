"""Reward shapers: what RLOO does to a rollout batch's scores before the KL penalty and the leave-one-out baseline,
or to the advantages after it. Listed in ``reward_shapers`` and applied in order.

Under the leave-one-out baseline the advantage of a rollout is its reward minus the mean of the other ``k - 1``
rewards of its prompt, so adding one constant to every reward of a prompt (or of the batch) cancels exactly; each
shaper's docstring says what survives.

Shapes: ``N = B * k`` rollouts.
"""

from __future__ import annotations

from torch import Tensor

from bsr_lightning.errors import ConfigError

__all__ = ["Center", "Clip", "MissingEOSPenalty", "RMSNormalize", "RewardShaper", "Whiten"]


class RewardShaper:
    """Base class: both hooks are the identity."""

    def scores(self, scores: Tensor, has_eos: Tensor) -> Tensor:
        """Shape the reward sources' scores ``(N,)``; ``has_eos`` ``(N,)`` bool: the completion ended with EOS."""
        return scores

    def advantages(self, advantages: Tensor) -> Tensor:
        """Shape the leave-one-out advantages ``(N,)``."""
        return advantages

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Center(RewardShaper):
    """Subtract the batch mean: the scores of every rollout batch sum to zero (BSR's constraint, applied at RL time).

    Under the leave-one-out baseline this changes no advantage by itself; it matters before :class:`Clip` (the
    clipping window is then centred on the batch) and for logged rewards.
    """

    def scores(self, scores: Tensor, has_eos: Tensor) -> Tensor:
        return scores - scores.mean()


class RMSNormalize(RewardShaper):
    """Divide by the batch's root-mean-square score (the BT-Norm / logit-norm idea at RL time).

    Every score advantage is rescaled by one per-batch factor: the policy gradient no longer depends on the reward
    model's scale, and the KL penalty weighs relatively more when raw scores are large (an adaptive ``beta``).

    Args:
        eps: added under the square root.
    """

    def __init__(self, eps: float = 1e-6) -> None:
        self.eps = eps

    def scores(self, scores: Tensor, has_eos: Tensor) -> Tensor:
        return scores / (scores.pow(2).mean() + self.eps).sqrt()


class Clip(RewardShaper):
    """Clip scores to ``[-limit, limit]``: outliers stop dominating their prompt's advantages (a bounded reward
    cannot be hacked without bound), at the cost of no signal among rollouts beyond the limit.

    Args:
        limit: the clipping bound.
    """

    def __init__(self, limit: float = 5.0) -> None:
        if limit <= 0:
            raise ConfigError(f"Clip limit must be positive, got {limit}.")
        self.limit = limit

    def scores(self, scores: Tensor, has_eos: Tensor) -> Tensor:
        return scores.clamp(-self.limit, self.limit)


class MissingEOSPenalty(RewardShaper):
    """Subtract ``penalty`` from completions that reach ``max_new_tokens`` without EOS. In a prompt group of ``k``
    with ``m`` truncated completions, each truncated one's advantage drops by ``penalty * (k - m) / (k - 1)`` and each
    finished one's rises by ``penalty * m / (k - 1)``; when all ``k`` are truncated it cancels.

    Args:
        penalty: subtracted from the score.
    """

    def __init__(self, penalty: float = 1.0) -> None:
        self.penalty = penalty

    def scores(self, scores: Tensor, has_eos: Tensor) -> Tensor:
        return scores - self.penalty * (~has_eos).to(scores.dtype)


class Whiten(RewardShaper):
    """Normalize the advantages to zero mean and unit (unbiased) standard deviation over the rollout batch: the step
    size no longer depends on the reward scale; prompt groups whose advantages were all zero get ``-mean / std``.

    Args:
        eps: added to the standard deviation.
    """

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = eps

    def advantages(self, advantages: Tensor) -> Tensor:
        centered = advantages - advantages.mean()
        if advantages.numel() < 2:
            return centered
        return centered / (advantages.std() + self.eps)
