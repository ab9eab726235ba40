"""``{class_path, init_args}`` descriptions of objects, so checkpoints rebuild them without pickling code."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

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
    """The class at ``class_path``, which must subclass ``base``; ``where`` names the config key in the message."""
    try:
        cls = import_class(class_path)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{where}: cannot import {class_path!r} ({err}); give a class path such as "
                         f"'{base.__module__}.{base.__qualname__}'.") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{where}: {class_path!r} is not a subclass of {base.__module__}.{base.__qualname__}.")
    return cls
