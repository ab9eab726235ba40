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


def check_choice(value, choices, key: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of the ``Literal`` type ``choices`` (``typing.get_args``:
    the allowed values are written once, in the type)."""
    from typing import get_args

    allowed = get_args(choices)
    if value not in allowed:
        raise ConfigError(f"{key}: must be one of {', '.join(map(repr, allowed))}, got {value!r}.")


class MissingExtra(UserError, ImportError):
    """An optional dependency is not installed; the message gives the exact pip command."""


EXTRAS = {"matplotlib": "plots", "bitsandbytes": "quant", "peft": "lora", "litserve": "serve", "wandb": "wandb",
          "mlflow": "mlflow", "vllm": "vllm",
          "tensorboard": "tensorboard"}
"""Import name -> the ``bsr_lightning`` extra that installs it."""


def require(module: str, needed_for: str) -> None:
    """Stop with :class:`MissingExtra` (the pip command to run) unless ``module`` can be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        extra = EXTRAS.get(module)
        command = f"pip install 'bsr_lightning[{extra}]'" if extra else f"pip install {module}"
        raise MissingExtra(f"{needed_for} needs the optional package {module!r}, which is not installed. "
                           f"Install it with: {command}")
