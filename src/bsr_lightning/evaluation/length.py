"""How much of a score length alone would give (issue 34, item 9): every ``evaluate`` format reports, beside the
model's metrics, the same metrics for two length-only "models" scored by the format's own rule (``shortest_wins``:
score = minus the response's tokens; ``longest_wins``: plus), and the Spearman correlation between the model's
rewards and response lengths, over all responses and as the mean within prompts. A model whose score is close to
``longest_wins`` may be rewarding length (the paper's RLHF claim is about length: BSR's policy answers shorter).

Lengths are the response's tokens alone (its last message, tokenized without special tokens), by the model's
tokenizer; a response longer than the scorer's character cap is counted after that cap (so at least
``max_length + 2`` tokens), as the scorer reads it: a 50 MB response costs no more here than there.
"""

from __future__ import annotations

import math

import numpy as np

from bsr_lightning.evaluation.metrics import spearman_rho


def response_tokens(tokenizer, conversations: list[list[dict]], cap=None) -> np.ndarray:
    """``(N,)`` token counts of each conversation's last message; ``cap`` (a
    :meth:`~bsr_lightning.data.encoding.PairEncoder.cap_characters`) cuts an over-long one first."""
    last = [c[-1:] if cap is None else cap(c[-1:]) for c in conversations]
    texts = [m[0]["content"] for m in last]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    return np.array([len(x) for x in ids], dtype=float)


class LengthBaselines:
    """Shadow evaluators fed token lengths instead of rewards, and the reward-length correlations.

    Args:
        make_evaluator: builds a fresh evaluator of the format being run (its ``update`` and ``result``).
        tokenizer: the model's tokenizer (lengths in its tokens).
        cap: the scorer's character cap (``PairEncoder.cap_characters``); None counts every character.
    """

    def __init__(self, make_evaluator, tokenizer, cap=None) -> None:
        self.shortest, self.longest = make_evaluator(), make_evaluator()
        self.tokenizer, self.cap = tokenizer, cap
        self.rewards: list[np.ndarray] = []  # (n,) per chunk: two floats per response overall
        self.lengths: list[np.ndarray] = []
        self.within_sum, self.within_count = 0.0, 0

    def lengths_of(self, conversations: list[list[dict]]) -> np.ndarray:
        """``(N,)`` token counts of each conversation's last message (:func:`response_tokens`)."""
        return response_tokens(self.tokenizer, conversations, self.cap)

    def update(self, item, scores: np.ndarray, lengths: np.ndarray) -> None:
        """Fold one item (its rewards and response lengths, in the evaluator's order) in."""
        self.shortest.update(item, -lengths)
        self.longest.update(item, lengths.copy())
        keep = ~np.isnan(scores)
        self.rewards.append(scores[keep])
        self.lengths.append(lengths[keep])
        if keep.sum() > 1:
            rho = spearman_rho(scores[keep], lengths[keep])
            if not math.isnan(rho):
                self.within_sum += rho
                self.within_count += 1

    def result(self) -> dict:
        rewards = np.concatenate(self.rewards) if self.rewards else np.zeros(0)
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0)
        overall = spearman_rho(rewards, lengths) if len(rewards) > 1 else float("nan")
        return {"shortest_wins": _headline(self.shortest.result()), "longest_wins": _headline(self.longest.result()),
                "reward_length_spearman": overall,
                "reward_length_spearman_within_prompts": self.within_sum / self.within_count if self.within_count
                else float("nan"),
                "mean_response_tokens": float(lengths.mean()) if len(lengths) else float("nan")}


def _headline(metrics: dict) -> dict:
    """The numbers of a format's result (counts and lists left out)."""
    return {k: v for k, v in metrics.items() if isinstance(v, float | dict) and k not in ("bad_rows",)}
