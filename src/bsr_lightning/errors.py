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
    """Import the optional package ``module`` from its installed distribution, or stop with :class:`MissingExtra`
    (the pip command to run). The working directory is off ``sys.path`` while it is found and imported, and what is
    found must lie in the files of a distribution that provides it: a ``peft.py`` or ``bitsandbytes/`` in the
    current folder (which ``python -m`` puts first on the path) never runs, whatever a checkpoint asks for."""
    import importlib
    import importlib.metadata
    import importlib.util
    import os
    import sys
    from pathlib import Path

    extra = EXTRAS.get(module)
    command = f"pip install 'bsr_lightning[{extra}]'" if extra else f"pip install {module}"
    saved, here = list(sys.path), os.getcwd()
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]  # '', '.' and the cwd itself
    try:
        spec = importlib.util.find_spec(module)  # an imported module's own spec: it is checked as well
        if spec is None:
            raise MissingExtra(f"{needed_for} needs the optional package {module!r}, which is not installed. "
                               f"Install it with: {command}")
        origin = Path(spec.origin or next(iter(spec.submodule_search_locations or []), "")).resolve()
        roots = [Path(importlib.metadata.distribution(d).locate_file("")).resolve()
                 for d in importlib.metadata.packages_distributions().get(module, [])]
        if not any(origin.is_relative_to(root) for root in roots):
            raise MissingExtra(f"{needed_for} needs the optional package {module!r}, but {origin} is not part of an "
                               f"installed distribution (a module in the working directory or on PYTHONPATH is never "
                               f"imported in its place). Install it with: {command}")
        importlib.import_module(module)
    finally:
        sys.path[:] = saved
