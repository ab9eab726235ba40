"""``python -m bsr_lightning evaluate``: score a dataset with a reward model and write metrics, scores and a report.

Formats: ``pairs`` (accuracy, per subset), ``multi`` (per-prompt Kendall tau-b, Spearman rho, best-of-n regret
against gold scores; both in :mod:`~bsr_lightning.evaluation.evaluators`), ``rewardbench`` (RewardBench's sections,
Prior Sets and Score, :mod:`~bsr_lightning.evaluation.rewardbench`), ``rewardbench2`` (RewardBench 2's six subsets,
Ties and Score, :mod:`~bsr_lightning.evaluation.rewardbench2`) and ``rmbench`` (RM-Bench's hard/normal/easy per
domain, :mod:`~bsr_lightning.evaluation.rmbench`). Every format also reports, under ``length``, the same metrics for
length-only scorers and the reward-length correlation (:mod:`~bsr_lightning.evaluation.length`).

The data streams through in chunks of ``chunk_rows`` rows: each chunk is parsed, scored in length-sorted batches,
written to ``scores.jsonl`` and folded into running sums, so peak memory does not grow with the dataset size.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from itertools import islice
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from bsr_lightning.args import DType
from bsr_lightning.data.formats import RowError
from bsr_lightning.data.loading import local_files
from bsr_lightning.errors import DataError, check
from bsr_lightning.evaluation import rewardbench, rewardbench2, rmbench  # noqa: F401  (they register their formats)
from bsr_lightning.evaluation.evaluators import EVALUATORS, Evaluator
from bsr_lightning.evaluation.length import LengthBaselines
from bsr_lightning.evaluation.report import strict_json, write_report
from bsr_lightning.files import atomic_write, claim_output_dir, record_outputs
from bsr_lightning.reward.scoring import ConversationScorer, load_reward_model

log = logging.getLogger(__name__)
OUTPUTS = ["scores.jsonl", "metrics.json", "report.md"]


def _chunks(rows: Iterator, size: int) -> Iterator[list]:
    while chunk := list(islice(rows, size)):
        yield chunk


def _parse(evaluator: Evaluator, row_id: int, where: str, row):
    if isinstance(row, RowError):
        raise row
    if not isinstance(row, dict):
        raise RowError(where, f"expected a JSON object, got {type(row).__name__}")
    evaluator.check_columns(row, where)
    return evaluator.parse(row, row_id, where)


def stream_scores(scorer: ConversationScorer, evaluator: Evaluator, rows: Iterator[tuple[str, dict]],
                  records_file, chunk_rows: int = 2048, progress: bool = True, bad_rows: str = "error",
                  lengths: LengthBaselines | None = None) -> dict:
    """Score ``(where, row)`` items chunk by chunk, writing one JSON record per row to ``records_file`` and
    returning ``evaluator.result()`` with ``bad_rows`` (count and first places) and, given ``lengths``, the
    length-only baselines under ``length``. At most ``chunk_rows`` rows (and their scores) are held at once; a bad
    row raises :class:`RowError` naming it, or with ``bad_rows='skip'`` is counted and left out."""
    bar = tqdm(desc="evaluate", unit="row", disable=not progress)
    skipped: list[str] = []
    rows_read = 0

    def bad(err: RowError) -> None:
        if bad_rows != "skip":
            raise RowError(err.where, f"{err.problem}. Fix the row, or pass --bad_rows skip to leave bad rows "
                                      "out (they are counted in metrics.json).") from None
        skipped.append(str(err))

    for chunk in _chunks(enumerate(rows), chunk_rows):
        items, wheres = [], []
        for row_id, (where, row) in chunk:
            try:
                items.append(_parse(evaluator, row_id, where, row))
                wheres.append(where)
            except RowError as err:
                bad(err)
        convs = [evaluator.conversations(item) for item in items]
        flat = [c for group in convs for c in group]
        scores, _, problems = scorer.score_each(flat, "chunk", groups=[len(group) for group in convs]) if flat \
            else (np.zeros(0), None, {})
        bounds = np.cumsum([0] + [len(group) for group in convs])
        tokens = lengths.lengths_of(flat) if lengths is not None else None
        for item, where, start, end in zip(items, wheres, bounds[:-1], bounds[1:], strict=True):
            unscorable = next((i for i in range(start, end) if i in problems), None)
            if unscorable is not None:
                bad(RowError(where, f"its conversation {unscorable - start + 1} of {end - start} cannot be scored: "
                                    f"{problems[unscorable]}"))
                continue
            records_file.write(json.dumps(strict_json(evaluator.update(item, scores[start:end]))) + "\n")
            if lengths is not None:
                lengths.update(item, scores[start:end], tokens[start:end])
        bar.update(len(chunk))
        rows_read += len(chunk)
    bar.close()
    result = {**evaluator.result(), "rows": rows_read, "bad_rows": {"skipped": len(skipped), "first": skipped[:5]}}
    return {**result, "length": lengths.result()} if lengths is not None else result


def _check_scored(metrics: dict, data: str, split: str) -> None:
    """A run with no rows, or only bad ones, is an error, never an empty report."""
    if not metrics["rows"]:
        raise DataError(f"{data}: no rows to evaluate (split {split!r}); give a file or dataset with rows.")
    if metrics["rows"] == metrics["bad_rows"]["skipped"]:
        raise DataError(f"{data}: all {metrics['rows']} rows are bad (first: {metrics['bad_rows']['first'][0]}); "
                        "nothing was scored. Fix the rows or --format.")


def fitting_max_length(module, given: int | None, default: int) -> int:
    """``given``, or the benchmark's ``default`` cut to the positions the model has (MiniLM: 512). A ``given`` value
    beyond them is a :class:`ConfigError` for learned absolute positions (BERT-like encoders, which cannot read
    further) and a warning otherwise (rotary decoders extrapolate)."""
    config = module.backbone.config
    positions = getattr(config, "max_position_embeddings", None) or default
    if given is not None and given > positions:
        learned = any(name.endswith(("position_embeddings", "wpe")) and isinstance(m, torch.nn.Embedding)
                      for name, m in module.backbone.named_modules())
        check(not learned, "max_length", f"{given} is more than the model's {positions} positions; pass "
                                         f"--max_length {positions} or less.")
        log.warning("max_length %d is more than the model's max_position_embeddings %d.", given, positions)
    if given is not None:
        return given
    if positions < default:
        log.warning("max_length: the benchmark's %d is more than the model's %d positions; using %d.", default,
                    positions, positions)
    return min(default, positions)


def evaluate(model: str, data: str, output_dir: str,
             format: Literal["pairs", "multi", "rewardbench", "rewardbench2", "rmbench"] = "pairs",
             split: str | None = None,
             batch_size: int = 16, max_length: int | None = None,
             overlong: Literal["drop", "truncate_left", "truncate_right"] = "truncate_left",
             device: str = "cpu", chunk_rows: int = 2048, bad_rows: Literal["error", "skip"] = "error",
             dtype: DType | None = None, overwrite: bool = False, allow_modules: list[str] | None = None,
             shared_prefix: bool = True) -> dict:
    """Evaluate a reward model on one dataset; writes ``metrics.json``, ``scores.jsonl`` and ``report.md``.

    Args:
        model: an exported Hugging Face directory (or hub id) or a Lightning ``.ckpt``.
        data: a local file (a glob, a directory, or several comma-separated) or a hub dataset id.
        output_dir: where the outputs go.
        format: ``pairs``, ``multi``, ``rewardbench``, ``rewardbench2`` or ``rmbench`` (see the module docstring).
        split: the hub split to read; default the benchmark's own (``filtered`` for RewardBench), else ``train``.
        batch_size: sequences per forward pass (scores do not depend on it).
        max_length: the longest sequence in tokens; default the benchmark's own (2048 for RewardBench and
            RM-Bench, as their scripts), else 512, cut to the model's positions (a warning says so).
        overlong: the over-long policy, as in training; counts go into the report.
        device: ``cpu`` or ``cuda``.
        chunk_rows: rows read, scored and written at a time; memory is bounded by it, not by the dataset size.
        bad_rows: ``error`` stops at the first bad row naming it; ``skip`` leaves bad rows out and counts them in
            ``metrics.json`` (``bad_rows``), as training's ``data.bad_rows`` does.
        dtype: cast the weights to ``bfloat16``, ``float16`` or ``float32``; None keeps the model's.
        overwrite: write into a folder that holds files evaluate did not write (only its three outputs are
            replaced); an input file is never written over.
        allow_modules: modules of yours that a ``.ckpt`` model may name (a custom regularizer); only bsr_lightning's
            classes are imported from a checkpoint otherwise.
        shared_prefix: score a row's responses (a pair, RM-Bench's six, a ``multi`` row's k) in one pass with their
            shared prompt computed once, for decoder reward models (``sdpa``, ``eager`` or ``flex_attention``); the
            scores equal scoring each response alone. False scores each alone.
    """
    check(batch_size >= 1, "batch_size", f"must be at least 1, got {batch_size}.")
    check(chunk_rows >= 1, "chunk_rows", f"must be at least 1, got {chunk_rows}.")
    check(max_length is None or max_length >= 2, "max_length", f"must be at least 2 tokens, got {max_length}.")
    out = claim_output_dir(output_dir, OUTPUTS, [*(local_files(data) or []), model], overwrite, "evaluate")
    evaluator = EVALUATORS[format](data)
    split = split or evaluator.default_split
    module = load_reward_model(model, dtype, allow_modules).to(device)
    max_length = fitting_max_length(module, max_length, evaluator.default_max_length)
    scorer = ConversationScorer(module, batch_size, max_length, overlong, progress=False, shared_prefix=shared_prefix,
                                special_tokens=evaluator.special_tokens)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:  # scores stream into a new temporary file, renamed onto scores.jsonl only when every row is scored
        with atomic_write(out / "scores.jsonl") as records:
            lengths = LengthBaselines(lambda: EVALUATORS[format](data), module.tokenizer, scorer.encoder.cap_characters)
            metrics = stream_scores(scorer, evaluator, evaluator.rows(data, split), records, chunk_rows,
                                    bad_rows=bad_rows, lengths=lengths)
            _check_scored(metrics, data, split)
    except BaseException:
        if created and not any(out.iterdir()):
            out.rmdir()  # a failed run leaves no empty folder of its own
        raise
    metrics["length_policy"] = {"max_length": max_length, "overlong": overlong, **scorer.counts}
    write_report(out, metrics, f"{format} evaluation of {model} on {data}")
    record_outputs(out, OUTPUTS)
    print(f"evaluate: wrote {', '.join(OUTPUTS)} to {out}", file=sys.stderr)
    return metrics
