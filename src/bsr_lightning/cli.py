"""The command line: LightningCLI's ``fit|validate|test|predict`` plus ``export``, ``evaluate``, ``plan`` and more.

``python -m bsr_lightning fit --config configs/quickstart.yaml`` trains; any init argument can be overridden, e.g.
``--model.regularizer.init_args.weight 1e-2`` or ``--trainer.max_steps 10``; ``--print_config`` prints a config that
runs when fed back. ``python -m bsr_lightning export --ckpt_path X --output_dir Y`` writes a Hugging Face directory;
``python -m bsr_lightning evaluate --model Y --data F --format pairs|multi|rmbench --output_dir D`` evaluates it;
``python -m bsr_lightning plan --config X`` prints parameter counts and memory per device without loading weights.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import sys

import lightning as L
import torch
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

EXTRA_COMMANDS = {"export": "bsr_lightning.export:export_main",
                  "evaluate": "bsr_lightning.evaluation.evaluate:evaluate_main",
                  "diagnose": "bsr_lightning.evaluation.diagnostics:diagnose_main",
                  "scenarios": "bsr_lightning.evaluation.scenarios:scenarios_main",
                  "sweep": "bsr_lightning.evaluation.sweep:sweep_main",
                  "plan": "bsr_lightning.plan:plan_main"}


class BSRLightningCLI(LightningCLI):
    """LightningCLI with subclass-mode model and data (``class_path``/``init_args``) and sane defaults."""

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        super().__init__(
            L.LightningModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )


    def add_arguments_to_parser(self, parser) -> None:
        """Resume checkpoints with ``torch.load(weights_only=True)``: no pickled code runs (``--weights_only false``
        for checkpoints from other tools)."""
        if "weights_only" in parser.get_defaults():
            parser.set_defaults(weights_only=True)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        self._add_crash_safety(config.trainer)
        self._add_loggers(config.trainer)

    @staticmethod
    def _add_crash_safety(trainer: Namespace) -> None:
        """Atomic checkpoint writes (single-process and DDP strategies) and RNG state + checkpoint-on-SIGTERM."""
        if trainer.plugins is None and str(trainer.strategy) in ("auto", "ddp", "ddp_spawn", "single_device"):
            trainer.plugins = [Namespace(class_path="bsr_lightning.checkpointing.AtomicCheckpointIO")]
        callbacks = list(trainer.callbacks or [])
        if not any(getattr(c, "class_path", "").endswith("ResumeState") for c in callbacks):
            trainer.callbacks = [*callbacks, Namespace(class_path="bsr_lightning.checkpointing.ResumeState",
                                                       init_args=Namespace())]

    @staticmethod
    def _add_loggers(config: Namespace) -> None:
        """Default loggers: CSV always, TensorBoard too when installed, in one ``lightning_logs/version_N``."""
        if config.logger not in (None, True):
            return
        root = config.default_root_dir or "."
        loggers = [Namespace(class_path="lightning.pytorch.loggers.CSVLogger", init_args=Namespace(save_dir=root))]
        if importlib.util.find_spec("tensorboard") is not None:
            version = CSVLogger(root).version
            loggers[0].init_args.version = version
            loggers.append(Namespace(class_path="lightning.pytorch.loggers.TensorBoardLogger",
                                     init_args=Namespace(save_dir=root, version=version)))
        config.logger = loggers


def cli_main(args: list[str] | None = None):
    """Entry point of ``python -m bsr_lightning`` and the ``bsr-lightning`` console script."""
    argv = list(sys.argv[1:] if args is None else args)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if argv and argv[0] in EXTRA_COMMANDS:
        module_name, _, function = EXTRA_COMMANDS[argv[0]].partition(":")
        return getattr(importlib.import_module(module_name), function)(argv[1:])
    try:
        return BSRLightningCLI(args=args)
    except SIGTERMException:  # a checkpoint was saved (ResumeState); exit like a process killed by SIGTERM
        sys.exit(128 + signal.SIGTERM)
    finally:  # CPU (gloo) DDP can abort at interpreter exit while a process group is still alive
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
