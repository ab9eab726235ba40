"""Evaluation: accuracy, Kendall tau against gold scores, RM-Bench, and the paper's diagnostics."""

from bsr_lightning.evaluation.evaluate import evaluate
from bsr_lightning.evaluation.scoring import ConversationScorer, load_reward_model

__all__ = ["ConversationScorer", "evaluate", "load_reward_model"]
