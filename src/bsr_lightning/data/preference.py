"""``PreferenceDataModule``: preference pairs from local files or the hub, validated, tokenized, batched."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from bsr_lightning.backbones.tokenizers import load_tokenizer
from bsr_lightning.chat_templates import resolve_template
from bsr_lightning.data.collate import LengthGroupedSampler, PairCollator, PairDataset
from bsr_lightning.data.encoding import Overlong, PairEncoder
from bsr_lightning.data.formats import PreferencePair, RowError, row_to_pair
from bsr_lightning.data.loading import iter_raw_rows, local_files
from bsr_lightning.data.resumable import EpochShuffleSampler, ResumableData, rng_free_loader
from bsr_lightning.errors import ConfigError, DataError, check, check_choice

log = logging.getLogger(__name__)
BadRows = Literal["error", "skip"]


def collect_rows(raw_rows, parse, bad_rows: BadRows = "error", name: str = "data", require: bool = True
                 ) -> tuple[list, int]:
    """Validate ``(where, row)`` items with ``parse(row, row_id, where)``; returns the parsed items and the number of
    bad rows. ``bad_rows='error'`` stops at the first bad row with a message naming it; ``'skip'`` skips bad rows
    and logs how many, with the first places. ``require`` raises when nothing usable is left."""
    items, bad, row_id = [], [], -1
    for row_id, (where, row) in enumerate(raw_rows):
        try:
            if isinstance(row, RowError):
                raise row
            items.append(parse(row, row_id, where))
        except RowError as err:
            if bad_rows == "error":
                raise RowError(err.where, f"{err.problem}. Fix the row, or pass `--data.init_args.bad_rows skip` to "
                                          "skip bad rows (they are counted and reported).") from None
            bad.append(err)
    if bad:
        first = "; ".join(str(e) for e in bad[:5])
        log.warning("%s: skipped %d bad rows of %d (bad_rows='skip'). First: %s", name, len(bad), row_id + 1, first)
    if require and not items:
        raise DataError(f"{name}: no usable rows ({row_id + 1} read, {len(bad)} bad).")
    return items, len(bad)


def collect_pairs(raw_rows, bad_rows: BadRows = "error", name: str = "data") -> list[PreferencePair]:
    """:func:`collect_rows` into preference pairs (at least one)."""
    return collect_rows(raw_rows, row_to_pair, bad_rows, name)[0]


def module_tokenizer(datamodule: L.LightningDataModule, name: str | None, chat_template: str | None = None):
    """The tokenizer a DataModule encodes with: loaded from ``name``, else the attached module's ``tokenizer``;
    ``chat_template`` (inline or ``.jinja`` path) replaces its template."""
    if name is not None:
        return load_tokenizer(name, chat_template)
    module = datamodule.trainer.lightning_module if datamodule.trainer is not None else None
    if getattr(module, "tokenizer", None) is None:
        raise ConfigError(f"{type(datamodule).__name__} has no tokenizer: set `tokenizer`, or attach it to a module "
                         "that has one (RewardModel, SFTModel and RLOOPolicy do).")
    if chat_template is not None:
        module.tokenizer.chat_template = resolve_template(chat_template, "data.chat_template")
    return module.tokenizer


def check_loader_args(batch_size: int, max_length: int, num_workers: int, val_fraction: float, bad_rows: str) -> None:
    """Config values every DataModule shares, checked at construction with the config key named."""
    check(batch_size >= 1, "data.batch_size", f"must be at least 1, got {batch_size}.")
    check(max_length >= 1, "data.max_length", f"must be at least 1 token, got {max_length}.")
    check(num_workers >= 0, "data.num_workers", f"must be 0 or more, got {num_workers}.")
    check(0.0 <= val_fraction < 1.0, "data.val_fraction", f"must be in [0, 1), got {val_fraction}.")
    check_choice(bad_rows, BadRows, "data.bad_rows")


def require_rows(kept: list, split: str, counts: dict, max_length: int, overlong: str) -> None:
    """Stop before training when filtering left ``split`` empty, with what happened to its rows."""
    if kept:
        return
    parts = [f"{counts.get('rows', '?')} rows read", f"{counts.get('bad_rows', 0)} bad"]
    if "held_out_for_validation" in counts:
        parts.append(f"{counts['held_out_for_validation']} held out for validation")
    parts += [f"{counts.get('dropped_overlong', 0)} dropped as longer than max_length={max_length} (overlong: "
              f"{overlong})", f"{counts.get('dropped_identical_after_truncation', 0)} identical after truncation",
              f"{counts.get('bad_identical_tokens', 0)} with identical tokens"]
    raise DataError(f"{split} data: nothing left after filtering: {', '.join(parts)}. Raise `data.max_length`, use "
                    "`overlong: truncate_left`, or check the data.")


def rename_columns(rows, columns: dict[str, str]):
    """``(where, row)`` items with each dict row's keys renamed by ``columns`` (your name -> the package's)."""
    for where, row in rows:
        yield where, ({columns.get(k, k): v for k, v in row.items()} if isinstance(row, dict) else row)


def carve_validation(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """Split ``items`` into (train, validation) with a seeded ``fraction`` (at least one) held out, order kept."""
    order = np.random.default_rng(seed).permutation(len(items))
    held = set(order[: max(1, round(fraction * len(items)))].tolist())
    return [x for i, x in enumerate(items) if i not in held], [x for i, x in enumerate(items) if i in held]


class PreferenceDataModule(ResumableData, L.LightningDataModule):
    """Preference pairs for reward-model training.

    Args:
        path: local file(s) (``.jsonl``, ``.jsonl.gz``, ``.json``, ``.parquet``, ``.csv``; a glob, a directory or
            comma-separated) or a hub dataset id.
        name: the hub dataset's config name.
        data_dir: the hub dataset's data directory (e.g. ``harmless-base`` for ``Anthropic/hh-rlhf``).
        split: the split to train on.
        val_path: a separate validation file or hub id; else ``val_split`` of ``path``; else a seeded
            ``val_fraction`` carved from the training rows.
        val_split: a validation split of a hub ``path`` (e.g. ``test``); ignored for local files.
        val_fraction: the fraction carved out when no validation data is given (0 for none).
        test_path: data for ``test``/``predict``; the validation data when None.
        tokenizer: tokenizer name or path; None takes the model's (``trainer.lightning_module.tokenizer``).
        chat_template: a chat template replacing the tokenizer's: inline Jinja, ``zephyr``, ``plain`` or a file.
        max_length: the longest sequence in tokens.
        overlong: what to do with longer pairs: ``drop``, ``truncate_left`` or ``truncate_right`` (counts logged).
        bad_rows: ``error`` stops at the first bad row; ``skip`` skips and counts them.
        batch_size: pairs per training micro-batch (the forward pass sees twice as many sequences).
        eval_batch_size: pairs per evaluation batch; ``batch_size`` when None.
        group_by_length: batch pairs of similar length together (less padding).
        num_workers: DataLoader workers.
        seed: seed of the validation carve and the length grouping.
        max_pairs: keep only the first N training rows (quick experiments).
        columns: your column names mapped to the package's, e.g. ``{question: prompt, response_chosen: chosen,
            response_rejected: rejected}``, applied to every row read (files, hub datasets, ``rows``).
        rows: in-memory training rows instead of ``path``, from Python: a list of dicts or a ``datasets.Dataset``
            (not saved in checkpoints or hparams; pass them again to resume).

    Subclasses read other row shapes by overriding :attr:`parse_row`, :meth:`encode_split` and :meth:`collator`
    (:class:`~bsr_lightning.data.listwise.ListwiseDataModule`).
    """

    parse_row = staticmethod(row_to_pair)

    def __init__(
        self,
        path: str | None = None,
        name: str | None = None,
        data_dir: str | None = None,
        split: str = "train",
        val_path: str | None = None,
        val_split: str | None = None,
        val_fraction: float = 0.05,
        test_path: str | None = None,
        tokenizer: str | None = None,
        chat_template: str | None = None,
        max_length: int = 512,
        overlong: Overlong = "drop",
        bad_rows: BadRows = "error",
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        group_by_length: bool = False,
        num_workers: int = 0,
        seed: int = 0,
        max_pairs: int | None = None,
        columns: dict[str, str] | None = None,
        rows: Sequence[dict] | None = None,
    ) -> None:
        super().__init__()
        check(max_pairs is None or max_pairs >= 1, "data.max_pairs", f"must be at least 1 (or null for all), got "
                                                                     f"{max_pairs}.")
        check_loader_args(batch_size, max_length, num_workers, val_fraction, bad_rows)
        check(eval_batch_size is None or eval_batch_size >= 1, "data.eval_batch_size",
              f"must be at least 1 (or null), got {eval_batch_size}.")
        self.save_hyperparameters(ignore=["rows"])
        self.rows = rows
        self.tokenizer = None
        self.datasets: dict[str, PairDataset] = {}
        self.counts: dict[str, dict[str, int]] = {}

    def read_pairs(self, stage: str) -> list[PreferencePair]:
        """Validated pairs of ``stage`` (``train``, ``val`` or ``test``); ``[]`` when it has no own source."""
        if self.hparams.path is None and self.rows is None:
            raise ConfigError("data.path: PreferenceDataModule needs `path` (a local file or a hub dataset id).")
        if self.rows is not None:
            source = "rows"
            rows = ((f"rows[{i}]", row) for i, row in enumerate(self.rows)) if stage == "train" else None
        else:
            source, split = self._source(stage)
            rows = None if source is None else iter_raw_rows(source, self.hparams.name, self.hparams.data_dir, split)
        if rows is None:
            return []
        if self.hparams.columns:
            rows = rename_columns(rows, self.hparams.columns)
        pairs, bad = collect_rows(rows, self.parse_row, self.hparams.bad_rows, f"{stage} data {source}")
        self.counts[stage] = {"rows": len(pairs) + bad, "bad_rows": bad}
        return pairs[: self.hparams.max_pairs] if stage == "train" and self.hparams.max_pairs else pairs

    def _source(self, stage: str) -> tuple[str | None, str]:
        """Where ``stage`` reads from. ``val_split`` names a split of a hub dataset; local files have no splits, so
        the validation set of a local ``path`` without ``val_path`` is carved from it."""
        hp = self.hparams
        if stage == "train":
            return hp.path, hp.split
        if stage == "val" and hp.val_path:
            return hp.val_path, hp.val_split or "train"
        if stage == "val" and hp.val_split and local_files(hp.path) is None:
            return hp.path, hp.val_split
        if stage == "test" and hp.test_path:
            return hp.test_path, "test" if local_files(hp.test_path) is None else "train"
        return None, "train"

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.tokenizer = self.tokenizer or module_tokenizer(self, self.hparams.tokenizer, self.hparams.chat_template)
        train = self.read_pairs("train")
        val = self.read_pairs("val")
        if not val and self.hparams.val_fraction > 0:
            train, val = carve_validation(train, self.hparams.val_fraction, self.hparams.seed)
            self.counts["train"]["held_out_for_validation"] = len(val)
        encoder = PairEncoder(self.tokenizer, self.hparams.max_length, self.hparams.overlong, self.hparams.bad_rows)
        for split, pairs in (("train", train), ("val", val), ("test", self.read_pairs("test"))):
            if pairs:
                dataset, counts = self.encode_split(encoder, pairs, split)
                self.counts[split] = {**self.counts.get(split, {}), **counts}
                require_rows(dataset, split, self.counts[split], self.hparams.max_length, self.hparams.overlong)
                self.datasets[split] = dataset
        self.datasets.setdefault("test", self.datasets.get("val"))

    def encode_split(self, encoder: PairEncoder, items: list, split: str) -> tuple[PairDataset, dict]:
        """The dataset of ``split``'s parsed rows and the encoder's counts."""
        encoded, counts = encoder.encode(items, split)
        return PairDataset(encoded), counts

    def collator(self):
        """What stacks a batch of the dataset's items into tensors."""
        return PairCollator(self.tokenizer.pad_token_id, self.tokenizer.padding_side)

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        dataset = self.datasets.get(split)
        if dataset is None:
            return []
        hp = self.hparams
        collate = self.collator()
        if not train:
            return rng_free_loader(dataset, batch_size=hp.eval_batch_size or hp.batch_size, collate_fn=collate,
                              num_workers=hp.num_workers)
        sampler = (LengthGroupedSampler(dataset.lengths(), hp.batch_size, hp.seed) if hp.group_by_length
                   else EpochShuffleSampler(len(dataset), hp.seed))
        return self.resumable_loader(dataset, sampler, hp.batch_size, collate_fn=collate, num_workers=hp.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
