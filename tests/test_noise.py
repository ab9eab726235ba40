"""Known-harmless log records are dropped by exact prefix; every other record of the same loggers stays."""

import logging

from bsr_lightning.noise import HARMLESS_LOG_RECORDS, silence_known_noise


def test_harmless_records_are_dropped_and_others_kept():
    silence_known_noise()
    silence_known_noise()  # idempotent: one filter per logger
    for name, prefix in HARMLESS_LOG_RECORDS.items():
        logger = logging.getLogger(name)
        assert len([f for f in logger.filters if getattr(f, "prefix", None) == prefix]) == 1
        dropped = logger.makeRecord(name, logging.WARNING, __file__, 1, prefix + " (514 > 512)", (), None)
        kept = logger.makeRecord(name, logging.WARNING, __file__, 1, "something else", (), None)
        assert not logger.filter(dropped) and logger.filter(kept)
