"""Listwise reward training: one prompt with k >= 2 scored responses per row
(:class:`~bsr_lightning.data.listwise.ListwiseDataModule`), each row's responses one group in the batch (through
the backbone once with their prompt under ``SharedPrefix``), one small class per loss.

Shapes: ``N`` responses in ``B`` groups of ``group_sizes`` ``(B,)``; ``P`` ordered pairs with a score gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bsr_lightning.args import Backbone, RewardOptimization
from bsr_lightning.reward.forward import ForwardMode
from bsr_lightning.reward.losses import BradleyTerry, PairwiseLoss
from bsr_lightning.reward.module import RewardModel
from bsr_lightning.reward.regularizers import PairOutputs, Regularizer
from bsr_lightning.training.guards import OnNonFinite


@dataclass
class GroupOutputs(PairOutputs):
    """:class:`PairOutputs` of every ordered pair with a score gap inside each group (``chosen`` the higher
    scored, ``(P,)``), plus every response once: ``responses`` ``(N,)``, ``response_hidden`` ``(N, H)``, their
    ``scores`` ``(N,)`` and ``group_sizes`` ``(B,)``. Regularizers see :attr:`rewards` and :attr:`hidden`, every
    response once (BSR's batch mean is over the batch's responses, not over pairs that repeat them)."""

    responses: Tensor = None
    response_hidden: Tensor = None
    scores: Tensor = None
    group_sizes: Tensor = None

    @property
    def rewards(self) -> Tensor:
        return self.responses

    @property
    def hidden(self) -> Tensor:
        return self.response_hidden


def ordered_pairs(scores: Tensor, sizes: Tensor) -> tuple[Tensor, Tensor]:
    """``(better, worse)`` ``(P,)`` indices of every pair inside a group whose scores differ."""
    better, worse, start = [], [], 0
    for k in sizes.tolist():
        i, j = torch.triu_indices(k, k, offset=1, device=scores.device) + start
        gap = scores[i] - scores[j]
        keep = gap != 0
        better.append(torch.where(gap > 0, i, j)[keep])
        worse.append(torch.where(gap > 0, j, i)[keep])
        start += k
    return torch.cat(better), torch.cat(worse)


class ListwiseLoss:
    """Base class: the data loss ``()`` of a batch of groups from its :class:`GroupOutputs` and the regularizer's
    margin ``logits`` ``(P,)`` of the ordered pairs."""

    def __call__(self, out: GroupOutputs, logits: Tensor) -> Tensor:
        raise NotImplementedError


class AllPairs(ListwiseLoss):
    """A pairwise loss over every ordered pair with a score gap, averaged over the pairs: exactly training on the
    row's binarized pairs in one batch (tested), with each response computed once.

    Args:
        pairwise: the pairwise loss; Bradley-Terry when None.
    """

    def __init__(self, pairwise: PairwiseLoss | None = None) -> None:
        self.pairwise = pairwise if pairwise is not None else BradleyTerry()

    def __call__(self, out, logits):
        return self.pairwise(logits, out.chosen, out.rejected).mean()


class PlackettLuce(ListwiseLoss):
    """The Plackett-Luce likelihood of each group's ranking by score (Plackett 1975; ListMLE, Xia et al. 2008):
    ``-sum_t [r_(t) - logsumexp(r_(t), ..., r_(k))]`` over the responses in descending score order, averaged over
    groups. Ties in score keep the data's order."""

    def __call__(self, out, logits):
        losses, start = [], 0
        for k in out.group_sizes.tolist():
            scores, rewards = out.scores[start:start + k], out.responses[start:start + k]
            ranked = rewards[torch.argsort(scores, descending=True, stable=True)]
            tails = torch.logcumsumexp(ranked.flip(0), 0).flip(0)  # logsumexp of each suffix
            losses.append((tails - ranked)[:-1].sum())
            start += k
        return torch.stack(losses).mean()


class ListwiseRewardModel(RewardModel):
    """A reward model trained on groups of k >= 2 scored responses per prompt; every argument of
    :class:`~bsr_lightning.RewardModel`, and:

    Args:
        backbone: as :class:`~bsr_lightning.RewardModel`'s.
        regularizer: as :class:`~bsr_lightning.RewardModel`'s; its penalty sees every response once, its margin
            feeds ``AllPairs``.
        loss: the pairwise loss ``AllPairs`` uses when ``listwise_loss`` is None.
        optimization: as :class:`~bsr_lightning.RewardModel`'s.
        forward_mode: as :class:`~bsr_lightning.RewardModel`'s; ``SharedPrefix`` takes each row's prompt once for
            all its responses.
        score_init: as :class:`~bsr_lightning.RewardModel`'s.
        on_nonfinite: as :class:`~bsr_lightning.RewardModel`'s.
        compile: as :class:`~bsr_lightning.RewardModel`'s.
        listwise_loss: ``AllPairs`` (every ordered pair with a score gap; equal to training on the binarized
            pairs) or ``PlackettLuce``; ``AllPairs(loss)`` when None.
    """

    def __init__(self, backbone: Backbone, regularizer: Regularizer | None = None, loss: PairwiseLoss | None = None,
                 optimization: RewardOptimization | None = None, forward_mode: ForwardMode | None = None,
                 score_init: str = "default", on_nonfinite: OnNonFinite = "error", compile: bool = False,
                 listwise_loss: ListwiseLoss | None = None) -> None:
        super().__init__(backbone, regularizer, loss, optimization, forward_mode, score_init, on_nonfinite, compile)
        self.listwise_loss = listwise_loss if listwise_loss is not None else AllPairs(self.loss_fn)
        self.store_hparams(regularizer=self.regularizer, loss=self.loss_fn, forward_mode=self.forward_mode,
                           listwise_loss=self.listwise_loss)

    def pair_outputs(self, batch: dict[str, Tensor]) -> GroupOutputs:
        """Rewards of a batch of groups (``input_ids`` ``(N, T)``, ``group_sizes`` ``(B,)``, ``scores`` ``(N,)``)."""
        sizes, scores = batch["group_sizes"], batch["scores"]
        rewards, hidden = self.forward_mode.grouped(self, batch["input_ids"], batch["attention_mask"], sizes)
        better, worse = ordered_pairs(scores, sizes)
        return GroupOutputs(rewards[better], rewards[worse], hidden[better], hidden[worse], rewards, hidden, scores,
                            sizes)

    def data_loss(self, out: GroupOutputs, batch: dict[str, Tensor]) -> Tensor:
        return self.listwise_loss(out, self.regularizer.margin(out))
