"""User errors: what went wrong, where, and what to do. The command line prints them as one short block and exits
with status 2; program bugs keep their tracebacks (``BSR_LIGHTNING_TRACEBACK=1`` shows one for any error).

A leaf module: everything may raise these, nothing here imports the package.
"""

from __future__ import annotations

TRACEBACK_ENV = "BSR_LIGHTNING_TRACEBACK"


class UserError(Exception):
    """An error in the user's input (data, config, paths), not in the program."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work. The message names the config key and what is allowed."""


class DataError(UserError, ValueError):
    """Data that cannot be used as a whole: an unreadable file, an empty split after filtering."""


class PathNotFound(UserError, FileNotFoundError):
    """A path named in a config or on the command line does not exist."""


class RowError(UserError, ValueError):
    """A row that cannot be used. ``where`` locates it (``file:line`` or ``file row N``)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


def check(condition: bool, key: str, message: str) -> None:
    """Raise :class:`ConfigError` ``"{key}: {message}"`` unless ``condition``."""
    if not condition:
        raise ConfigError(f"{key}: {message}")
