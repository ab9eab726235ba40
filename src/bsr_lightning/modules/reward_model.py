"""``RewardModel``: a Bradley-Terry-style reward model on any Hugging Face sequence-classification backbone."""

from __future__ import annotations

import inspect
from dataclasses import asdict

import lightning as L
import torch
from torch import Tensor

from bsr_lightning.adapters import AdapterCheckpoints, LoRA, Quantization, apply_lora, check_quantization
from bsr_lightning.batching import PACKING_ATTENTION, Batching, Packed, Padded
from bsr_lightning.guards import NonFiniteGuard, OnNonFinite
from bsr_lightning.losses import BradleyTerry, PairwiseLoss
from bsr_lightning.metrics import RewardMetrics, batch_summary
from bsr_lightning.models import (
    find_score_head,
    load_reward_backbone,
    load_tokenizer,
    pooling_of,
    position_ids_of,
    score_head_name,
)
from bsr_lightning.optim import Schedule, build_optimizer
from bsr_lightning.parallel import shard_fsdp2
from bsr_lightning.regularizers import NoRegularizer, Regularizer
from bsr_lightning.specs import object_spec


class RewardModel(AdapterCheckpoints, L.LightningModule):
    """Train a scalar reward model on preference pairs with a pairwise loss plus a pluggable regularizer.

    The loss of a batch of B pairs is ``mean(loss(regularizer.margin(c, r), c, r)) + regularizer.penalty(c, r)``.
    Chosen and rejected sequences go through one forward pass as a ``(2B, T)`` batch.

    Args:
        model_name_or_path: hub id, local directory, or ``pkg:MODULE`` for a model shipped in a Python package.
        regularizer: a :class:`~bsr_lightning.regularizers.Regularizer`; ``NoRegularizer()`` (plain BT) when None.
        loss: a :class:`~bsr_lightning.losses.PairwiseLoss`; ``BradleyTerry()`` when None.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay (not applied to biases and norms).
        betas: AdamW betas.
        warmup_ratio: fraction of the total steps spent warming up linearly.
        lr_schedule: after warmup: ``constant``, ``linear`` or ``cosine`` decay to 0.
        score_init: ``default`` (transformers' init) or ``normal`` (std ``1/sqrt(H+1)``, the paper's code).
        dropout: keep the backbone's dropout (off by default).
        chat_template: a Jinja chat template (inline or ``.jinja`` path) replacing the tokenizer's.
        torch_dtype: load weights as ``bfloat16``, ``float16`` or ``float32``; None keeps the checkpoint's.
        attn_implementation: e.g. ``sdpa`` or ``flash_attention_2``.
        trust_remote_code: allow model code from the hub (off unless asked for).
        gradient_checkpointing: recompute activations in the backward pass to save memory.
        on_nonfinite: a NaN/inf loss or reward in training: ``error`` stops naming the step and row ids, ``skip``
            skips the batch and counts it (``train/skipped_batches``).
        lora: train LoRA adapters and the score head instead of all weights (merged at export).
        batching: how a padded batch goes through the backbone: :class:`~bsr_lightning.batching.Padded` (None),
            ``LengthBuckets`` (less padding, any backbone) or ``Packed`` (padding-free, decoders); same scores.
        compile: ``torch.compile`` the backbone (in place: checkpoints and exports keep their names).
        quantization: load the frozen backbone in ``nf4`` (4-bit) or ``int8`` (bitsandbytes; needs ``lora``): QLoRA.
            The score head stays in full precision; export writes dequantized, merged full-precision weights.
    """

    def __init__(
        self,
        model_name_or_path: str,
        regularizer: Regularizer | None = None,
        loss: PairwiseLoss | None = None,
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_ratio: float = 0.03,
        lr_schedule: Schedule = "linear",
        score_init: str = "default",
        dropout: bool = False,
        chat_template: str | None = None,
        torch_dtype: str | None = None,
        attn_implementation: str | None = None,
        trust_remote_code: bool = False,
        gradient_checkpointing: bool = False,
        on_nonfinite: OnNonFinite = "error",
        lora: LoRA | None = None,
        quantization: Quantization | None = None,
        batching: Batching | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        check_quantization(quantization, lora)
        self.save_hyperparameters(ignore=["regularizer", "loss", "batching"])
        self.hparams.update(lora=asdict(lora) if isinstance(lora, LoRA) else lora)  # plain data in checkpoints
        self.regularizer = regularizer if regularizer is not None else NoRegularizer()
        self.loss_fn = loss if loss is not None else BradleyTerry()
        self.batching = batching if batching is not None else Padded()
        self.hparams.update(regularizer=object_spec(self.regularizer), loss=object_spec(self.loss_fn),
                            batching=object_spec(self.batching))
        self.tokenizer = load_tokenizer(model_name_or_path, chat_template, trust_remote_code)
        backbone = load_reward_backbone(model_name_or_path, self.tokenizer, dropout, score_init, torch_dtype,
                                        trust_remote_code, attn_implementation, quantization)
        self.backbone = apply_lora(backbone, lora, modules_to_save=[score_head_name(backbone)],
                                   quantized=quantization is not None)
        self.backbone.train()  # from_pretrained returns eval mode; Lightning switches modes per stage from here
        if gradient_checkpointing:
            self.backbone.gradient_checkpointing_enable()
        plain = backbone  # peft injects adapters in place: the transformers model, adapters included
        self.pooling = pooling_of(plain)
        if isinstance(self.batching, Packed) and (self.pooling != "last" or plain.config._attn_implementation
                                                  not in PACKING_ATTENTION):
            raise ValueError(f"Packed batching needs a decoder with attention in {PACKING_ATTENTION} (got "
                             f"{type(plain).__name__}, {plain.config._attn_implementation!r}); use "
                             "bsr_lightning.batching.LengthBuckets for encoders.")
        self._accepts_position_ids = "position_ids" in inspect.signature(plain.forward).parameters
        self._head_input: Tensor | None = None
        find_score_head(plain).register_forward_hook(self._capture_head_input)
        self.train_metrics, self.val_metrics, self.test_metrics = RewardMetrics(), RewardMetrics(), RewardMetrics()
        self.guard = NonFiniteGuard(on_nonfinite)
        self._compiled = False

    def _capture_head_input(self, module, args, output) -> None:
        self._head_input = args[0]

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Score sequences (through the configured :mod:`~bsr_lightning.batching`).

        Args:
            input_ids: ``(N, T)`` token ids, left or right padded.
            attention_mask: ``(N, T)``, 1 on real tokens.

        Returns:
            ``rewards`` ``(N,)`` and ``hidden`` ``(N, H)``, the pooled hidden state that entered the score head.
        """
        return self.batching(self, input_ids, attention_mask)

    def padded_forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """One pass over a padded ``(N, T)`` batch; returns rewards ``(N,)`` and head inputs ``(N, H)``."""
        kwargs = {}
        if self._accepts_position_ids:  # positions count real tokens only, so left padding changes nothing
            kwargs["position_ids"] = position_ids_of(attention_mask)
        logits = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits  # (N, 1)
        hidden, self._head_input = self._head_input, None
        if hidden.dim() == 3:  # the head saw every position: pick the pooled one
            index = self._pooled_index(attention_mask)
            hidden = hidden[torch.arange(hidden.size(0), device=hidden.device), index]
        return logits.squeeze(-1).float(), hidden

    def packed_forward(self, input_ids: Tensor, position_ids: Tensor, ends: Tensor) -> tuple[Tensor, Tensor]:
        """One pass over ``(1, S)`` packed sequences with restarting ``(1, S)`` positions; the rewards ``(N,)`` and
        head inputs ``(N, H)`` are read at the ``(N,)`` last-token indices ``ends``."""
        plain = self.backbone.get_base_model() if hasattr(self.backbone, "get_base_model") else self.backbone
        states = plain.base_model(input_ids=input_ids, position_ids=position_ids, use_cache=False)[0]  # (1, S, H)
        hidden = states[0, ends]  # (N, H)
        rewards = find_score_head(plain)(hidden).squeeze(-1).float()  # (N,)
        self._head_input = None
        return rewards, hidden

    def _pooled_index(self, attention_mask: Tensor) -> Tensor:
        """``(N,)`` the position the reward is read at: the last real token (decoders) or the first (encoders)."""
        positions = torch.arange(attention_mask.size(1), device=attention_mask.device)
        if self.pooling == "last":
            return (positions * attention_mask).argmax(-1)
        return ((1 - attention_mask) * attention_mask.size(1) + positions).argmin(-1)

    @torch.inference_mode()
    def score(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Rewards ``(N,)`` for ``(N, T)`` token ids, without gradients."""
        return self(input_ids, attention_mask)[0]

    def pair_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Loss and statistics of one batch of B pairs (``input_ids`` ``(2B, T)``, chosen first)."""
        rewards, hidden = self(batch["input_ids"], batch["attention_mask"])  # (2B,), (2B, H)
        chosen, rejected = rewards.chunk(2)  # (B,), (B,)
        logits = self.regularizer.margin(chosen, rejected)
        pair_loss = self.loss_fn(logits, chosen, rejected, batch.get("margin")).mean()
        penalty = self.regularizer.penalty(chosen, rejected)
        loss = pair_loss + penalty
        values = {"loss": loss, "accuracy": (chosen > rejected).float(), "margin": chosen - rejected,
                  "penalty": penalty, "chosen_reward": chosen, "rejected_reward": rejected}
        hidden_norms = hidden.detach().float().norm(dim=-1)  # (2B,)
        return {"loss": loss, "values": values, "rewards": rewards, "hidden_norms": hidden_norms}

    def _run_stage(self, batch: dict[str, Tensor], stage: str) -> Tensor | None:
        out = self.pair_step(batch)
        if stage == "train" and not self.guard.ok(self.global_step, batch.get("row_ids"), loss=out["loss"],
                                                   rewards=out["rewards"]):
            self.log("train/skipped_batches", float(self.guard.skipped), reduce_fx="max")
            return None  # no backward, no optimizer step
        getattr(self, f"{stage}_metrics").update(out["values"], out["rewards"], out["hidden_norms"])
        if stage == "train":
            step_stats = batch_summary(out["values"], out["rewards"], out["hidden_norms"])
            loss_step = step_stats.pop("loss")
            self.log_dict({f"train/{k}_step": v for k, v in step_stats.items()})
            self.log("train/loss_step", loss_step, prog_bar=True)
        return out["loss"]

    def _log_epoch(self, stage: str) -> None:
        values = getattr(self, f"{stage}_metrics").compute()
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, sync_dist=False)
        getattr(self, f"{stage}_metrics").reset()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor | None:
        return self._run_stage(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._run_stage(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._run_stage(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        chosen, rejected = self.score(batch["input_ids"], batch["attention_mask"]).chunk(2)
        return {"row_ids": batch["row_ids"], "chosen": chosen, "rejected": rejected}

    def configure_model(self) -> None:
        """Under ``ModelParallelStrategy``: FSDP2 ``fully_shard`` per decoder layer, then the whole backbone; then
        ``torch.compile`` when asked."""
        if self._device_mesh is not None:
            shard_fsdp2(self.backbone, self._device_mesh)
        if self.hparams.compile and not self._compiled:
            self.backbone.compile()
            self._compiled = True

    def on_before_optimizer_step(self, optimizer) -> None:
        if not self.guard.grads_ok(self.global_step, optimizer, self.trainer):
            self.log("train/skipped_batches", float(self.guard.skipped), reduce_fx="max")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        return build_optimizer(self, hp.lr, hp.weight_decay, hp.betas, hp.warmup_ratio, hp.lr_schedule,
                               self.trainer.estimated_stepping_batches)
