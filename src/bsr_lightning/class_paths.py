"""``{class_path, init_args}`` descriptions of objects, so checkpoints rebuild them without pickling code."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import operator
import types
import typing
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
    Only for class paths the user wrote: paths read from files go through :func:`check_module_hparams` first."""
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
IMPORT_FIELDS = {"optimizer": (".", ("torch.optim", "bitsandbytes.optim")), "import_path": (":", ())}
"""``str`` parameters whose value the package itself imports (``Optimization.optimizer``,
``FunctionReward.import_path``): the separator, and the libraries' packages whose modules they may also name."""


def module_allowed(module: str, allow_modules: Iterable[str] = (), packages: Iterable[str] = (OURS,)) -> bool:
    """True for the modules of ``packages`` (this package's by default) and for the modules named exactly in
    ``allow_modules`` (not a prefix: with ``my_regs`` allowed, ``my_regs_evil`` and ``my_regs.sub`` are not)."""
    return any(module == p or module.startswith(p + ".") for p in packages) or module in set(allow_modules)


def check_import_name(name: str, separator: str, where: str, allow_modules: Iterable[str] = (),
                      packages: Iterable[str] = ()) -> None:
    """The one gate for a name read from a file: refuse ``name`` (``module.Class`` or ``module:function``) unless its
    module is this package's, one of ``packages``' or named in ``allow_modules`` (:func:`module_allowed`), before
    anything is imported."""
    # 'module:attr' (jsonargparse reads it too, whatever the separator) or 'module.attr'
    module = name.partition(":")[0] if ":" in name or separator == ":" else name.rpartition(".")[0]
    if not module_allowed(module, allow_modules, (OURS, *packages)):
        raise ConfigError(
            f"{where}: names {name!r}, outside bsr_lightning; code a checkpoint or file names is not imported. If "
            f"you wrote that module and trust this file, pass --allow_modules '[{module}]'.")


def _may_import(annotation: Any) -> bool:
    """Whether jsonargparse may read a string at a parameter of this type as a class or function to import: any
    class type but plain data (str, numbers, bool, None, Literal; a dataclass counts, as jsonargparse reads a string
    there as a class path too), ``Callable`` and ``type[...]``."""
    if annotation in (inspect.Parameter.empty, Any, None):
        return False
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return False
    if origin in (typing.Union, types.UnionType, list, tuple, dict, set, frozenset, typing.Annotated):
        return any(_may_import(arg) for arg in typing.get_args(annotation) if arg is not Ellipsis)
    if isinstance(annotation, type) and issubclass(annotation, PLAIN):
        return False
    return True  # a class, a Callable, type[...], or an annotation left unresolved


def _hints(target: Any) -> dict[str, Any]:
    """Parameter annotations of a class's ``__init__`` (or a dataclass's fields), resolved where possible."""
    init = target.__init__ if isinstance(target, type) else target
    try:
        return typing.get_type_hints(init)
    except Exception:  # an unresolvable forward reference: keep the raw annotations (treated as importable)
        return {k: p.annotation for k, p in inspect.signature(init).parameters.items()}


def _element_type(annotation: Any) -> Any:
    """The annotation of a container's elements (for lists and tuples), or the annotation itself."""
    args = [a for a in typing.get_args(annotation) if a is not Ellipsis and a is not type(None)]
    if typing.get_origin(annotation) in (list, tuple, set, frozenset) and args:
        return functools.reduce(operator.or_, args)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, [_element_type(a) for a in args]) if args else Any
    return annotation


def _dataclass_in(annotation: Any) -> type | None:
    candidates = [annotation, *typing.get_args(annotation)]
    return next((c for c in candidates if isinstance(c, type) and dataclasses.is_dataclass(c)), None)


def check_file_hparams(value: Any, annotation: Any, where: str, allow_modules: Iterable[str] = ()) -> None:
    """The one gate for hyper-parameters read from a file (a checkpoint, a saved config): refuse, before anything is
    imported, every name of code in ``value`` whose module is neither this package's nor one the user named in this
    run. Checked: ``class_path``/``import_path`` in any dict, bare strings at any parameter whose type jsonargparse
    resolves by import (``regularizer: "evilmod.Foo"``), and the package's own import fields (``optimizer``),
    walking nested ``init_args``, dataclasses and lists along the classes' signatures. ``annotation`` is the type
    ``value`` is parsed as (``Any`` when unknown)."""
    allow = list(allow_modules)
    if isinstance(value, dict):
        _check_mapping(value, annotation, where, allow)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_file_hparams(item, _element_type(annotation), f"{where}[{i}]", allow)
    elif isinstance(value, str) and _may_import(annotation) and ("." in value or ":" in value):
        check_import_name(value, ".", where, allow)


def _check_mapping(value: dict, annotation: Any, where: str, allow: list[str]) -> None:
    for key, separator in CODE_KEYS.items():
        if isinstance(value.get(key), str):
            check_import_name(value[key], separator, f"{where}.{key}", allow)
    target = value.get("class_path") or value.get("_class_path")
    if isinstance(target, str):
        try:
            target = import_class(target)  # allowed above: ours or the user's own
        except (ImportError, AttributeError, ValueError) as err:
            raise ConfigError(f"{where}: cannot import {target!r} ({err}).") from None
    else:
        target = _dataclass_in(annotation)
    params = value.get("init_args") if isinstance(value.get("init_args"), dict) and "class_path" in value else value
    _check_params(params, _hints(target) if target is not None else {}, where, allow)


def _check_params(params: dict, hints: dict[str, Any], where: str, allow: list[str]) -> None:
    """Each parameter's value against its annotation in ``hints``; the package's import fields by their own rule."""
    for key, item in params.items():
        if key in CODE_KEYS:
            continue  # checked by the caller
        if key in IMPORT_FIELDS and isinstance(item, str):
            separator, packages = IMPORT_FIELDS[key]
            check_import_name(item, separator, f"{where}.{key}", allow, packages)
        else:
            check_file_hparams(item, hints.get(key, Any), f"{where}.{key}", allow)


def check_module_hparams(cls: type, hparams: dict, where: str, allow_modules: Iterable[str] = ()) -> None:
    """:func:`check_file_hparams` for a LightningModule's saved hyper-parameters, against ``cls``'s signature (its
    ``_class_path`` is checked by the caller, which imports ``cls`` from it)."""
    _check_params(hparams, _hints(cls), where, list(allow_modules))
