"""RM-Bench (Liu et al., ICLR 2025, https://arxiv.org/abs/2410.16184), scored as the official
``scripts/utils.py::compute_accuracy`` of THU-KEG/RM-Bench scores it:

- every prompt has 3 chosen and 3 rejected responses (concise, detailed plain, detailed markdown); the 3x3 matrix
  ``M[i, j]`` is the fraction of a domain's prompts with ``chosen[i] > rejected[j]`` (ties are wrong);
- hard = mean above the diagonal, normal = the diagonal, easy = below; a domain's average is their mean;
- rows go to the domain their ``domain`` starts with (``chat``, ``code``, ``math``, ``safety``; so
  ``safety-refuse`` and ``safety-response`` pool into one safety matrix); other domains are left out (and counted);
- overall hard/normal/easy are the means over domains, ``average`` the mean of the domains' averages (the official
  ``total_avg_acc``).

Where the official script needs all four domains in one file, ``evaluate`` takes several files at once (comma-
separated) and averages the domains present, listing the missing ones. A row without ``domain`` takes it from its
file's name (``chat.json``, ``safety-refuse.json``, ...).
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import NamedTuple

import numpy as np

from bsr_lightning.data.formats import Message, RowError, as_messages, check_text
from bsr_lightning.evaluation.evaluators import Evaluator
from bsr_lightning.evaluation.metrics import rmbench_matrix, rmbench_summary

DOMAINS = ("chat", "code", "math", "safety")
_FILE = re.compile(r"^(.*?)(?::\d+| row \d+)$")


def _domain_of(row: dict, where: str) -> str | None:
    """The official domain of a row (``None`` for a domain RM-Bench does not score)."""
    domain = row.get("domain")
    if domain is None:  # take it from the file name
        match = _FILE.match(where)
        name = (match.group(1) if match else where).rsplit("/", 1)[-1]
        named = [d for d in DOMAINS if d in name]
        if len(named) != 1:
            raise RowError(where, "no 'domain' column, and the file name does not name one domain of "
                                  f"{', '.join(DOMAINS)}; add the column or rename the file")
        return named[0]
    return next((d for d in DOMAINS if str(domain).startswith(d)), None)


class Item(NamedTuple):
    """One RM-Bench row: its official domain (or, unscored, the domain it names), prompt and 3 + 3 responses."""

    row_id: int
    item_id: object
    where: str
    domain: str
    prompt: list[Message] | None  # None: a domain RM-Bench does not score
    chosen: list[str] = []
    rejected: list[str] = []


class RMBenchEvaluator(Evaluator):
    """RM-Bench rows ``{id, prompt, chosen: [3], rejected: [3], domain?}``: the 3x3 matrix, hard/normal/easy and
    average per domain and overall (module docstring)."""

    format, columns = "rmbench", ("prompt", "chosen", "rejected")
    default_max_length = 2048

    def __init__(self, data: str = "") -> None:
        self.matrices: dict[str, np.ndarray] = defaultdict(lambda: np.zeros((3, 3)))  # domain -> summed 3x3
        self.items: dict[str, int] = defaultdict(int)
        self.unknown: dict[str, int] = defaultdict(int)  # domain name -> rows left out

    def parse(self, row, row_id, where):
        domain = _domain_of(row, where)
        if domain is None:
            return Item(row_id, row.get("id"), where, str(row.get("domain")), None)
        prompt = as_messages(row.get("prompt"), "prompt", where, "user")
        sides = []
        for column in ("chosen", "rejected"):
            value = row.get(column)
            if not isinstance(value, list) or len(value) != 3:
                raise RowError(where, f"'{column}' must be a list of 3 responses (concise, detailed, markdown)")
            sides.append([check_text(v, f"{column}[{i}]", where) for i, v in enumerate(value)])
        return Item(row_id, row.get("id"), where, domain, prompt, *sides)

    def conversations(self, item):
        if item.prompt is None:
            return []
        return [item.prompt + [{"role": "assistant", "content": r}] for r in item.chosen + item.rejected]

    def update(self, item, scores):
        record = {"row": item.row_id, "id": item.item_id, "where": item.where, "domain": item.domain}
        if item.prompt is None:  # a domain RM-Bench does not score
            self.unknown[item.domain] += 1
            return {**record, "skipped": "unknown domain"}
        chosen, rejected = scores.reshape(2, 3)
        self.matrices[item.domain] += rmbench_matrix(chosen[None], rejected[None])
        self.items[item.domain] += 1
        return {**record, "chosen": chosen.tolist(), "rejected": rejected.tolist()}

    def result(self):
        metrics: dict = {"domains": {}, "items": sum(self.items.values()),
                         "missing_domains": [d for d in DOMAINS if d not in self.items],
                         "unknown_domain_rows_left_out": dict(self.unknown)}
        for domain in sorted(self.items):
            matrix = self.matrices[domain] / self.items[domain]
            summary = rmbench_summary(matrix)
            metrics["domains"][domain] = {**summary, "average": float(np.mean(list(summary.values()))),
                                          "matrix": matrix.round(6).tolist(), "items": self.items[domain]}
        for level in ("hard", "normal", "easy", "average"):
            values = [d[level] for d in metrics["domains"].values()]
            metrics[level] = float(np.mean(values)) if values else float("nan")
        return metrics
