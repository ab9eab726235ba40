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


def test_litserve_monitor_crash_at_shutdown_is_dropped_only_when_the_manager_is_gone():
    from bsr_lightning.serving.server import _ManagerGoneAtShutdown

    def record(error: BaseException, msg: str = "Monitoring worker crashed") -> logging.LogRecord:
        return logging.LogRecord("litserve.server", logging.ERROR, __file__, 1, msg, (), (type(error), error, None))

    keep = _ManagerGoneAtShutdown().filter
    assert not keep(record(BrokenPipeError(32, "Broken pipe")))  # LitServe's own shutdown race
    assert keep(record(ValueError("a real crash of the monitor")))
    assert keep(record(BrokenPipeError(32, "Broken pipe"), "something else"))
