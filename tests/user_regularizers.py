"""A user's hidden-state regularizer, in the user's own module: selected from the CLI by class path."""

from bsr_lightning.reward.regularizers import PairOutputs, Regularizer


class HiddenNormPenalty(Regularizer):
    """``weight * mean(||h||^2)`` over the batch's chosen and rejected head-input hidden states."""

    def __init__(self, weight: float = 1e-4) -> None:
        self.weight = weight
        self.seen: list[tuple] = []  # (chosen_hidden shape, rejected_hidden shape, requires_grad) per call

    def penalty(self, out: PairOutputs):
        self.seen.append((tuple(out.chosen_hidden.shape), tuple(out.rejected_hidden.shape),
                          out.chosen_hidden.requires_grad))
        return self.weight * out.hidden.pow(2).sum(-1).mean()
