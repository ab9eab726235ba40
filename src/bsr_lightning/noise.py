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
