"""``BackboneModule``: what RewardModel, SFTModel and RLOOPolicy share.

It owns the tokenizer and the backbone's wrapping (gradient checkpointing, LoRA, QLoRA), refuses strategies that
cannot shard adapters or quantized weights, keeps LoRA checkpoints to the trainable weights, stores every argument
as plain data (so checkpoints rebuild the module without pickled code) and builds the optimizer.
"""

from __future__ import annotations

import inspect
from typing import ClassVar

import lightning as L
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn

from bsr_lightning.args import Backbone, Optimization
from bsr_lightning.backbones.adapters import apply_lora
from bsr_lightning.backbones.model_card import code_span, describe
from bsr_lightning.backbones.sharding import check_strategy
from bsr_lightning.backbones.tokenizers import load_tokenizer
from bsr_lightning.class_paths import plain
from bsr_lightning.errors import UserError
from bsr_lightning.lightning_compat import attached_trainer
from bsr_lightning.training.optim import build_optimizer


class BackboneModule(L.LightningModule):
    """Base class of the package's LightningModules.

    Subclasses call ``super().__init__(backbone, optimization)``, load their model with ``self.backbone_args`` and
    pass it to :meth:`wrap_backbone`, then call :meth:`store_hparams`.

    Args:
        backbone: the model and how it is loaded.
        optimization: optimizer, schedule and clipping; None takes the subclass's ``optimization_class()``, whose
            defaults also fill every field a config leaves unset.
    """

    optimization_class: ClassVar[type[Optimization]] = Optimization
    export_name: ClassVar[str] = "policy"
    """The export's folder name inside ``trainer.default_root_dir`` when ``ExportOnFitEnd`` is given none."""
    card: ClassVar[dict] = {
        "title": "Causal language model", "pipeline_tag": "text-generation", "tags": ["bsr_lightning"],
        "summary": "A causal language model trained with bsr_lightning.",
        "usage": "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                 "tokenizer = AutoTokenizer.from_pretrained(PATH)\n"
                 "model = AutoModelForCausalLM.from_pretrained(PATH)\n"
                 "messages = [{'role': 'user', 'content': 'How do I boil an egg?'}]\n"
                 "ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors='pt',\n"
                 "                                    return_dict=True)\n"
                 "out = model.generate(**ids, max_new_tokens=64)\n"
                 "print(tokenizer.decode(out[0, ids['input_ids'].shape[1]:], skip_special_tokens=True))"}
    """What the model card says about this kind of model (:mod:`bsr_lightning.backbones.model_card`)."""

    def __init__(self, backbone: Backbone, optimization: Optimization | None = None) -> None:
        super().__init__()
        self.backbone_args = backbone
        self.optimization = optimization if optimization is not None else self.optimization_class()
        self.tokenizer = load_tokenizer(backbone.name, backbone.chat_template, backbone.trust_remote_code)
        self.run_record: dict = {}  # command, resolved config, data (``fit``) and metrics (from a checkpoint)

    def wrap_backbone(self, model: nn.Module, modules_to_save: list[str] | None = None) -> nn.Module:
        """LoRA adapters (only they, and ``modules_to_save``, train) and gradient checkpointing, as configured."""
        args = self.backbone_args
        model = apply_lora(model, args.lora, modules_to_save, quantized=args.quantization is not None)
        if args.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        return model.train()  # from_pretrained returns eval mode; Lightning switches modes per stage from here

    def store_hparams(self, **resolved) -> None:
        """Save the caller's init arguments as plain data, with ``resolved`` values (defaults filled in) replacing
        the given ones."""
        frame = inspect.currentframe().f_back
        modules = [name for name, value in frame.f_locals.items() if isinstance(value, nn.Module)]  # e.g. the loss
        self.save_hyperparameters(ignore=modules, frame=frame)  # they go in below as plain class_path specs
        self.hparams.update(backbone=self.backbone_args, optimization=self.optimization, **resolved)
        for key, value in list(self.hparams.items()):
            self.hparams[key] = plain(value)

    def setup(self, stage: str) -> None:
        check_strategy(attached_trainer(self), self.backbone_args.quantization, self.backbone_args.lora)

    def card_facts(self) -> dict:
        """The model card's facts: :attr:`card`, the base model, every init argument, the run record."""
        skip = {"backbone", "optimization", "_class_path", "_instantiator"}
        table = {k: describe(v) for k, v in self.hparams.items() if k not in skip}
        opt = self.optimization
        table["optimizer"] = f"{code_span(opt.optimizer.rsplit('.', 1)[-1])}, lr {opt.lr:g}, {opt.schedule} schedule"
        return {**self.card, "base_model": self.backbone_args.name, "table": table, "run_record": self.run_record}

    def latest_val_metrics(self) -> dict[str, float]:
        """The latest ``val/...`` metrics of the attached trainer (empty without one)."""
        trainer = attached_trainer(self)
        metrics = trainer.callback_metrics if trainer is not None else {}
        return {k: float(v) for k, v in metrics.items() if k.startswith("val/")}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """The run record and the latest validation metrics go into the checkpoint (for the model card of a later
        ``export``). With LoRA, keep only the trainable weights (adapters, score head): the frozen, possibly
        quantized base is rebuilt from ``backbone.name`` on load, so an 8B QLoRA checkpoint is tens of MB."""
        checkpoint["bsr_lightning_run"] = {**self.run_record, "metrics": self.latest_val_metrics()}
        checkpoint["bsr_lightning_chat_template"] = self.tokenizer.chat_template  # the text trained on, data's too
        if self.backbone_args.lora is not None:
            trainable = {n for n, p in self.named_parameters() if p.requires_grad}
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Restore the run record; refuse a LoRA checkpoint that misses a trainable weight."""
        self.run_record = dict(checkpoint.get("bsr_lightning_run", {}))
        template = checkpoint.get("bsr_lightning_chat_template")
        if isinstance(template, str):  # text only: jinja renders in transformers' sandbox and imports nothing
            self.tokenizer.chat_template = template
        if self.backbone_args.lora is None:
            return
        self.strict_loading = False  # the frozen base is not in the checkpoint
        missing = sorted(n for n, p in self.named_parameters() if p.requires_grad and n not in checkpoint["state_dict"])
        if missing:
            raise UserError(f"Checkpoint lacks {len(missing)} trainable LoRA/head weights (first: {missing[0]}); was "
                            "it written with the same `lora` settings?")

    def optimizer_steps_per_batch(self) -> int:
        """Optimizer steps per training batch (RLOO takes several)."""
        return 1

    def configure_optimizers(self) -> dict:
        total = self.trainer.estimated_stepping_batches
        if self.trainer.max_steps in (-1, None):  # counted in batches: convert to optimizer steps
            total *= self.optimizer_steps_per_batch()
        clipping = self.optimization.max_grad_norm or self.trainer.gradient_clip_val
        amp = isinstance(self.trainer.precision_plugin, MixedPrecision)
        return build_optimizer(self, self.optimization, int(total), amp_clipping=bool(clipping) and amp)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """``optimization.max_grad_norm`` when set, else the trainer's ``gradient_clip_val``."""
        if self.optimization.max_grad_norm is not None:
            gradient_clip_val, gradient_clip_algorithm = self.optimization.max_grad_norm, "norm"
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
