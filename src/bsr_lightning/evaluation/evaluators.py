"""One class per evaluation format: parse a row, list its conversations, fold its scores into running metrics.

Running metrics are sums and counts (per subset, per domain), never per-row arrays, so evaluating a million rows
needs the same memory as a thousand (see :func:`~bsr_lightning.evaluation.evaluate.stream_scores`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from bsr_lightning.data.formats import Message, RowError, as_messages, check_text, row_to_pair
from bsr_lightning.evaluation.metrics import (
    best_of_n_regret,
    kendall_tau_b,
    rewardbench_from_counts,
    rmbench_matrix,
    rmbench_summary,
    spearman_rho,
)

RMBENCH_DOMAINS = ("chat", "code", "math", "safety-refuse", "safety-response")


def _reply(prompt: list[Message], response: str) -> list[Message]:
    return prompt + [{"role": "assistant", "content": response}]


class Evaluator:
    """The interface: ``parse`` a raw row into an item, list the item's ``conversations`` to score, ``update`` the
    running metrics with the item's scores (returning the record written to ``scores.jsonl``), and ``result``.
    ``columns`` are the ones every row of the format has."""

    format = ""
    columns: tuple[str, ...] = ()

    def check_columns(self, row: dict, where: str) -> None:
        """A row without the format's columns: say which format expects what, and what the row has."""
        missing = [c for c in self.columns if c not in row]
        if missing:
            raise RowError(where, f"--format {self.format} expects columns {list(self.columns)}, this row has "
                                  f"{sorted(row)} (missing {missing}); fix the row, or choose the format that fits "
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
    accuracy overall and per subset, and RewardBench section scores when its subset names appear. Ties and pairs
    dropped as over-long (NaN scores) count as wrong."""

    format, columns = "pairs", ("chosen", "rejected")

    def __init__(self, data: str = "") -> None:
        self.counts: dict[str, list] = defaultdict(lambda: [0, 0])  # subset -> [correct, total]

    def parse(self, row, row_id, where):
        return row_to_pair(row, row_id, where), str(row.get("subset") or "")

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
            metrics["rewardbench"] = rewardbench_from_counts({s: (c, t) for s, (c, t) in self.counts.items()})
        return metrics


class MultiEvaluator(Evaluator):
    """``{prompt, responses: [...], scores: [...]}`` rows with gold scores: per-prompt Kendall tau-b, Spearman rho
    and best-of-n gold regret, averaged over prompts (prompts with a NaN correlation are counted, not averaged)."""

    format, columns = "multi", ("prompt", "responses", "scores")

    def __init__(self, data: str = "") -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def parse(self, row, row_id, where):
        prompt = as_messages(row.get("prompt"), "prompt", where, "user")
        responses, gold = row.get("responses"), row.get("scores")
        if not isinstance(responses, list) or not isinstance(gold, list) or len(responses) != len(gold) or not gold:
            raise RowError(where, "'responses' and 'scores' must be non-empty lists of equal length")
        for i, value in enumerate(gold):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RowError(where, f"'scores'[{i}] must be a number, got {value!r}")
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


class RMBenchEvaluator(Evaluator):
    """RM-Bench rows ``{id, prompt, chosen: [3], rejected: [3], domain?}``: hard/normal/easy accuracy per domain
    (safety-refuse and safety-response merged into safety) and overall as the mean over domains. Rows without a
    ``domain`` take it from the file name (``chat``, ``code``, ...)."""

    format, columns = "rmbench", ("prompt", "chosen", "rejected")

    def __init__(self, data: str = "") -> None:
        self.default_domain = next((d for d in RMBENCH_DOMAINS if d in Path(data).name), "unknown")
        self.matrices: dict[str, np.ndarray] = defaultdict(lambda: np.zeros((3, 3)))  # domain -> summed 3x3
        self.items: dict[str, int] = defaultdict(int)

    def parse(self, row, row_id, where):
        domain = str(row.get("domain") or self.default_domain)
        domain = next((d for d in RMBENCH_DOMAINS if domain.startswith(d)), domain)
        prompt = as_messages(row.get("prompt"), "prompt", where, "user")
        sides = []
        for column in ("chosen", "rejected"):
            value = row.get(column)
            if not isinstance(value, list) or len(value) != 3:
                raise RowError(where, f"'{column}' must be a list of 3 responses (concise, detailed, markdown)")
            sides.append([check_text(v, f"{column}[{i}]", where) for i, v in enumerate(value)])
        return row_id, row.get("id"), where, ("safety" if domain.startswith("safety") else domain), prompt, *sides

    def conversations(self, item):
        *_, prompt, chosen, rejected = item
        return [_reply(prompt, r) for r in chosen + rejected]

    def update(self, item, scores):
        row_id, item_id, where, domain, *_ = item
        chosen, rejected = scores.reshape(2, 3)
        self.matrices[domain] += rmbench_matrix(chosen[None], rejected[None])
        self.items[domain] += 1
        return {"row": row_id, "id": item_id, "where": where, "domain": domain, "chosen": chosen.tolist(),
                "rejected": rejected.tolist()}

    def result(self):
        metrics: dict = {"domains": {}, "items": sum(self.items.values())}
        for domain in sorted(self.items):
            matrix = self.matrices[domain] / self.items[domain]
            metrics["domains"][domain] = {**rmbench_summary(matrix), "matrix": matrix.round(6).tolist(),
                                          "items": self.items[domain]}
        for level in ("hard", "normal", "easy"):
            metrics[level] = float(np.mean([d[level] for d in metrics["domains"].values()]))
        metrics["average"] = float(np.mean([metrics["hard"], metrics["normal"], metrics["easy"]]))
        return metrics


EVALUATORS: dict[str, type[Evaluator]] = {"pairs": PairsEvaluator, "multi": MultiEvaluator,
                                          "rmbench": RMBenchEvaluator}
