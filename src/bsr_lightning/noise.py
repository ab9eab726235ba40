"""Known-harmless messages of other libraries, silenced in one place and by exact text, so every other warning
stays visible. Called by the command line (:func:`bsr_lightning.cli.cli_main`)."""

from __future__ import annotations

import logging
import warnings

HARMLESS_WARNINGS = (
    # RLOO checkpoints the state after each optimizer step on purpose (that is what a resume continues from)
    r"Using ModelCheckpoint with manual optimization and every_n_train_steps",
    # a deprecation inside Lightning's own _pytree helper (lightning 2.6 with torch 2.13), not in this package's code
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)


HARMLESS_LOG_RECORDS = {
    # every over-long sequence is cut by the DataModule's or scorer's `overlong` policy before the model sees it
    "transformers.tokenization_utils_base": "Token indices sequence length is longer than the specified maximum",
    # said after every checkpoint load; this package's own loads choose weights_only themselves
    "lightning.pytorch.trainer.connectors.checkpoint_connector": "`weights_only` was not set",
}


class _DropPrefix(logging.Filter):
    """Drop records whose message starts with ``prefix``; keep every other record."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


class _DropTips(logging.Filter):
    """Drop Lightning's advertising tips (litlogger, litmodels); keep every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


def silence_known_noise() -> None:
    """Install the filters once (idempotent)."""
    for message in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropTips) for f in logger.filters):
        logger.addFilter(_DropTips())
    for name, prefix in HARMLESS_LOG_RECORDS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropPrefix) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropPrefix(prefix))
