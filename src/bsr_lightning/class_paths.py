"""``{class_path, init_args}`` descriptions of objects, so checkpoints rebuild them without pickling code."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Iterable
from typing import Any

from bsr_lightning.errors import ConfigError

PLAIN = (str, int, float, bool, type(None))


def object_spec(obj: Any) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` of ``obj``: the init parameters it stores under the same attribute name."""
    params = inspect.signature(type(obj).__init__).parameters
    init_args = {name: plain(getattr(obj, name)) for name in params if name != "self" and hasattr(obj, name)}
    return {"class_path": f"{type(obj).__module__}.{type(obj).__qualname__}", "init_args": init_args}


def plain(value: Any) -> Any:
    """``value`` as plain data for a checkpoint's hyperparameters: dataclasses as dicts, components as
    :func:`object_spec`, lists and tuples element-wise."""
    if isinstance(value, PLAIN) or isinstance(value, dict):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    return object_spec(value)


def import_class(class_path: str) -> type:
    """The class named by a dotted ``module.Class`` path."""
    module_name, _, class_name = class_path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def import_subclass(class_path: str, base: type, where: str) -> type:
    """The class at ``class_path``, which must subclass ``base``; ``where`` names the config key in the message.
    Only for class paths the user wrote: paths read from files go through :func:`check_file_class_paths` first."""
    try:
        cls = import_class(class_path)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"{where}: cannot import {class_path!r} ({err}); give a class path such as "
                          f"'{base.__module__}.{base.__qualname__}'.") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{where}: {class_path!r} is not a subclass of {base.__module__}.{base.__qualname__}.")
    return cls


OURS = "bsr_lightning"
CODE_KEYS = {"class_path": ".", "_class_path": ".", "import_path": ":"}
"""Keys of saved hyper-parameters whose values name code to import, and the separator before the attribute."""


def _module_allowed(module: str, allow_modules: Iterable[str]) -> bool:
    return any(module == m or module.startswith(m + ".") for m in (OURS, *allow_modules))


def check_file_class_paths(value: Any, where: str, allow_modules: Iterable[str] = ()) -> None:
    """Refuse, before anything is imported, every class path or ``module:function`` in ``value`` (hyper-parameters
    read from a checkpoint) whose module is neither this package's nor one the user named in this run
    (``allow_modules``): a file never decides what code runs. Walks nested dicts and lists."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in CODE_KEYS and isinstance(item, str):
                module = item.rpartition(CODE_KEYS[key])[0] if CODE_KEYS[key] == "." else item.partition(":")[0]
                if not _module_allowed(module, allow_modules):
                    raise ConfigError(
                        f"{where}: names {item!r} ({key}), outside bsr_lightning; code a checkpoint names is not "
                        f"imported. If you wrote that module and trust this file, pass --allow_modules "
                        f"'[{module.partition('.')[0]}]'.")
            else:
                check_file_class_paths(item, where, allow_modules)
    elif isinstance(value, list | tuple):
        for item in value:
            check_file_class_paths(item, where, allow_modules)
