"""The command line: LightningCLI's ``fit|validate|test|predict`` plus ``export``, ``evaluate``, ``plan`` and more.

``python -m bsr_lightning fit --config configs/quickstart.yaml`` trains; any init argument can be overridden, e.g.
``--model.regularizer.init_args.weight 1e-2`` or ``--trainer.max_steps 10``; ``--print_config`` prints a config that
runs when fed back. ``python -m bsr_lightning export --ckpt_path X --output_dir Y`` writes a Hugging Face directory;
``python -m bsr_lightning evaluate --model Y --data F --format pairs|multi|rmbench --output_dir D`` evaluates it;
``python -m bsr_lightning plan --config X`` prints parameter counts and memory per device without loading weights;
``python -m bsr_lightning serve --model Y`` serves a reward model over HTTP.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import signal
import sys
import warnings
from pathlib import Path

import lightning as L
import torch
import yaml
from jsonargparse import ArgumentParser, Namespace
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from bsr_lightning.commands import SUMMARIES, help_text
from bsr_lightning.config_errors import ShortErrorParser
from bsr_lightning.errors import TRACEBACK_ENV, ConfigError, PathNotFound, user_error_in
from bsr_lightning.evaluation.diagnostics import diagnose
from bsr_lightning.evaluation.evaluate import evaluate
from bsr_lightning.experiments.scenarios_command import scenarios
from bsr_lightning.experiments.sweep import sweep
from bsr_lightning.noise import silence_known_noise
from bsr_lightning.plan import format_plan, memory_plan
from bsr_lightning.serving.server import serve
from bsr_lightning.training.checkpoints import export
from bsr_lightning.training.loggers import complete, expand_shortcuts, run_name
from bsr_lightning.training.paths import (
    RESUME_IF_PRESENT,
    check_writable,
    checkpoint_dirs,
    last_checkpoints,
    output_paths,
)
from bsr_lightning.training.preflight import changed_hparams, warn_emulated_bf16


class BSRLightningCLI(LightningCLI):
    """LightningCLI with subclass-mode model and data (``class_path``/``init_args``) and sane defaults."""

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        self.argv = list(sys.argv[1:] if args is None else args)
        expanded = expand_shortcuts(self.argv)  # --trainer.logger wandb|mlflow|tensorboard|csv
        if expanded != self.argv:
            args = expanded
            warnings.filterwarnings("ignore", message=".*args.*command line.*", category=UserWarning)
        super().__init__(
            L.LightningModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_class=ShortErrorParser,
            parser_kwargs={"prog": "python -m bsr_lightning"},
            args=args,
            run=run,
        )

    def _parse_ckpt_path(self) -> None:
        """Resuming (``--ckpt_path``) builds the model from this run's config and command line, never from the
        checkpoint's saved hyper-parameters as Lightning would: they could name classes to import or turn on remote
        code. :meth:`before_fit` then stops if the two differ."""

    def add_arguments_to_parser(self, parser) -> None:
        """Resume checkpoints with ``torch.load(weights_only=True)``: no pickled code runs (``--weights_only false``
        for checkpoints from other tools)."""
        if "weights_only" in parser.get_defaults():
            parser.set_defaults(weights_only=True)

    def before_fit(self) -> None:
        """Before any training: output directories must be writable, and ``--ckpt_path last`` must find a checkpoint
        (``--ckpt_path last_if_present`` resumes when one exists and starts fresh otherwise)."""
        for path, what in output_paths(self.trainer):
            check_writable(path, what)
        warn_emulated_bf16(self.trainer)
        self._record_run()
        kwargs = self.config_init[self.subcommand]
        self._check_resume_hparams(kwargs.get("ckpt_path"))
        if kwargs.get("ckpt_path") not in ("last", RESUME_IF_PRESENT):
            return
        found = last_checkpoints(self.trainer)
        newest = max(found, key=os.path.getmtime) if found else None
        if kwargs["ckpt_path"] == RESUME_IF_PRESENT:
            kwargs["ckpt_path"] = newest  # an explicit path: Lightning's own "last" lookup is not needed
            print(f"Resuming from {newest}" if found else "No checkpoint yet: fresh start.")
        elif found:
            kwargs["ckpt_path"] = newest
        else:
            dirs = checkpoint_dirs(self.trainer) or ["(none)"]
            raise PathNotFound(f"--ckpt_path last: no last checkpoint in {', '.join(dirs)}. Resuming needs a "
                               "ModelCheckpoint with `dirpath` and `save_last: true` in the config that wrote it. "
                               f"Start without --ckpt_path, or pass --ckpt_path {RESUME_IF_PRESENT} to resume only "
                               "when a checkpoint exists.")

    def _check_resume_hparams(self, ckpt_path: str | None) -> None:
        """Stop with one message naming the keys when this run's model differs from the checkpoint it resumes: a
        resumed run continues that training (its optimizer and schedule state come from the checkpoint), so a changed
        lr or regularizer weight would be silently overruled."""
        if ckpt_path in ("last", RESUME_IF_PRESENT):
            found = last_checkpoints(self.trainer)
            ckpt_path = max(found, key=os.path.getmtime) if found else None
        if not ckpt_path or not Path(ckpt_path).exists():
            return  # a folder is read here too: its .metadata is checked before any loader unpickles it
        changed = changed_hparams(ckpt_path, dict(self.model.hparams), dict(getattr(self.datamodule, "hparams", {})))
        if changed:
            raise ConfigError(f"--ckpt_path {ckpt_path}: this run's model or data differ from the checkpoint's in "
                              f"{'; '.join(changed)}. Resuming continues the checkpoint's training as it was, with "
                              "its optimizer and schedule state: drop those changes to resume, or start a new run "
                              "from its weights (export it, then fit with backbone.name set to the export).")

    def _record_run(self) -> None:
        """The command, the resolved config and the data paths, for the model card of the run's exports."""
        if not hasattr(self.model, "run_record"):
            return
        try:
            config = yaml.safe_dump(yaml.safe_load(self.parser.dump(self.config, skip_none=False))[self.subcommand],
                                    sort_keys=False)
        except (TypeError, ValueError):
            config = None
        hparams = getattr(self.datamodule, "hparams", {}) or {}
        data = [v for k in ("path", "val_path", "test_path") if isinstance(v := hparams.get(k), str)]
        command = f"python -m bsr_lightning {shlex.join(self.argv)}"
        self.model.run_record = {"command": command, "config": config, "data": data}

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        self._add_crash_safety(config.trainer)
        self._add_loggers(config.trainer)
        loggers = config.trainer.logger if isinstance(config.trainer.logger, list) else [config.trainer.logger]
        root, name = config.trainer.default_root_dir or ".", run_name(config.get("config") or [],
                                                                      config.trainer.default_root_dir)
        for logger in loggers:
            if isinstance(logger, Namespace) and logger.get("class_path"):
                complete(logger, root, name)

    @staticmethod
    def _add_crash_safety(trainer: Namespace) -> None:
        """Atomic checkpoint writes (single-process and DDP strategies) and RNG state + checkpoint-on-SIGTERM."""
        if trainer.plugins is None and str(trainer.strategy) in ("auto", "ddp", "ddp_spawn", "single_device"):
            trainer.plugins = [Namespace(class_path="bsr_lightning.training.checkpointing.AtomicCheckpointIO")]
        callbacks = list(trainer.callbacks or [])
        if not any(getattr(c, "class_path", "").endswith("ResumeState") for c in callbacks):
            trainer.callbacks = [*callbacks, Namespace(class_path="bsr_lightning.training.checkpointing.ResumeState",
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


def _function_command(function, args: list[str], skip: set[str] | None = None) -> Namespace:
    """Parse ``args`` against ``function``'s typed signature (its docstring gives ``--help``)."""
    parser = ArgumentParser(prog=f"python -m bsr_lightning {function.__name__}", description=summary_of(function))
    parser.add_function_arguments(function, skip=skip)
    return parser.parse_args(args)


def evaluate_command(args: list[str]) -> dict:
    """``evaluate --model M --data F --format pairs|multi|rmbench --output_dir D``; prints the top-level metrics."""
    metrics = evaluate(**_function_command(evaluate, args).as_dict())
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, dict)}))
    return metrics


def sweep_command(args: list[str]) -> list[dict]:
    """``sweep --config C --scenario_dir S --output_dir D``: one ``fit`` per regularizer and seed, then the table."""
    config = _function_command(sweep, args, skip={"fit"}).as_dict()
    rows = sweep(lambda fit_args: cli_main(["fit", *fit_args]), **config)
    print((Path(config["output_dir"]) / "table.md").read_text())
    return rows


PLAN_HELP = """usage: python -m bsr_lightning plan --config CONFIG [FIT OVERRIDES ...] [--json]

Parameter counts and the expected memory per device of a `fit` config, before launching: the config is parsed as
`fit` parses it, the backbone is built on the meta device (no weights are read), and weights, gradients, optimizer
states, activations (and for RLOO the KV cache, reference and reward model) are estimated for the strategy, dtype
and quantization chosen.

options:
  --config CONFIG   the fit config (as for `fit`; several allowed)
  --json            print the plan as one JSON object
  FIT OVERRIDES     any `fit` option, e.g. --data.batch_size 32 --trainer.devices 4
                    (`python -m bsr_lightning fit --help` lists them)

Offline, the backbone's config.json and tokenizer are read from a local folder (or the hub cache)."""


def plan_command(args: list[str]) -> dict:
    """``plan --config X [overrides] [--json]``: parameter counts and memory per device, parsed as ``fit`` parses
    but with nothing instantiated (no weights are loaded)."""
    if "-h" in args or "--help" in args:
        print(PLAN_HELP)
        return {}
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]

    class ParseOnly(BSRLightningCLI):
        def instantiate_classes(self) -> None:
            pass

    with warnings.catch_warnings():  # LightningCLI warns when given args while sys.argv also has some
        warnings.simplefilter("ignore", UserWarning)
        cli = ParseOnly(args=args, run=False)
    plan = memory_plan(cli.config)
    print(json.dumps(plan) if as_json else format_plan(plan))
    return plan


def summary_of(function) -> str:
    """The first paragraph of ``function``'s docstring, joined into one line (never cut mid-sentence)."""
    paragraph = (function.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


def derived_summaries() -> dict[str, str]:
    """Every subcommand's one-line summary as its function's docstring gives it (:data:`commands.SUMMARIES` is the
    stdlib-only copy ``--help`` prints; a test keeps them equal)."""
    def first_sentence(fn) -> str:
        return summary_of(fn).replace("``", "").split("; ")[0].split(". ")[0].rstrip(".")

    # LightningCLI's commands and plan (whose function parses a fit config) have no docstring summary to derive
    fixed = {name: SUMMARIES[name] for name in ("fit", "validate", "test", "predict", "plan")}
    return {**fixed, **{name: first_sentence(fn) for name, fn in COMMAND_FUNCTIONS.items() if name != "plan"}}


def print_help() -> None:
    """``python -m bsr_lightning --help``: every subcommand with a one-line summary."""
    print(help_text())


def function_command(function):
    """A command that parses its arguments from ``function``'s signature and calls it: ``export``, ``diagnose``,
    ``scenarios``, ``serve``."""
    return lambda args: function(**_function_command(function, args).as_dict())


COMMAND_FUNCTIONS = {"export": export, "evaluate": evaluate, "diagnose": diagnose, "scenarios": scenarios,
                     "sweep": sweep, "plan": plan_command, "serve": serve}
"""The functions behind the package's own commands; their signatures and docstrings are the commands' options."""
COMMANDS = {"serve": function_command(serve), "export": function_command(export), "evaluate": evaluate_command,
            "diagnose": function_command(diagnose), "scenarios": function_command(scenarios), "sweep": sweep_command,
            "plan": plan_command}


def main() -> None:
    """``python -m bsr_lightning`` and the ``bsr-lightning`` console script: a user error (bad data, a bad config
    value, a missing path) prints one short block and exits with status 2; ``BSR_LIGHTNING_TRACEBACK=1`` shows the
    traceback instead."""
    try:
        cli_main()
    except Exception as err:
        cause = user_error_in(err)
        if cause is None or os.environ.get(TRACEBACK_ENV):
            raise
        print(f"bsr_lightning: error: {cause}\n(set {TRACEBACK_ENV}=1 for the traceback)", file=sys.stderr)
        sys.exit(2)


def cli_main(args: list[str] | None = None):
    """Run a command in-process (errors propagate as exceptions); ``args`` default to ``sys.argv[1:]``."""
    argv = list(sys.argv[1:] if args is None else args)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    silence_known_noise()
    if not argv or argv[0] in ("-h", "--help"):
        print_help()
        return None
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    try:
        return BSRLightningCLI(args=args)
    except SIGTERMException:  # a checkpoint was saved (ResumeState); exit like a process killed by SIGTERM
        sys.exit(128 + signal.SIGTERM)
    finally:  # CPU (gloo) DDP can abort at interpreter exit while a process group is still alive
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
