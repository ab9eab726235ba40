"""Pairwise reward-model losses. Each returns the per-pair loss ``(B,)``; the module averages it.

All take ``logits`` ``(B,)`` (the regularizer's margin, ``chosen - rejected`` by default), the raw ``chosen`` and
``rejected`` rewards ``(B,)`` and an optional per-pair ``margin`` ``(B,)`` from the data.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BradleyTerry", "BradleyTerryDR", "BradleyTerryMargin", "Hinge", "PairwiseLoss"]


class PairwiseLoss(nn.Module):
    """Base class of the pairwise losses."""

    def forward(self, logits: Tensor, chosen: Tensor, rejected: Tensor, margin: Tensor | None = None) -> Tensor:
        raise NotImplementedError


class BradleyTerry(PairwiseLoss):
    """Bradley-Terry negative log-likelihood ``-log sigmoid(logits)`` (Ouyang et al. 2022, arXiv 2203.02155)."""

    def forward(self, logits: Tensor, chosen: Tensor, rejected: Tensor, margin: Tensor | None = None) -> Tensor:
        return -F.logsigmoid(logits)


class BradleyTerryMargin(PairwiseLoss):
    """Bradley-Terry with a margin: ``-log sigmoid(logits - m)`` (Llama 2, arXiv 2307.09288, Eq. 2).

    ``m`` is the data's per-pair ``margin`` column when the batch has one, else the constant ``margin``.

    Args:
        margin: the constant margin used when the data gives none; 0 (plain BT) by default, as the paper's code.
    """

    def __init__(self, margin: float = 0.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, logits: Tensor, chosen: Tensor, rejected: Tensor, margin: Tensor | None = None) -> Tensor:
        m = self.margin if margin is None else margin
        return -F.logsigmoid(logits - m)


class Hinge(PairwiseLoss):
    """Hinge (SLiC-style) loss ``max(0, m - logits)``.

    Args:
        margin: the hinge margin ``m``; 0 by default, as the paper's code.
    """

    def __init__(self, margin: float = 0.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, logits: Tensor, chosen: Tensor, rejected: Tensor, margin: Tensor | None = None) -> Tensor:
        return F.relu(self.margin - logits)


class BradleyTerryDR(PairwiseLoss):
    """BT-DR of Eurus (Yuan et al. 2024, arXiv 2404.02078): BT plus direct terms on each reward's sign.

    ``-log sigmoid(logits) - log sigmoid(chosen) - log sigmoid(-rejected)``.
    """

    def forward(self, logits: Tensor, chosen: Tensor, rejected: Tensor, margin: Tensor | None = None) -> Tensor:
        return -F.logsigmoid(logits) - F.logsigmoid(chosen) - F.logsigmoid(-rejected)
