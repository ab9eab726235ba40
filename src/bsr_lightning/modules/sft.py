"""``SFTModel``: supervised fine-tuning of a causal LM on responses, the starting policy of RLOO."""

from __future__ import annotations

from dataclasses import asdict

import lightning as L
import torch
from torch import Tensor

from bsr_lightning.adapters import AdapterCheckpoints, LoRA, Quantization, apply_lora, check_quantization
from bsr_lightning.models import load_causal_lm, load_tokenizer, position_ids_of
from bsr_lightning.optim import Schedule, build_optimizer


class SFTModel(AdapterCheckpoints, L.LightningModule):
    """Next-token cross-entropy on response tokens only (``labels == -100`` elsewhere, see
    :class:`~bsr_lightning.data.prompts.SFTDataModule`), averaged over the batch's response tokens.

    Args:
        model_name_or_path: hub id, local directory, ``pkg:MODULE`` or ``tiny:synthetic``.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay (not on biases and norms).
        betas: AdamW betas.
        warmup_ratio: fraction of the steps spent warming up.
        lr_schedule: ``constant``, ``linear`` or ``cosine`` after warmup.
        chat_template: a Jinja chat template (inline or ``.jinja`` path) replacing the tokenizer's.
        lora: train LoRA adapters instead of all weights (merged at export).
        quantization: load the frozen base in ``nf4`` or ``int8`` (bitsandbytes; needs ``lora``): QLoRA.
        torch_dtype: load weights as ``bfloat16``, ``float16`` or ``float32``; None keeps the checkpoint's.
        attn_implementation: e.g. ``sdpa`` or ``flash_attention_2``.
        trust_remote_code: allow model code from the hub (off unless asked for).
        gradient_checkpointing: recompute activations in the backward pass.
    """

    def __init__(self, model_name_or_path: str, lr: float = 2e-5, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), warmup_ratio: float = 0.03,
                 lr_schedule: Schedule = "cosine", chat_template: str | None = None, lora: LoRA | None = None,
                 quantization: Quantization | None = None,
                 torch_dtype: str | None = None, attn_implementation: str | None = None,
                 trust_remote_code: bool = False, gradient_checkpointing: bool = False) -> None:
        super().__init__()
        check_quantization(quantization, lora)
        self.save_hyperparameters()
        self.hparams.update(lora=asdict(lora) if isinstance(lora, LoRA) else lora)  # plain data in checkpoints
        self.tokenizer = load_tokenizer(model_name_or_path, chat_template, trust_remote_code)
        model = load_causal_lm(model_name_or_path, self.tokenizer, False, torch_dtype, trust_remote_code,
                               attn_implementation, quantization)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable()
        self.backbone = apply_lora(model, lora, quantized=quantization is not None)
        self.backbone.train()

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Logits ``(N, T, V)`` of ``(N, T)`` token ids."""
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                             position_ids=position_ids_of(attention_mask)).logits

    def _loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        logits = self(batch["input_ids"], batch["attention_mask"])[:, :-1].float()  # (N, T-1, V)
        targets = batch["labels"][:, 1:]  # (N, T-1)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                                 ignore_index=-100)
        return loss, (targets != -100).sum()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, tokens = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/response_tokens", tokens.float(), reduce_fx="sum", on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, tokens = self._loss(batch)
        self.log("val/loss", loss, batch_size=int(tokens), prog_bar=True)

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        return build_optimizer(self, hp.lr, hp.weight_decay, hp.betas, hp.warmup_ratio, hp.lr_schedule,
                               self.trainer.estimated_stepping_batches)
