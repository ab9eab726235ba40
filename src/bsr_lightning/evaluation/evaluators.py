"""One class per evaluation format: parse a row, list its conversations, fold its scores into running metrics.

Running metrics are sums and counts (per subset, per domain), never per-row arrays, so evaluating a million rows
needs the same memory as a thousand (see :func:`~bsr_lightning.evaluation.evaluate.stream_scores`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator

import numpy as np

from bsr_lightning.data.formats import Message, RowError, as_messages, check_text, responses_and_scores, row_to_pair
from bsr_lightning.data.loading import iter_raw_rows
from bsr_lightning.evaluation.metrics import best_of_n_regret, kendall_tau_b, spearman_rho

EVALUATORS: dict[str, type[Evaluator]] = {}
"""``--format`` name -> evaluator class; every subclass with a ``format`` registers itself."""


def _reply(prompt: list[Message], response: str) -> list[Message]:
    return prompt + [{"role": "assistant", "content": response}]


class Evaluator:
    """The interface: ``parse`` a raw row into an item, list the item's ``conversations`` to score, ``update`` the
    running metrics with the item's scores (returning the record written to ``scores.jsonl``), and ``result``.
    ``columns`` are the ones every row of the format has; ``default_split`` and ``default_max_length`` are the
    benchmark's own settings, used unless ``evaluate`` is given others."""

    format = ""
    columns: tuple[str, ...] = ()
    special_tokens = "template"  # how texts become tokens: "rewardbench" for RewardBench's own pipeline
    default_split, default_max_length = "train", 512

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.format:
            EVALUATORS[cls.format] = cls

    def rows(self, data: str, split: str) -> Iterator[tuple[str, dict]]:
        """``(where, raw row)`` for every row of ``data`` (local files, comma-separated, or a hub id at ``split``)."""
        return iter_raw_rows(data, split=split)

    def check_columns(self, row: dict, where: str) -> None:
        """A row without the format's columns: say which format expects what, and what the row has."""
        missing = [c for c in self.columns if c not in row]
        if missing:
            has = sorted(map(str, row))
            has = f"{has[:20]} and {len(has) - 20:,} more" if len(has) > 20 else f"{has}"
            raise RowError(where, f"--format {self.format} expects columns {list(self.columns)}, this row has "
                                  f"{has} (missing {missing}); fix the row, or choose the format that fits "
                                  f"the file: {', '.join(EVALUATORS)}")

    def parse(self, row: dict, row_id: int, where: str):
        raise NotImplementedError

    def conversations(self, item) -> list[list[Message]]:
        raise NotImplementedError

    def update(self, item, scores: np.ndarray) -> dict:
        raise NotImplementedError

    def result(self) -> dict:
        raise NotImplementedError


class PairsEvaluator(Evaluator):
    """Preference rows (any format :class:`~bsr_lightning.PreferenceDataModule` reads; optional ``subset``):
    accuracy overall and per subset. Ties and pairs dropped as over-long (NaN scores) count as wrong. RewardBench's
    section scores come from ``--format rewardbench``."""

    format, columns = "pairs", ("chosen", "rejected")

    def __init__(self, data: str = "") -> None:
        self.counts: dict[str, list] = defaultdict(lambda: [0, 0])  # subset -> [correct, total]

    def parse(self, row, row_id, where):
        subset = row.get("subset")
        return row_to_pair(row, row_id, where), check_text(subset, "subset", where) if subset else ""

    def conversations(self, item):
        pair, _ = item
        return [pair.prompt + pair.chosen, pair.prompt + pair.rejected]

    def update(self, item, scores):
        (pair, subset), (chosen, rejected) = item, scores.tolist()
        self.counts[subset][0] += chosen > rejected
        self.counts[subset][1] += 1
        return {"row": pair.row_id, "where": pair.where, "subset": subset or None, "chosen": chosen,
                "rejected": rejected}

    def result(self):
        correct, total = (sum(c[i] for c in self.counts.values()) for i in (0, 1))
        metrics = {"accuracy": correct / total if total else float("nan"), "pairs": total}
        if set(self.counts) != {""}:
            metrics["per_subset"] = {s: c / t for s, (c, t) in sorted(self.counts.items())}
        return metrics


class MultiEvaluator(Evaluator):
    """Multi-response rows with gold scores: per-prompt Kendall tau-b, Spearman rho and best-of-n gold regret,
    averaged over prompts (prompts with a NaN correlation are counted, not averaged).

    Two row shapes: ``{prompt, responses: [...], scores: [...]}`` (what ``scenarios`` writes), and the paper's
    released validation sets as they stand, ``{instruction, response_1_text, ..., response_n_text, all_scores:
    [...]}`` (the authors' ``scripts/run_kendall.py`` reads ``instruction``; ``prompt`` is accepted in its place).
    """

    format, columns = "multi", ("prompt", "responses", "scores")

    def __init__(self, data: str = "") -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def check_columns(self, row: dict, where: str) -> None:
        if ("prompt" in row or "instruction" in row) and "response_1_text" in row and "all_scores" in row:
            return  # the paper's shape
        super().check_columns({"prompt": None, **row} if "instruction" in row else row, where)

    def parse(self, row, row_id, where):
        column = "prompt" if "prompt" in row else "instruction"
        prompt = as_messages(row.get(column), column, where, "user")
        responses, gold = responses_and_scores(row, where)
        if not isinstance(responses, list) or not isinstance(gold, list) or len(responses) != len(gold) or not gold:
            raise RowError(where, "the responses and their gold scores ('responses'/'scores', or 'response_k_text'/"
                                  "'all_scores') must be non-empty lists of equal length")
        for i, value in enumerate(gold):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise RowError(where, f"gold score {i} must be a finite number, got {value!r}")
        return row_id, where, prompt, [check_text(r, f"responses[{i}]", where) for i, r in enumerate(responses)], gold

    def conversations(self, item):
        _, _, prompt, responses, _ = item
        return [_reply(prompt, r) for r in responses]

    def update(self, item, scores):
        row_id, where, _, _, gold = item
        values = {"kendall_tau": kendall_tau_b(scores, gold), "spearman_rho": spearman_rho(scores, gold),
                  "best_of_n_regret": best_of_n_regret(scores, gold)}
        for name, value in values.items():
            if not math.isnan(value):
                self.sums[name] += value
                self.counts[name] += 1
        self.counts["prompts"] += 1
        return {"row": row_id, "where": where, "scores": scores.tolist(), "gold": gold}

    def result(self):
        prompts = self.counts["prompts"]
        out = {k: self.sums[k] / self.counts[k] if self.counts[k] else float("nan")
               for k in ("kendall_tau", "spearman_rho", "best_of_n_regret")}
        return {**out, "prompts": prompts, "prompts_with_nan_tau": prompts - self.counts["kendall_tau"]}


