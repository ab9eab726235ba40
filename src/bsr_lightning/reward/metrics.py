"""torchmetrics that summarize rewards and hidden-state norms over steps and epochs."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import MeanMetric, Metric, MetricCollection


class Moments(Metric):
    """Running mean and standard deviation of every value seen, reduced across devices.

    ``compute()`` returns ``(mean, std)`` (population std) of all values passed to ``update`` since the last reset.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total_sq", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: Tensor) -> None:
        values = values.detach().double().flatten()
        self.total += values.sum()
        self.total_sq += values.pow(2).sum()
        self.count += values.numel()

    def compute(self) -> tuple[Tensor, Tensor]:
        mean = self.total / self.count
        var = (self.total_sq / self.count - mean**2).clamp(min=0)
        return mean.float(), var.sqrt().float()


class Correlation(Metric):
    """Pearson's correlation of two streams of values, from running sums reduced across devices (no value is kept).
    NaN when either side is constant."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        for name in ("n", "x", "y", "xx", "yy", "xy"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, x: Tensor, y: Tensor) -> None:
        x, y = x.detach().double().flatten(), y.detach().double().flatten()
        self.n += x.numel()
        self.x, self.y = self.x + x.sum(), self.y + y.sum()
        self.xx, self.yy, self.xy = self.xx + (x * x).sum(), self.yy + (y * y).sum(), self.xy + (x * y).sum()

    def compute(self) -> Tensor:
        cov = self.xy / self.n - self.x * self.y / self.n**2
        var = (self.xx / self.n - (self.x / self.n) ** 2) * (self.yy / self.n - (self.y / self.n) ** 2)
        return (cov / var.sqrt()).float() if var > 0 else torch.tensor(float("nan"))


class RewardMetrics(torch.nn.Module):
    """Per-stage reward-model metrics: means of loss, accuracy, margin, penalty and chosen/rejected rewards, the
    moments of all rewards and of the head-input hidden-state norms, and ``reward_length_corr``: Pearson's
    correlation between rewards and their sequences' lengths in tokens (does the model pay for length?)."""

    MEANS = ("loss", "accuracy", "margin", "penalty", "chosen_reward", "rejected_reward")

    def __init__(self) -> None:
        super().__init__()
        self.means = MetricCollection({name: MeanMetric() for name in self.MEANS})
        self.reward = Moments()
        self.hidden_norm = Moments()
        self.length = Correlation()

    def update(self, values: dict[str, Tensor], rewards: Tensor, hidden_norms: Tensor | None,
               lengths: Tensor | None = None) -> None:
        """Add one batch: ``values`` maps the names in ``MEANS`` to ``(B,)`` or scalar tensors; ``rewards`` ``(2B,)``,
        ``hidden_norms`` ``(2B,)``, ``lengths`` ``(2B,)`` tokens per sequence."""
        for name, value in values.items():
            self.means[name].update(value.detach().float())
        self.reward.update(rewards)
        if lengths is not None:
            self.length.update(rewards, lengths)
        if hidden_norms is not None:
            self.hidden_norm.update(hidden_norms)

    def compute(self) -> dict[str, Tensor]:
        out = {name: metric.compute() for name, metric in self.means.items()}
        out["reward_mean"], out["reward_std"] = self.reward.compute()
        if self.hidden_norm.count > 0:
            out["hidden_norm_mean"], out["hidden_norm_std"] = self.hidden_norm.compute()
        if self.length.n > 0:
            out["reward_length_corr"] = self.length.compute()
        return out

    def reset(self) -> None:
        self.means.reset()
        self.reward.reset()
        self.hidden_norm.reset()
        self.length.reset()


def batch_summary(values: dict[str, Tensor], rewards: Tensor, hidden_norms: Tensor | None) -> dict[str, Tensor]:
    """The same statistics as :class:`RewardMetrics`, for one batch (per-step logging)."""
    out = {name: value.detach().float().mean() for name, value in values.items()}
    out["reward_mean"], out["reward_std"] = rewards.detach().mean(), rewards.detach().std(unbiased=False)
    if hidden_norms is not None:
        out["hidden_norm_mean"], out["hidden_norm_std"] = hidden_norms.mean(), hidden_norms.std(unbiased=False)
    return out
