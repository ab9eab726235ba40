"""Every YAML in configs/ starts with the command that runs it and parses into the CLI."""

from pathlib import Path

import pytest
import yaml

from bsr_lightning.cli import BSRLightningCLI
from conftest import REPO

CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))
CPU = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
       "--trainer.precision", "32-true", "--trainer.logger", "false"]


def test_configs_exist():
    names = {str(p.relative_to(REPO)) for p in CONFIGS}
    assert {"configs/quickstart.yaml", "configs/reward/hh_rlhf_minilm.yaml",
            "configs/reward/llama3_8b_skywork_bsr.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_config_parses(path: Path):
    rel = str(path.relative_to(REPO))
    first = path.read_text().splitlines()[0]
    assert first.startswith("# python -m bsr_lightning ") and f"--config {rel}" in first
    text = path.read_text()
    # hub-sized backbones and the demo's SFT export: parse with the tiny model, keep every other value
    name = yaml.safe_load(text)["model"]["init_args"]["backbone"]["name"]
    policy = [] if name.startswith(("pkg:", "tiny:")) else ["--model.init_args.backbone.name", "tiny:synthetic"]
    cli = BSRLightningCLI(args=["--config", str(path), *CPU, *policy], run=False)  # run=False: no subcommand
    config = cli.config
    assert config.model.class_path.startswith("bsr_lightning.")
    if rel == "configs/reward/llama3_8b_skywork_bsr.yaml":  # the seed's recipe: BSR over 16 pairs per device
        assert config.model.init_args.optimization.lr == 2e-6 and config.data.init_args.max_length == 2048
        assert config.model.init_args.regularizer.init_args.weight == 1e-3
        assert type(cli.model.regularizer).__name__ == "BatchSumToZero" and cli.model.regularizer.scope == "device"
        assert config.data.init_args.batch_size == 16 and config.trainer.accumulate_grad_batches == 1
        assert config.model.init_args.optimization.optimizer == "bitsandbytes.optim.PagedAdamW8bit"
        assert config.seed_everything == 90


@pytest.mark.parametrize("path", [p for p in CONFIGS if "strategy:\n" in p.read_text()], ids=lambda p: p.name)
def test_config_strategy_builds(path: Path):
    """The strategy blocks run on GPUs only; build them here from the YAML's values."""
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    from bsr_lightning.class_paths import import_class

    spec = yaml.safe_load(path.read_text())["trainer"]["strategy"]
    strategy = import_class(spec["class_path"])(**spec.get("init_args", {}))
    policy = strategy.kwargs["auto_wrap_policy"]
    assert isinstance(policy, ModuleWrapPolicy) and policy._module_classes == {LlamaDecoderLayer}
    assert strategy._activation_checkpointing_kwargs  # activation checkpointing on the same class
    assert strategy._state_dict_type == "sharded"


PAPER_RECIPES = [p for p in CONFIGS if "LinkedIn-XFACT/RM-Robustness" in p.read_text()]


@pytest.mark.parametrize("path", PAPER_RECIPES, ids=lambda p: p.name)
def test_paper_recipes_use_the_papers_batches_loss_and_list_their_differences(path: Path):
    """A config that names the paper's recipe draws random batches (its code's Trainer default), uses RLOO's
    sequence-level loss, and lists its differences from the authors' run in the header."""
    config = yaml.safe_load(path.read_text())
    header = "\n".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    assert "Differences from the authors' run" in header
    if config["model"]["class_path"] == "bsr_lightning.RewardModel":
        assert config["data"]["init_args"].get("group_by_length", False) is False
        for topic in ("precision", "validation", "head init", "template"):
            assert topic in header.lower(), topic
    else:
        assert config["model"]["init_args"]["policy_loss"]["class_path"] == "bsr_lightning.rloo.loss.SequenceClip"
        for topic in ("precision", "prompts per device", "512", "asynchronous"):
            assert topic in header.lower(), topic
    assert len(PAPER_RECIPES) >= 2
