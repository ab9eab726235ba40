"""Export a trained reward model to a Hugging Face directory, atomically.

``python -m bsr_lightning export --ckpt_path last.ckpt --output_dir exported/`` writes the weights with the score
head, the config, the tokenizer and its chat template. ``AutoModelForSequenceClassification.from_pretrained`` loads
it and scores as the Lightning module did.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
from jsonargparse import ArgumentParser

from bsr_lightning.specs import import_class, instantiate_spec


def save_pretrained_atomic(model, tokenizer, output_dir: str | Path) -> Path:
    """``save_pretrained`` model and tokenizer into a temporary sibling directory, then rename it into place, so a
    crash never leaves a half-written export (an existing one is replaced only once the new one is complete)."""
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if output_dir.exists():
            old = output_dir.with_name(f".{output_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            output_dir.rename(old)
            tmp.rename(output_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output_dir


def export_module(module, output_dir: str | Path) -> Path:
    """Export a live module with ``backbone`` and ``tokenizer`` (RewardModel, SFTModel, RLOOPolicy); LoRA adapters
    are merged into the weights."""
    from bsr_lightning.adapters import merged_for_export

    return save_pretrained_atomic(merged_for_export(module.backbone), module.tokenizer, output_dir)


def load_module_from_checkpoint(ckpt_path: str):
    """Rebuild the LightningModule stored in ``ckpt_path`` with its weights, on CPU. A directory is a sharded
    (FSDP/FSDP2, one file per rank) checkpoint: its shards are consolidated into full weights first."""
    if Path(ckpt_path).is_dir():
        from lightning.fabric.utilities.load import _load_distributed_checkpoint

        checkpoint = _load_distributed_checkpoint(Path(ckpt_path))
    else:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    hparams = dict(checkpoint["hyper_parameters"])
    class_path = hparams.pop("_class_path", None) or "bsr_lightning.RewardModel"
    hparams.pop("_instantiator", None)
    cls = import_class(class_path)
    init_args = {k: instantiate_spec(v) for k, v in hparams.items() if k in _init_params(cls)}
    module = cls(**init_args)
    if hasattr(module, "on_load_checkpoint"):
        module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"], strict=module.strict_loading)
    return module.eval()


def _init_params(cls) -> set[str]:
    import inspect

    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def export(ckpt_path: str, output_dir: str) -> Path:
    """Export the model in a Lightning checkpoint to a Hugging Face directory.

    Args:
        ckpt_path: a checkpoint written by ``fit``.
        output_dir: the directory to write; replaced atomically if it exists.
    """
    path = export_module(load_module_from_checkpoint(ckpt_path), output_dir)
    print(f"Exported {ckpt_path} to {path}")
    return path


def export_main(args: list[str]) -> Path:
    """``python -m bsr_lightning export --ckpt_path X --output_dir Y``."""
    parser = ArgumentParser(prog="python -m bsr_lightning export", description=export.__doc__.splitlines()[0])
    parser.add_function_arguments(export)
    cfg = parser.parse_args(args)
    return export(cfg.ckpt_path, cfg.output_dir)
