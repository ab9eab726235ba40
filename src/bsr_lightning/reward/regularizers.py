"""Reward-model regularizers: one pluggable interface, selected by class path.

A :class:`Regularizer` sees the batch's :class:`PairOutputs` (rewards ``(B,)`` and the head-input hidden states
``(B, H)`` of the chosen and rejected responses) through two hooks:

* ``margin(out) -> (B,)``: the logit fed to the pairwise loss (default ``chosen - rejected``);
* ``penalty(out) -> ()``: a scalar added to the loss (default ``0``).

Write your own by subclassing :class:`Regularizer` in your own module and select it with
``--model.regularizer your_module.YourRegularizer`` (no edit to this package). Hooks written against the earlier
two-argument form ``penalty(self, chosen, rejected)`` keep working (a warning says how to update them).
"""

from __future__ import annotations

import functools
import inspect
import warnings
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.distributed as dist
from torch import Tensor

from bsr_lightning.errors import check, check_choice

Scope = Literal["device", "global"]
Scale = Literal["configured", "batch"]
"""Where BSR's batch mean is taken: each device's micro-batch (the paper's code) or all devices together."""

__all__ = ["BatchSumToZero", "HiddenNormVariance", "LogitNorm", "NoRegularizer", "PairOutputs", "Regularizer",
           "RewardCentering"]


@dataclass
class PairOutputs:
    """What the reward model produced for a batch of ``B`` pairs (all with gradient).

    Attributes:
        chosen: rewards of the chosen responses ``(B,)``.
        rejected: rewards of the rejected responses ``(B,)``.
        chosen_hidden: the hidden states that entered the score head for the chosen responses ``(B, H)``.
        rejected_hidden: the same for the rejected responses ``(B, H)``.
    """

    chosen: Tensor
    rejected: Tensor
    chosen_hidden: Tensor
    rejected_hidden: Tensor

    @property
    def rewards(self) -> Tensor:
        """``(2B,)`` chosen then rejected."""
        return torch.cat([self.chosen, self.rejected])

    @property
    def hidden(self) -> Tensor:
        """``(2B, H)`` chosen then rejected."""
        return torch.cat([self.chosen_hidden, self.rejected_hidden])


def _legacy_hook(fn, name: str, cls: type):
    """Adapt a two-argument hook ``fn(self, chosen, rejected)`` to ``fn(self, out)``."""

    @functools.wraps(fn)
    def hook(self, out: PairOutputs) -> Tensor:
        return fn(self, out.chosen, out.rejected)

    warnings.warn(f"{cls.__qualname__}.{name}(self, chosen, rejected) uses the old regularizer hook signature; it "
                  f"still works, but write `def {name}(self, out: PairOutputs)` and read `out.chosen`, `out.rejected` "
                  "(and `out.chosen_hidden`, `out.rejected_hidden`).", FutureWarning, stacklevel=3)
    return hook


def check_weight(weight: float) -> None:
    """A penalty's weight must be 0 or more: a negative one rewards what the penalty measures (the loss then runs
    to minus infinity)."""
    check(weight >= 0, "model.regularizer.init_args.weight", f"must be 0 or more, got {weight}; a negative weight "
          "rewards what the penalty measures and the loss diverges.")


def _required_positional(fn) -> int:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in kinds and p.default is p.empty for p in inspect.signature(fn).parameters.values())


class Regularizer:
    """Base class: plain Bradley-Terry margin, no penalty.

    Attributes:
        batch_statistic: True when the penalty is a statistic of the whole batch (a batch mean, a batch variance),
            so which pairs share a batch changes what it penalizes; the reward model then warns once when batches
            are grouped by length.
    """

    batch_statistic: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("margin", "penalty"):
            fn = cls.__dict__.get(name)
            if fn is not None and _required_positional(fn) == 3:  # (self, chosen, rejected)
                setattr(cls, name, _legacy_hook(fn, name, cls))

    def margin(self, out: PairOutputs) -> Tensor:
        """Logit of the pairwise loss, ``(B,)``: ``chosen - rejected`` unless overridden."""
        return out.chosen - out.rejected

    def penalty(self, out: PairOutputs) -> Tensor:
        """Scalar ``()`` added to the loss; ``0`` unless overridden."""
        return out.chosen.new_zeros(())

    def configure(self, batch_size: int | None) -> None:
        """Called at the start of ``fit`` with the data's configured pairs per device batch (None when unknown);
        nothing unless overridden."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class NoRegularizer(Regularizer):
    """The plain Bradley-Terry reward model: margin ``c - r``, no penalty."""


def _gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` ``(N, ...)`` over all ranks, keeping the autograd graph (identity without distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()))


class BatchSumToZero(Regularizer):
    """Batch-wise sum-to-zero regularization (BSR), Hong et al. 2025, arXiv 2505.07271, Eq. (7).

    ``penalty = weight * B * mean(cat(chosen, rejected)) ** 2`` where the mean is over all ``2B`` rewards of the
    batch. It pushes the rewards of every batch to sum to zero, which bounds the spread of the hidden-state norms
    that feed the score head.

    Args:
        weight: the coefficient; the paper uses ``1e-3``.
        scope: ``"device"`` takes the mean over the micro-batch on each device (the paper's code); ``"global"``
            all-gathers the rewards of every device (with gradient) and uses the global ``B`` and mean.
        scale: ``B`` is the configured pairs per device batch (``"configured"``, ``data.batch_size``, times the world
            size under ``scope: global``), as the authors' trainer scales ``bsr_lambda`` by its per-device batch size
            once (so a short last batch of 5 pairs is scaled by 16 there too); ``"batch"`` is the pairs in each
            batch. Outside ``fit`` (no configured size) both are the batch's pairs.
    """

    MIN_PAIRS = 4  # below this, the "batch" mean is too few rewards to centre a batch: warn once
    batch_statistic = True

    def __init__(self, weight: float = 1e-3, scope: Scope = "device", scale: Scale = "configured") -> None:
        check_choice(scope, Scope, "model.regularizer.init_args.scope")
        check_choice(scale, Scale, "model.regularizer.init_args.scale")
        check_weight(weight)
        self.weight = weight
        self.scope = scope
        self.scale = scale
        self._configured: int | None = None
        self._warned = False

    def configure(self, batch_size: int | None) -> None:
        self._configured = batch_size

    def penalty(self, out: PairOutputs) -> Tensor:
        rewards = out.rewards  # (2B,)
        if self.scope == "global":
            rewards = _gather_with_grad(rewards)
        num_pairs = rewards.numel() // 2
        if num_pairs < self.MIN_PAIRS and not self._warned and rewards.requires_grad:  # training, not a short
            self._warn_small_batch(num_pairs)                                            # validation batch
        return self.weight * self._scale(num_pairs, len(out.rewards) // 2) * rewards.mean() ** 2

    def _scale(self, num_pairs: int, local_pairs: int) -> int:
        """``B``: the configured pairs (times the devices whose rewards were gathered), or the batch's."""
        if self.scale == "batch" or self._configured is None:
            return num_pairs
        return self._configured * (num_pairs // local_pairs if self.scope == "global" else 1)

    def _warn_small_batch(self, num_pairs: int) -> None:
        self._warned = True
        warnings.warn(
            f"BatchSumToZero sees {num_pairs} pair(s) per {self.scope} batch: with B=1 its penalty is "
            f"weight * ((c + r) / 2) ** 2, per-pair reward centering, and with a few pairs little more; it is not the "
            f"batch-wise sum-to-zero of Hong et al. (16 pairs per device). Raise `data.batch_size` (gradient "
            f"accumulation does not help: the mean is per micro-batch), or set `scope: global` to pool every device's "
            f"rewards.", UserWarning, stacklevel=3)


class LogitNorm(Regularizer):
    """BT-Norm baseline of Hong et al. 2025: the pairwise logit normalized by the rewards' joint norm.

    ``margin = (c - r) / sqrt(c**2 + r**2 + eps)``, after logit normalization (Wei et al. 2022, arXiv 2205.09310).

    Args:
        eps: added under the square root for stability.
    """

    def __init__(self, eps: float = 1e-6) -> None:
        check(eps >= 0, "model.regularizer.init_args.eps", f"must be 0 or more, got {eps}.")
        self.eps = eps

    def margin(self, out: PairOutputs) -> Tensor:
        c, r = out.chosen, out.rejected
        return (c - r) / torch.sqrt(c**2 + r**2 + self.eps)


class RewardCentering(Regularizer):
    """Reward centering of Eisenstein et al. 2023 (arXiv 2312.09244); TRL's ``center_rewards_coefficient``.

    ``penalty = weight * mean((c + r) ** 2)`` over the ``B`` pairs.

    Args:
        weight: the coefficient; TRL suggests ``0.01``.
    """

    def __init__(self, weight: float = 0.01) -> None:
        check_weight(weight)
        self.weight = weight

    def penalty(self, out: PairOutputs) -> Tensor:
        return self.weight * ((out.chosen + out.rejected) ** 2).mean()


class HiddenNormVariance(Regularizer):
    """A penalty on the spread of the head-input hidden-state norms, the quantity Hong et al. 2025 (Sec. 4) find
    dispersing as Bradley-Terry models over-optimize.

    ``penalty = weight * mean((n_i - mean(n)) ** 2)`` with ``n_i = ||h_i||`` over the ``2B`` hidden states of the
    batch (population variance): zero when every response's ``h`` has the same norm, whatever that norm is.

    Args:
        weight: the coefficient.
    """

    batch_statistic = True

    def __init__(self, weight: float = 1e-3) -> None:
        check_weight(weight)
        self.weight = weight

    def penalty(self, out: PairOutputs) -> Tensor:
        norms = out.hidden.float().norm(dim=-1)  # (2B,)
        return self.weight * (norms - norms.mean()).pow(2).mean()
