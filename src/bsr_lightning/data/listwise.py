"""``ListwiseDataModule``: one prompt with k >= 2 scored responses per row (the paper's 4-response sets,
UltraFeedback's completions), each row one group in the batch, for
:class:`~bsr_lightning.reward.listwise.ListwiseRewardModel`.

Rows: ``{prompt (or instruction), responses: [...], scores: [...]}``, the paper's ``{response_1_text, ...,
all_scores}``, or ``{prompt, completions: [{response, score}, ...]}``
(:func:`~bsr_lightning.data.formats.responses_and_scores`). A batch of ``B`` rows is ``input_ids`` and
``attention_mask`` ``(N, T)`` with each row's responses together, ``group_sizes`` ``(B,)`` and ``scores`` ``(N,)``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from bsr_lightning.data.collate import PairDataset, pad_sequences
from bsr_lightning.data.encoding import PairEncoder
from bsr_lightning.data.formats import Message, RowError, as_messages, check_scored_conversation, responses_and_scores
from bsr_lightning.data.preference import PreferenceDataModule


@dataclass
class ResponseSet:
    """One row: a prompt and its scored responses."""

    row_id: int
    where: str
    prompt: list[Message]
    responses: list[list[Message]]
    scores: list[float]


def row_to_set(row: dict, row_id: int, where: str) -> ResponseSet:
    """Validate one listwise row; a :class:`RowError` names what is wrong."""
    if not isinstance(row, dict):
        raise RowError(where, f"expected a JSON object, got {type(row).__name__}")
    column = "prompt" if "prompt" in row else "instruction"
    prompt = as_messages(row.get(column), column, where, "user")
    responses, scores = responses_and_scores(row, where)
    if not isinstance(responses, list) or not isinstance(scores, list) or len(responses) != len(scores) \
            or len(responses) < 2:
        raise RowError(where, "needs 2 or more responses with as many scores ('responses'/'scores', "
                              "'response_k_text'/'all_scores', or 'completions')")
    for i, value in enumerate(scores):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise RowError(where, f"score {i} must be a finite number, got {value!r}")
    if len(set(scores)) < 2:
        raise RowError(where, "every response has the same score: the row orders nothing")
    replies = [as_messages(r, f"responses[{i}]", where, "assistant") for i, r in enumerate(responses)]
    for i, reply in enumerate(replies):
        check_scored_conversation(prompt + reply, f"responses[{i}]", where)
    return ResponseSet(row_id, where, prompt, replies, [float(s) for s in scores])


@dataclass
class EncodedSet:
    """Token ids of one row's responses (prompt included) ``(T_i,)`` and their scores."""

    row_id: int
    sequences: list[np.ndarray]
    scores: list[float]


class SetDataset(PairDataset):
    """A list of :class:`EncodedSet`."""

    def lengths(self) -> np.ndarray:
        """``(N,)`` the longest response of each row, in tokens."""
        return np.array([max(len(s) for s in item.sequences) for item in self.pairs])


def encode_sets(encoder: PairEncoder, sets: list[ResponseSet], split: str) -> tuple[SetDataset, Counter]:
    """Tokenize every response with its prompt under the over-long policy; a response dropped as over-long leaves
    its row (counted), a row left with fewer than 2 responses is dropped (``dropped_short_sets``), and a response
    that cannot be scored at all is a bad row (:class:`RowError` unless ``bad_rows: skip``)."""
    flat = [s.prompt + reply for s in sets for reply in s.responses]
    ids, counts, problems = encoder.encode_sequences(flat, split)
    counts = Counter({"rows": len(sets), **counts})
    kept, start = [], 0
    for item in sets:
        span = range(start, start + len(item.responses))
        start += len(item.responses)
        if any(i in problems for i in span):
            problem = next(problems[i] for i in span if i in problems)
            if encoder.bad_rows == "error":
                raise RowError(item.where, f"a response cannot be scored: {problem}")
            counts["bad_no_room"] += 1
            continue
        pairs = [(np.asarray(ids[i], np.int32), score) for i, score in zip(span, item.scores, strict=True)
                 if ids[i] is not None]
        if len(pairs) < 2:
            counts["dropped_short_sets"] += 1
            continue
        kept.append(EncodedSet(item.row_id, [p[0] for p in pairs], [p[1] for p in pairs]))
    return SetDataset(kept), counts


class SetCollator:
    """Stack B rows into one batch: ``input_ids``/``attention_mask`` ``(N, T)`` with each row's responses
    together, ``group_sizes`` ``(B,)``, ``scores`` ``(N,)`` and ``row_ids`` ``(B,)``."""

    def __init__(self, pad_id: int, padding_side: str = "right") -> None:
        self.pad_id, self.padding_side = pad_id, padding_side

    def __call__(self, sets: list[EncodedSet]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = pad_sequences([s for item in sets for s in item.sequences], self.pad_id,
                                                  self.padding_side)
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "group_sizes": torch.tensor([len(item.sequences) for item in sets], dtype=torch.long),
                "scores": torch.tensor([x for item in sets for x in item.scores], dtype=torch.float32),
                "row_ids": torch.tensor([item.row_id for item in sets], dtype=torch.long)}


class ListwiseDataModule(PreferenceDataModule):
    """Rows of one prompt with k >= 2 scored responses; the arguments are :class:`PreferenceDataModule`'s, with
    ``batch_size`` counting rows (prompts) and ``max_pairs`` the first N rows."""

    parse_row = staticmethod(row_to_set)

    def encode_split(self, encoder: PairEncoder, items: list, split: str) -> tuple[SetDataset, dict]:
        return encode_sets(encoder, items, split)

    def collator(self) -> SetCollator:
        return SetCollator(self.tokenizer.pad_token_id, self.tokenizer.padding_side)
