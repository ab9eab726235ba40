"""``{class_path, init_args}`` descriptions of objects, so checkpoints rebuild them without pickling code."""

from __future__ import annotations

import importlib
import inspect
from typing import Any


def object_spec(obj: Any) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` of ``obj``: the init parameters it stores under the same attribute name."""
    params = inspect.signature(type(obj).__init__).parameters
    init_args = {name: getattr(obj, name) for name in params if name != "self" and hasattr(obj, name)}
    return {"class_path": f"{type(obj).__module__}.{type(obj).__qualname__}", "init_args": init_args}


def import_class(class_path: str) -> type:
    """The class named by a dotted ``module.Class`` path."""
    module_name, _, class_name = class_path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def instantiate_spec(value: Any) -> Any:
    """Build the object a spec describes; any other value is returned unchanged."""
    if not (isinstance(value, dict) and "class_path" in value):
        return value
    return import_class(value["class_path"])(**value.get("init_args", {}))
