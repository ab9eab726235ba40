"""User errors: what went wrong, where, and what to do. The command line prints them as one short block and exits
with status 2; program bugs keep their tracebacks (``BSR_LIGHTNING_TRACEBACK=1`` shows one for any error).

A leaf module: everything may raise these, nothing here imports the package.
"""

from __future__ import annotations

import errno
import os

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


UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}
BAD_PATH = {errno.ENOENT, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP}
MAX_MESSAGE = 2000


def user_error_in(err: BaseException) -> UserError | None:
    """The :class:`UserError` behind ``err`` (jsonargparse wraps errors raised while it builds classes), or None
    for a program bug. Besides the package's own, these are the user's to fix, whoever raised them: a write the
    system refuses (no permission, read-only, disk full), a path that cannot be one (a folder where a file goes, a
    name too long, a link to nothing, a NUL byte), and a Trainer setting Lightning refuses. A message over
    :data:`MAX_MESSAGE` characters is cut there, saying how much was left out."""
    seen = set()
    while err is not None and id(err) not in seen:
        if (found := _as_user_error(err)) is not None:
            text = str(found)
            return found if len(text) <= MAX_MESSAGE else UserError(
                f"{text[:MAX_MESSAGE]}... ({len(text) - MAX_MESSAGE:,} more characters)")
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _as_user_error(err: BaseException) -> UserError | None:
    if isinstance(err, UserError):
        return err
    if isinstance(err, OSError) and err.errno in UNWRITABLE:
        return UserError(f"cannot write {err.filename or 'a file'}: {err.strerror}. Free some space, or choose a "
                         "writable --output_dir (or trainer.default_root_dir).")
    if isinstance(err, OSError) and err.errno in BAD_PATH and err.filename is not None:
        name = str(err.filename)[:300]
        link = f" (a link to {os.readlink(err.filename)}, which does not exist)" if _dangling(err.filename) else ""
        return UserError(f"{name}{link}: {err.strerror}. Check the path in the command line or config.")
    if isinstance(err, RuntimeError) and "file write failed" in str(err):  # torch.save on a full disk
        return UserError(f"cannot write a checkpoint ({str(err).splitlines()[0][:200]}): the disk is full or "
                         "unwritable. Free some space, or choose another trainer.default_root_dir.")
    if isinstance(err, ValueError) and "embedded null byte" in str(err):
        return UserError("a path holds a NUL byte (\\0); remove it from the path in the command line or config.")
    if type(err).__name__ == "MisconfigurationException":  # Lightning's refusal of a Trainer setting
        return UserError(f"trainer: {str(err).splitlines()[0]}")
    return None


def _dangling(path) -> bool:
    try:
        return os.path.islink(path) and not os.path.exists(path)
    except (OSError, ValueError, TypeError):
        return False
