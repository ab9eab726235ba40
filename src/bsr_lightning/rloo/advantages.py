"""Leave-one-out advantages of RLOO (Ahmadian et al. 2024, arXiv 2402.14740).

Shapes: ``N = B * k`` rollouts, ``k`` samples for each of ``B`` prompts, grouped as ``[p0 s0..s(k-1), p1 ...]``.
"""

from __future__ import annotations

from torch import Tensor


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
