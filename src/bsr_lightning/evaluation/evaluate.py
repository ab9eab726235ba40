"""``python -m bsr_lightning evaluate``: score a dataset with a reward model and write metrics, scores and a report.

Formats:
  * ``pairs``: preference rows (any format :class:`PreferenceDataModule` reads; optional ``subset`` column):
    accuracy overall and per subset, and RewardBench section scores when its subset names appear.
  * ``multi``: ``{prompt, responses: [...], scores: [...]}`` with gold scores: per-prompt Kendall tau-b, Spearman rho
    and best-of-n gold regret, averaged over prompts.
  * ``rmbench``: RM-Bench rows ``{id, prompt, chosen: [3], rejected: [3], domain?}``: hard/normal/easy accuracy per
    domain (safety-refuse and safety-response merged into safety) and overall as the mean over domains.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from jsonargparse import ArgumentParser

from bsr_lightning.data.formats import RowError, as_messages, check_text
from bsr_lightning.data.loading import iter_raw_rows
from bsr_lightning.data.preference import collect_pairs
from bsr_lightning.evaluation.metrics import (
    multi_response_metrics,
    pair_accuracy,
    rewardbench_sections,
    rmbench_matrix,
    rmbench_summary,
)
from bsr_lightning.evaluation.report import write_outputs
from bsr_lightning.evaluation.scoring import ConversationScorer, load_reward_model

RMBENCH_DOMAINS = ("chat", "code", "math", "safety-refuse", "safety-response")


def _rows(data: str, split: str) -> list[tuple[str, dict]]:
    rows = list(iter_raw_rows(data, split=split))
    for _, row in rows:
        if isinstance(row, RowError):
            raise row
    return rows


def evaluate_pairs(scorer: ConversationScorer, data: str, split: str = "train") -> tuple[dict, list[dict]]:
    rows = _rows(data, split)
    pairs = collect_pairs(iter(rows), "error", data)
    convs = [p.prompt + c for p in pairs for c in (p.chosen, p.rejected)]
    scores = scorer.score(convs, "pairs").reshape(-1, 2)
    subsets = [str(rows[p.row_id][1].get("subset", "")) for p in pairs]
    correct = scores[:, 0] > scores[:, 1]
    metrics = {"accuracy": pair_accuracy(scores[:, 0], scores[:, 1]), "pairs": len(pairs)}
    if any(subsets):
        metrics["per_subset"] = {s: float(correct[np.array(subsets) == s].mean()) for s in sorted(set(subsets))}
        metrics["rewardbench"] = rewardbench_sections(correct, subsets)
    records = [{"row": p.row_id, "where": p.where, "subset": s or None, "chosen": float(c), "rejected": float(r)}
               for p, s, (c, r) in zip(pairs, subsets, scores, strict=True)]
    return metrics, records


def _multi_row(row: dict, where: str) -> tuple[list, list[str], list[float]]:
    prompt = as_messages(row.get("prompt"), "prompt", where, "user")
    responses, gold = row.get("responses"), row.get("scores")
    if not isinstance(responses, list) or not isinstance(gold, list) or len(responses) != len(gold) or not gold:
        raise RowError(where, "'responses' and 'scores' must be non-empty lists of equal length")
    for i, value in enumerate(gold):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RowError(where, f"'scores'[{i}] must be a number, got {value!r}")
    return prompt, [check_text(r, f"responses[{i}]", where) for i, r in enumerate(responses)], gold


def evaluate_multi(scorer: ConversationScorer, data: str, split: str = "train") -> tuple[dict, list[dict]]:
    items = [(where, *_multi_row(row, where)) for where, row in _rows(data, split)]
    convs = [p + [{"role": "assistant", "content": r}] for _, p, responses, _ in items for r in responses]
    flat = scorer.score(convs, "multi")
    bounds = np.cumsum([0] + [len(responses) for _, _, responses, _ in items])
    predicted = [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    metrics = multi_response_metrics(predicted, [gold for *_, gold in items])
    records = [{"row": i, "where": where, "scores": pred.tolist(), "gold": gold}
               for i, ((where, _, _, gold), pred) in enumerate(zip(items, predicted, strict=True))]
    return metrics, records


def _rmbench_row(row: dict, where: str, default_domain: str) -> tuple[str, list, list[str], list[str]]:
    domain = str(row.get("domain") or default_domain)
    domain = next((d for d in RMBENCH_DOMAINS if domain.startswith(d)), domain)
    prompt = as_messages(row.get("prompt"), "prompt", where, "user")
    sides = []
    for column in ("chosen", "rejected"):
        value = row.get(column)
        if not isinstance(value, list) or len(value) != 3:
            raise RowError(where, f"'{column}' must be a list of 3 responses (concise, detailed, markdown)")
        sides.append([check_text(v, f"{column}[{i}]", where) for i, v in enumerate(value)])
    return ("safety" if domain.startswith("safety") else domain), prompt, *sides


def evaluate_rmbench(scorer: ConversationScorer, data: str, split: str = "train") -> tuple[dict, list[dict]]:
    default = next((d for d in RMBENCH_DOMAINS if d in Path(data).name), "unknown")
    items = [(where, row.get("id"), *_rmbench_row(row, where, default)) for where, row in _rows(data, split)]
    convs = [p + [{"role": "assistant", "content": r}] for *_, p, ch, rj in items for r in ch + rj]
    scores = scorer.score(convs, "rmbench").reshape(-1, 2, 3)
    domains = np.array([item[2] for item in items])
    metrics = {"domains": {}, "items": len(items)}
    for domain in sorted(set(domains)):
        matrix = rmbench_matrix(scores[domains == domain, 0], scores[domains == domain, 1])
        metrics["domains"][domain] = {**rmbench_summary(matrix), "matrix": matrix.round(6).tolist(),
                                      "items": int(np.sum(domains == domain))}
    for level in ("hard", "normal", "easy"):
        metrics[level] = float(np.mean([d[level] for d in metrics["domains"].values()]))
    metrics["average"] = float(np.mean([metrics["hard"], metrics["normal"], metrics["easy"]]))
    records = [{"row": i, "id": item[1], "where": item[0], "domain": item[2], "chosen": s[0].tolist(),
                "rejected": s[1].tolist()} for i, (item, s) in enumerate(zip(items, scores, strict=True))]
    return metrics, records


EVALUATORS = {"pairs": evaluate_pairs, "multi": evaluate_multi, "rmbench": evaluate_rmbench}


def evaluate(model: str, data: str, output_dir: str, format: Literal["pairs", "multi", "rmbench"] = "pairs",
             split: str = "train", batch_size: int = 16, max_length: int = 512,
             overlong: Literal["drop", "truncate_left", "truncate_right"] = "truncate_left",
             device: str = "cpu") -> dict:
    """Evaluate a reward model on one dataset; writes ``metrics.json``, ``scores.jsonl`` and ``report.md``.

    Args:
        model: an exported Hugging Face directory (or hub id) or a Lightning ``.ckpt``.
        data: a local file or a hub dataset id.
        output_dir: where the outputs go.
        format: ``pairs``, ``multi`` or ``rmbench`` (see the module docstring).
        split: the hub split to read.
        batch_size: sequences per forward pass (scores do not depend on it).
        max_length: the longest sequence in tokens.
        overlong: the over-long policy, as in training; counts go into the report.
        device: ``cpu`` or ``cuda``.
    """
    scorer = ConversationScorer(load_reward_model(model).to(device), batch_size, max_length, overlong)
    metrics, records = EVALUATORS[format](scorer, data, split)
    metrics["length_policy"] = {"max_length": max_length, "overlong": overlong, **scorer.counts}
    write_outputs(Path(output_dir), metrics, records, f"{format} evaluation of {model} on {data}")
    return metrics


def evaluate_main(args: list[str]) -> dict:
    """``python -m bsr_lightning evaluate --model M --data F --format pairs --output_dir D``."""
    parser = ArgumentParser(prog="python -m bsr_lightning evaluate", description=__doc__.splitlines()[0])
    parser.add_function_arguments(evaluate)
    cfg = parser.parse_args(args)
    metrics = evaluate(**cfg.as_dict())
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, dict)}))
    return metrics
