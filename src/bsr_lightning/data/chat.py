"""Prompts and supervised (prompt, response) examples for policy training: parsing rows, tokenizing with the chat
template, a shared DataModule skeleton.

Row formats: a ``prompt`` column (string, HH transcript or messages), preference rows (the prompt part of
``chosen``/``rejected``; SFT takes the chosen response), or a ``messages`` column (SFT: the last message is the
response).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from bsr_lightning.backbones.tokenizers import chat_text, template_writes_specials
from bsr_lightning.data.formats import Message, RowError, as_messages, check_turn_order, row_to_pair
from bsr_lightning.data.loading import iter_raw_rows
from bsr_lightning.data.preference import (
    BadRows,
    carve_validation,
    check_loader_args,
    collect_rows,
    module_tokenizer,
    require_rows,
)
from bsr_lightning.data.resumable import EpochShuffleSampler, ResumableData, rng_free_loader
from bsr_lightning.errors import ConfigError, check

log = logging.getLogger(__name__)


@dataclass
class ChatExample:
    """A prompt (and for SFT a response), with token ids ``(T,)`` and the number of prompt tokens."""

    row_id: int
    where: str
    prompt: list[Message]
    response: list[Message] = field(default_factory=list)
    input_ids: np.ndarray | None = None
    prompt_length: int = 0


def _check_prompt(prompt: list[Message], where: str) -> list[Message]:
    if prompt[-1]["role"] != "user":
        raise RowError(where, f"the prompt must end with a user message, ends with '{prompt[-1]['role']}'")
    check_turn_order(prompt, "prompt", where)
    return prompt


def parse_chat_row(row, row_id: int, where: str, with_response: bool) -> ChatExample:
    """One raw row as a :class:`ChatExample`; raises :class:`RowError` naming ``where``."""
    if not isinstance(row, dict):
        raise RowError(where, f"expected a JSON object, got {type(row).__name__}")
    if "chosen" in row and "rejected" in row:
        pair = row_to_pair(row, row_id, where)
        prompt, response = pair.prompt, pair.chosen
    elif "messages" in row:
        messages = as_messages(row["messages"], "messages", where, "user")
        prompt, response = (messages[:-1], messages[-1:]) if with_response else (messages, [])
    elif "prompt" in row and row["prompt"] is not None:
        prompt = as_messages(row["prompt"], "prompt", where, "user")
        column = next((c for c in ("response", "completion") if c in row), None)
        response = as_messages(row[column], column, where, "assistant") if with_response and column else []
    else:
        raise RowError(where, f"no 'prompt', 'messages' or 'chosen'/'rejected' column (columns: {sorted(row)})")
    if not prompt:
        raise RowError(where, "the prompt is empty")
    if with_response and (not response or response[-1]["role"] != "assistant"):
        raise RowError(where, "no assistant response to train on (SFT needs one after the prompt)")
    return ChatExample(row_id, where, _check_prompt(prompt, where), response if with_response else [])


def render_ids(tokenizer, messages: list[Message], generation_prompt: bool) -> list[int]:
    """Token ids of ``messages`` through the chat template (plain ``Human:``/``Assistant:`` text without one)."""
    text = chat_text(tokenizer, messages, generation_prompt)
    return tokenizer(text, add_special_tokens=not template_writes_specials(tokenizer))["input_ids"]


def encode_example(tokenizer, example: ChatExample, max_length: int) -> ChatExample | None:
    """Fill ``input_ids`` and ``prompt_length``; None when longer than ``max_length`` (callers count it)."""
    prompt_ids = render_ids(tokenizer, example.prompt, generation_prompt=True)
    ids = prompt_ids
    if example.response:
        ids = render_ids(tokenizer, example.prompt + example.response, generation_prompt=False)
        if ids[: len(prompt_ids)] != prompt_ids:
            raise RowError(example.where, "the chat template renders the prompt differently with and without the "
                                          "response, so response tokens cannot be located; use a template whose "
                                          "generation prompt is a prefix of the full conversation")
        while ids and tokenizer.decode(ids[-1:]).strip() == "":  # trailing whitespace tokens after the turn
            ids = ids[:-1]
        if ids[-1] != tokenizer.eos_token_id:
            ids = [*ids, tokenizer.eos_token_id]  # the policy must learn to stop
    if len(ids) > max_length:
        return None
    example.input_ids, example.prompt_length = np.asarray(ids, np.int64), len(prompt_ids)
    return example


class ChatDataModule(ResumableData, L.LightningDataModule):
    """Shared skeleton of :class:`PromptDataModule` and :class:`SFTDataModule`: read, validate, carve a validation
    split, tokenize with the module's tokenizer, batch.

    Args:
        path: local file(s) or a hub dataset id.
        name: the hub dataset's config name.
        data_dir: the hub dataset's data directory.
        split: the split to read.
        val_path: a separate validation file; else a seeded ``val_fraction`` of ``path``.
        val_fraction: the fraction carved out when no ``val_path`` is given (0 for none).
        tokenizer: tokenizer name or path; None takes the module's.
        max_length: the longest example in tokens; longer ones are dropped and counted (never cut silently).
        bad_rows: ``error`` stops at the first bad row; ``skip`` skips and counts them.
        batch_size: examples (prompts) per batch.
        num_workers: DataLoader workers.
        seed: seed of the validation carve and shuffling.
        max_rows: keep only the first N training rows.
    """

    with_response = False

    def __init__(self, path: str | None = None, name: str | None = None, data_dir: str | None = None,
                 split: str = "train", val_path: str | None = None, val_fraction: float = 0.05,
                 tokenizer: str | None = None, max_length: int = 512, bad_rows: BadRows = "error",
                 batch_size: int = 8, num_workers: int = 0, seed: int = 0, max_rows: int | None = None) -> None:
        super().__init__()
        check_loader_args(batch_size, max_length, num_workers, val_fraction, bad_rows)
        check(max_rows is None or max_rows >= 1, "data.max_rows", f"must be at least 1 (or null), got {max_rows}.")
        self.save_hyperparameters()
        self.tokenizer = None
        self.datasets: dict[str, list[ChatExample]] = {}
        self.counts: dict[str, dict[str, int]] = {}

    def read_rows(self, stage: str):
        """``(where, row)`` items of ``stage`` (``train`` or ``val``); empty when it has no own source."""
        if self.hparams.path is None:
            raise ConfigError(f"data.path: {type(self).__name__} needs `path` (a local file or a hub dataset id).")
        source = self.hparams.path if stage == "train" else self.hparams.val_path
        return iter_raw_rows(source, self.hparams.name, self.hparams.data_dir, self.hparams.split) if source else []

    def _examples(self, stage: str) -> list[ChatExample]:
        def parse(row, row_id: int, where: str) -> ChatExample:
            return parse_chat_row(row, row_id, where, self.with_response)

        examples, bad = collect_rows(self.read_rows(stage), parse, self.hparams.bad_rows, stage, require=False)
        self.counts[stage] = {"rows": len(examples) + bad, "bad_rows": bad}
        return examples[: self.hparams.max_rows] if stage == "train" and self.hparams.max_rows else examples

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.tokenizer = self.tokenizer or module_tokenizer(self, self.hparams.tokenizer)
        train, val = self._examples("train"), self._examples("val")
        if not val and self.hparams.val_fraction > 0:
            train, val = carve_validation(train, self.hparams.val_fraction, self.hparams.seed)
            self.counts["train"]["held_out_for_validation"] = len(val)
        for split, examples in (("train", train), ("val", val)):
            encoded = [encode_example(self.tokenizer, e, self.hparams.max_length) for e in examples]
            kept = [e for e in encoded if e is not None]
            self.counts.setdefault(split, {})["dropped_overlong"] = len(encoded) - len(kept)
            if len(kept) < len(encoded):
                log.warning("%s: dropped %d of %d examples longer than max_length=%d tokens.", split,
                            len(encoded) - len(kept), len(encoded), self.hparams.max_length)
            if examples or split == "train":  # training needs rows; validation only when it has a source
                require_rows(kept, split, self.counts.get(split, {}), self.hparams.max_length, "drop")
                self.datasets[split] = kept

    def collate(self, examples: list[ChatExample]) -> dict:
        raise NotImplementedError

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            return []
        hp = self.hparams
        if not shuffle:
            return rng_free_loader(self.datasets[split], batch_size=hp.batch_size, collate_fn=self.collate,
                              num_workers=hp.num_workers)
        return self.resumable_loader(self.datasets[split], EpochShuffleSampler(len(self.datasets[split]), hp.seed),
                                     hp.batch_size, collate_fn=self.collate, num_workers=hp.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)
