"""Logger shortcuts: ``--trainer.logger wandb|mlflow|tensorboard|csv``, with the run's name and place filled in.

A shortcut is Lightning's own logger class (``WandbLogger``, ``MLFlowLogger``, ``TensorBoardLogger``,
``CSVLogger``); its ``init_args`` can still be set, e.g. ``--trainer.logger.project my-project``. Values the
config leaves unset are filled in from the run:

- W&B: ``project`` ``bsr_lightning``, ``name`` the run's name, files under ``trainer.default_root_dir``;
  ``WANDB_MODE=offline`` (wandb's own switch) keeps the run on disk for a later ``wandb sync``;
- MLflow: ``experiment_name`` ``bsr_lightning``, ``run_name`` the run's name, and a local file store
  ``<default_root_dir>/mlruns`` unless ``tracking_uri`` or ``MLFLOW_TRACKING_URI`` names another (MLflow 3 keeps
  its file store in maintenance mode; ``MLFLOW_ALLOW_FILE_STORE=true`` is set for it; ``mlflow ui
  --backend-store-uri <default_root_dir>/mlruns`` reads it);
- TensorBoard and CSV: ``save_dir`` ``trainer.default_root_dir``.

The run's name is the config file's name (``hh_rlhf_minilm`` for ``configs/reward/hh_rlhf_minilm.yaml``), else the
last part of ``default_root_dir``. In a YAML config, write the class path (``class_path:
lightning.pytorch.loggers.WandbLogger``) with the same ``init_args``.
"""

from __future__ import annotations

import os
from pathlib import Path

from jsonargparse import Namespace

from bsr_lightning.errors import require

LOGGERS = "lightning.pytorch.loggers"
SHORTCUTS = {"wandb": f"{LOGGERS}.WandbLogger", "mlflow": f"{LOGGERS}.MLFlowLogger",
             "tensorboard": f"{LOGGERS}.TensorBoardLogger", "csv": f"{LOGGERS}.CSVLogger"}
UNSET = (None, ".", "lightning_logs")  # the loggers' own defaults, which say nothing about this run
PACKAGES = {"WandbLogger": "wandb", "MLFlowLogger": "mlflow", "TensorBoardLogger": "tensorboard"}


def expand_shortcuts(argv: list[str]) -> list[str]:
    """``--trainer.logger wandb`` (or ``=wandb``) becomes ``--trainer.logger lightning.pytorch.loggers.WandbLogger``
    (TensorBoard and CSV also get ``save_dir .``, which they require and :func:`complete` resolves); everything else
    is unchanged."""
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--trainer.logger":
            name = next(args, None)
        else:
            name = arg.split("=", 1)[1] if arg.startswith("--trainer.logger=") else None
        if arg == "--trainer.logger" and name not in SHORTCUTS:
            out += [arg] if name is None else [arg, name]
        elif name in SHORTCUTS:
            out.append(f"--trainer.logger={SHORTCUTS[name]}")
            if name in ("tensorboard", "csv"):
                out.append("--trainer.logger.save_dir=.")
        else:
            out.append(arg)
    return out


def run_name(config_files: list, root: str | None) -> str:
    """The config file's stem, else the last part of ``root``, else ``bsr_lightning``."""
    if config_files:
        return Path(str(config_files[-1])).stem
    return Path(root).name if root else "bsr_lightning"


def complete(logger: Namespace, root: str, name: str) -> None:
    """Fill the unset ``init_args`` of one of Lightning's loggers (see the module docstring), and stop with the pip
    command when its package is missing."""
    cls = str(logger.class_path).rsplit(".", 1)[-1]
    if cls in PACKAGES:
        require(PACKAGES[cls], f"trainer.logger ({cls})")
    args = logger.init_args if logger.get("init_args") is not None else Namespace()
    logger.init_args = args
    if cls == "WandbLogger":
        defaults = {"project": "bsr_lightning", "name": name, "save_dir": root}
    elif cls == "MLFlowLogger":
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri and args.get("tracking_uri") is None:  # MLflow 3 refuses its file store unless allowed
            uri = Path(root, "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        defaults = {"experiment_name": "bsr_lightning", "run_name": name, "tracking_uri": uri}
    elif cls in ("TensorBoardLogger", "CSVLogger"):
        defaults = {"save_dir": root}
    else:
        return
    for key, value in defaults.items():
        if args.get(key) in UNSET:
            args[key] = value
