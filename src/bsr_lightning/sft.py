"""``SFTModel``: supervised fine-tuning of a causal LM on responses, the starting policy of RLOO."""

from __future__ import annotations

import torch
from torch import Tensor

from bsr_lightning.args import Backbone, SFTOptimization
from bsr_lightning.backbones.loading import load_causal_lm, position_ids_of
from bsr_lightning.base import BackboneModule


class SFTModel(BackboneModule):
    """Next-token cross-entropy on response tokens only (``labels == -100`` elsewhere, see
    :class:`~bsr_lightning.data.prompts.SFTDataModule`), averaged over the batch's response tokens.

    Args:
        backbone: the causal LM and how it is loaded.
        optimization: optimizer and schedule; AdamW, lr 2e-5, warmup 0.03, cosine decay when None.
    """

    optimization_class = SFTOptimization
    export_name = "sft_policy"

    def __init__(self, backbone: Backbone, optimization: SFTOptimization | None = None) -> None:
        super().__init__(backbone, optimization)
        self.store_hparams()
        self.backbone = self.wrap_backbone(load_causal_lm(backbone, self.tokenizer))

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
