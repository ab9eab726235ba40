"""Rebuild a LightningModule from its checkpoint (for ``export``, ``evaluate --model X.ckpt`` and RLOO reward models),
and the ``export`` command.

Only plain data is read (``torch.load(weights_only=True)``) and only the types a module's signature expects are
instantiated: the checkpoint's ``_class_path`` must name a :class:`~bsr_lightning.base.BackboneModule`, and every
nested ``{class_path, init_args}`` must name a subclass of its parameter's type (jsonargparse checks it).
"""

from __future__ import annotations

import inspect
import pickle
from argparse import ArgumentError
from pathlib import Path

import torch
from jsonargparse import ArgumentParser

from bsr_lightning.backbones.export import export_module
from bsr_lightning.backbones.hub import check_push
from bsr_lightning.backbones.hub import push_to_hub as upload
from bsr_lightning.base import BackboneModule
from bsr_lightning.chat_templates import stored_template
from bsr_lightning.class_paths import check_import_name, check_module_hparams, import_subclass
from bsr_lightning.errors import ConfigError, PathNotFound, UserError
from bsr_lightning.files import check_export_dir
from bsr_lightning.lightning_compat import load_sharded_checkpoint


def read_checkpoint(ckpt_path: str, weights_only: bool = True, mmap: bool = False) -> dict:
    """The checkpoint dict of a ``.ckpt`` file, or of a sharded (FSDP/FSDP2, one file per rank) checkpoint directory,
    consolidated into full weights. ``weights_only=False`` unpickles arbitrary objects: only for trusted files. A file
    or folder that is not a checkpoint stops with one :class:`~bsr_lightning.errors.UserError` saying what it is.
    ``mmap`` maps the tensors instead of reading them (for callers that only need the hyper-parameters)."""
    path = Path(ckpt_path)
    if not path.exists():
        raise PathNotFound(f"checkpoint {ckpt_path} not found (cwd: {Path.cwd()}).")
    if path.is_dir():
        if not (path / ".metadata").is_file():
            raise UserError(f"checkpoint {ckpt_path} is a folder without a sharded checkpoint's .metadata (an export? "
                            "give it as --model to evaluate, or pass the .ckpt file or sharded folder fit wrote).")
    try:
        checkpoint = load_sharded_checkpoint(path) if path.is_dir() else _load_file(ckpt_path, weights_only, mmap)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for what is not a checkpoint
        raise _unreadable(ckpt_path, err, path.is_dir()) from None
    missing = [k for k in ("state_dict", "hyper_parameters") if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        raise UserError(f"checkpoint {ckpt_path} has no {' or '.join(missing)}; it was not written by "
                        "bsr_lightning's fit (or Lightning with save_hyperparameters).")
    return checkpoint


def _unreadable(ckpt_path: str, err: Exception, folder: bool) -> UserError:
    """One message for a checkpoint file or sharded folder that cannot be read as plain data."""
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    if folder and isinstance(err, pickle.UnpicklingError):  # .metadata's allowlist, or a shard's weights_only
        return UserError(f"checkpoint {ckpt_path}: its .metadata or shards hold pickled objects other than a "
                         f"checkpoint's ({reason}); they are not loaded (no code from a file runs). Give a folder fit "
                         "wrote.")
    if "Weights only load failed" in str(err):  # torch says the same for garbage and for pickled objects
        return UserError(f"checkpoint {ckpt_path} cannot be read as plain data: it is not a checkpoint, or it holds "
                         "pickled Python objects, which are not loaded (no code from a file runs). For a file "
                         "you wrote yourself, `export --weights_only false` reads it (and exports it for the "
                         "other commands).")
    if folder:
        return UserError(f"checkpoint {ckpt_path} cannot be read as a sharded checkpoint ({reason}).")
    return UserError(f"checkpoint {ckpt_path} cannot be read ({reason}); it is empty, truncated or not a "
                     "checkpoint. Give a .ckpt file that fit wrote.")


def _load_file(ckpt_path: str, weights_only: bool, mmap: bool) -> dict:
    try:
        return torch.load(ckpt_path, map_location="cpu", weights_only=weights_only, mmap=mmap)
    except RuntimeError as err:
        if mmap and "mmap" in str(err):  # a pre-zip serialization: read it whole
            return torch.load(ckpt_path, map_location="cpu", weights_only=weights_only)
        raise


def build_from_hparams(cls: type[BackboneModule], hparams: dict, where: str = "checkpoint") -> BackboneModule:
    """Instantiate ``cls`` from its saved hyperparameters, type-checked against its signature: a nested
    ``class_path`` that does not subclass its parameter's type stops with a ``ValueError`` naming it."""
    params = set(inspect.signature(cls.__init__).parameters) - {"self"}
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "module", fail_untyped=False)
    try:
        config = parser.parse_object({"module": {k: v for k, v in hparams.items() if k in params}})
    except ArgumentError as err:
        lines = [line.strip(" -") for line in str(err).splitlines() if line.strip()]
        reason = next((line for line in lines if "does not correspond" in line), lines[-1])
        raise ConfigError(f"{where}: its hyper-parameters do not fit {cls.__name__} ({lines[0]} {reason}). "
                         "Only the classes a module's signature expects are built from a checkpoint.") from None
    return parser.instantiate_classes(config).module


def checkpoint_class(checkpoint: dict, ckpt_path: str, allow_modules: list[str] | None = None
                     ) -> tuple[type[BackboneModule], dict]:
    """The LightningModule class a checkpoint holds and its hyper-parameters (without ``_class_path``), every name
    in them checked before anything is imported: only this package's modules and ``allow_modules`` pass."""
    hparams = dict(checkpoint["hyper_parameters"])
    where = f"{ckpt_path}: hyper_parameters"
    class_path = hparams.pop("_class_path", None) or "bsr_lightning.RewardModel"
    if not isinstance(class_path, str):
        raise ConfigError(f"{where}._class_path must be a class path, got {type(class_path).__name__}.")
    check_import_name(class_path, ".", f"{where}._class_path", allow_modules or [])
    cls = import_subclass(class_path, BackboneModule, f"{where}._class_path")
    check_module_hparams(cls, hparams, where, allow_modules or [])  # before jsonargparse imports anything
    return cls, hparams


def load_module_from_checkpoint(ckpt_path: str, weights_only: bool = True, trust_remote_code: bool = False,
                               allow_modules: list[str] | None = None) -> BackboneModule:
    """Rebuild the LightningModule stored in ``ckpt_path`` with its weights, on CPU, in eval mode.

    The checkpoint never decides what code runs: class paths outside this package are refused before any import
    unless their module is in ``allow_modules``, and the backbone's ``trust_remote_code`` is this call's, whatever
    the checkpoint says."""
    checkpoint = read_checkpoint(ckpt_path, weights_only)
    cls, hparams = checkpoint_class(checkpoint, ckpt_path, allow_modules)
    where = f"{ckpt_path}: hyper_parameters"
    if isinstance(hparams.get("backbone"), dict):
        template = stored_template(hparams["backbone"].get("chat_template"), f"{where}.backbone.chat_template")
        hparams["backbone"] = {**hparams["backbone"], "trust_remote_code": trust_remote_code, "chat_template": template}
    module = build_from_hparams(cls, hparams, ckpt_path)
    module.on_load_checkpoint(checkpoint)
    try:
        module.load_state_dict(checkpoint["state_dict"], strict=module.strict_loading)
    except RuntimeError as err:  # missing, unexpected or mis-shaped weights
        raise UserError(f"checkpoint {ckpt_path}: its weights do not fit the model its hyper-parameters describe "
                        f"({str(err).splitlines()[0][:200]} ...).") from None
    return module.eval()


def export(ckpt_path: str, output_dir: str, overwrite: bool = False, weights_only: bool = True,
           push_to_hub: str | None = None, private: bool = False, license: str | None = None,
           trust_remote_code: bool = False, allow_modules: list[str] | None = None) -> Path:
    """Export the model in a Lightning checkpoint to a Hugging Face directory, with a model card (``README.md``) and
    the resolved training config; optionally upload it to the hub.

    Args:
        ckpt_path: a checkpoint written by ``fit`` (a file, or a sharded checkpoint directory).
        output_dir: the directory to write: new, empty, or an earlier export (its files are replaced).
        overwrite: write into a non-empty directory no export wrote; files the export does not write are kept.
        weights_only: ``false`` unpickles arbitrary objects, for trusted checkpoints from other tools only.
        push_to_hub: a hub repo id (``user/name``) to create if needed and upload the export to; the token comes
            from ``HF_TOKEN`` or ``hf auth login`` and is never printed.
        private: create the hub repo private.
        license: the license for the model card (an SPDX id such as ``apache-2.0``), when known.
        trust_remote_code: run the backbone's own model code (``auto_map``); never taken from the checkpoint.
        allow_modules: modules of yours the checkpoint may name (a custom regularizer, a reward function); classes
            outside bsr_lightning are refused otherwise, before any import.
    """
    check_export_dir(output_dir, overwrite)  # before the (slow) checkpoint load; the save checks again
    if push_to_hub:
        check_push(push_to_hub)
    module = load_module_from_checkpoint(ckpt_path, weights_only, trust_remote_code, allow_modules)
    path = export_module(module, output_dir, overwrite, module.run_record.get("metrics"), license,
                         location=push_to_hub)
    print(f"Exported {ckpt_path} to {path}")
    if push_to_hub:
        upload(path, push_to_hub, private)
    return path
