"""The paper's evaluation numbers as plain functions of score arrays; the ``evaluate`` formats
(:mod:`bsr_lightning.evaluation.evaluators`) fold them into running metrics."""

from __future__ import annotations

import math

import numpy as np


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), 1-based."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def kendall_tau_b(x, y) -> float:
    """Kendall's tau-b between two score lists (ties corrected); NaN when either side is constant."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    concordance = float(np.sum(dx * dy))
    n_x, n_y = float(np.sum(dx != 0)), float(np.sum(dy != 0))
    return concordance / math.sqrt(n_x * n_y) if n_x and n_y else float("nan")


def spearman_rho(x, y) -> float:
    """Spearman's rank correlation (Pearson on average ranks); NaN when either side is constant."""
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float(np.sum(rx**2) * np.sum(ry**2)))
    return float(np.sum(rx * ry) / denom) if denom else float("nan")


def best_of_n_regret(predicted, gold) -> float:
    """Gold score of the best response minus the gold score of the response the model ranks first."""
    predicted, gold = np.asarray(predicted, float), np.asarray(gold, float)
    return float(gold.max() - gold[int(np.argmax(predicted))])


def rmbench_matrix(chosen: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    """RM-Bench's 3x3 matrix: ``M[i, j]`` = fraction of prompts with ``chosen[:, i] > rejected[:, j]``.

    Args:
        chosen: ``(N, 3)`` scores of the chosen responses in the styles concise, detailed plain, detailed markdown.
        rejected: ``(N, 3)`` scores of the rejected responses, same styles.
    """
    chosen, rejected = np.asarray(chosen, float), np.asarray(rejected, float)
    return (chosen[:, :, None] > rejected[:, None, :]).mean(axis=0)


def rmbench_summary(matrix: np.ndarray) -> dict[str, float]:
    """Hard (above the diagonal: chosen less styled than rejected), normal (the diagonal) and easy (below)."""
    upper, lower = np.triu_indices(3, 1), np.tril_indices(3, -1)
    return {"hard": float(matrix[upper].mean()), "normal": float(np.diag(matrix).mean()),
            "easy": float(matrix[lower].mean())}
