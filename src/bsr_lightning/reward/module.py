"""``RewardModel``: a Bradley-Terry-style reward model on any Hugging Face sequence-classification backbone."""

from __future__ import annotations

import inspect
import warnings

import torch
from lightning.pytorch.strategies import FSDPStrategy
from torch import Tensor

from bsr_lightning.args import Backbone, RewardOptimization
from bsr_lightning.backbones.loading import (
    find_score_head,
    load_reward_backbone,
    pooling_of,
    position_ids_of,
    score_head_name,
)
from bsr_lightning.backbones.sharding import shard_fsdp2
from bsr_lightning.backbones.transformers_compat import attention_implementation
from bsr_lightning.base import BackboneModule
from bsr_lightning.errors import check
from bsr_lightning.lightning_compat import attached_trainer
from bsr_lightning.reward.embedding_lookup import OneLookup
from bsr_lightning.reward.forward import ForwardMode, Padded
from bsr_lightning.reward.losses import BradleyTerry, PairwiseLoss
from bsr_lightning.reward.metrics import RewardMetrics, batch_summary
from bsr_lightning.reward.regularizers import NoRegularizer, PairOutputs, Regularizer
from bsr_lightning.training.guards import NonFiniteGuard, OnNonFinite

GROUPED_BATCHES_WARNING = (
    "{name} penalizes a statistic of each batch, and data.group_by_length puts pairs of similar length together: "
    "a reward offset that depends on length is then shared by the whole batch and penalized about B times harder "
    "than in the random batches of the paper's code, so this is not the paper's estimator. Set "
    "data.group_by_length false (bucketing inside a batch, packing and the forward modes do not change batches).")


class RewardModel(BackboneModule):
    """Train a scalar reward model on preference pairs with a pairwise loss plus a pluggable regularizer.

    The loss of a batch of B pairs is ``mean(loss(regularizer.margin(out), c, r)) + regularizer.penalty(out)`` where
    ``out`` is the batch's :class:`~bsr_lightning.reward.regularizers.PairOutputs` (rewards and head-input hidden
    states). Chosen and rejected sequences go through one forward pass as a ``(2B, T)`` batch.

    Args:
        backbone: the sequence-classification model (one label) and how it is loaded.
        regularizer: a :class:`~bsr_lightning.reward.regularizers.Regularizer`; ``NoRegularizer()`` (plain BT) when
            None.
        loss: a :class:`~bsr_lightning.reward.losses.PairwiseLoss`; ``BradleyTerry()`` when None.
        optimization: optimizer and schedule; AdamW, lr 1e-5, warmup 0.03, linear decay when None.
        forward_mode: how a padded batch goes through the backbone: ``Padded`` (None), ``LengthBuckets`` (less
            padding, any backbone), ``Packed`` (padding-free, decoders) or ``SharedPrefix`` (each pair's shared
            prompt computed once, decoders); same scores
            (:mod:`bsr_lightning.reward.forward`).
        score_init: ``default`` (transformers' init) or ``normal`` (std ``1/sqrt(H+1)``; the paper's code draws
            ``1/sqrt(H)``).
        on_nonfinite: a NaN/inf loss or reward in training: ``error`` stops naming the step and row ids, ``skip``
            skips the batch and counts it (``train/skipped_batches``).
        compile: ``torch.compile`` the backbone (in place: checkpoints and exports keep their names).
    """

    optimization_class = RewardOptimization
    export_name = "reward_model"
    card = {
        "title": "Reward model", "pipeline_tag": "text-classification",
        "tags": ["bsr_lightning", "reward-model", "rlhf"],
        "summary": "A scalar reward model (one logit: higher is better) trained on preference pairs with "
                   "bsr_lightning; batch-wise sum-to-zero regularization (BSR) is from Hong et al., *On the "
                   "Robustness of Reward Models for Language Model Alignment* (ICML 2025, arXiv 2505.07271).",
        "usage": "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
                 "tokenizer = AutoTokenizer.from_pretrained(PATH)\n"
                 "model = AutoModelForSequenceClassification.from_pretrained(PATH).eval()\n"
                 "messages = [{'role': 'user', 'content': 'How do I boil an egg?'},\n"
                 "            {'role': 'assistant', 'content': 'Simmer it for 8 minutes.'}]\n"
                 "text = tokenizer.apply_chat_template(messages, tokenize=False)\n"
                 "inputs = tokenizer(text, return_tensors='pt', add_special_tokens=ADD_SPECIAL_TOKENS)\n"
                 "reward = model(**inputs).logits[0, 0].item()"}

    def __init__(self, backbone: Backbone, regularizer: Regularizer | None = None, loss: PairwiseLoss | None = None,
                 optimization: RewardOptimization | None = None, forward_mode: ForwardMode | None = None,
                 score_init: str = "default", on_nonfinite: OnNonFinite = "error", compile: bool = False) -> None:
        super().__init__(backbone, optimization)
        check(score_init in ("default", "normal"), "model.score_init",
              f"must be 'default' or 'normal', got {score_init!r}.")
        self.regularizer = regularizer if regularizer is not None else NoRegularizer()
        self.loss_fn = loss if loss is not None else BradleyTerry()
        self.forward_mode = forward_mode if forward_mode is not None else Padded()
        self.store_hparams(regularizer=self.regularizer, loss=self.loss_fn, forward_mode=self.forward_mode)
        plain = load_reward_backbone(backbone, self.tokenizer, score_init)
        self.backbone = self.wrap_backbone(plain, modules_to_save=[score_head_name(plain)])
        self.pooling = pooling_of(plain)  # peft injects adapters in place: `plain` includes them
        self.attention = attention_implementation(plain)
        self.forward_mode.check(self.pooling, self.attention)
        self._accepts_position_ids = "position_ids" in inspect.signature(plain.forward).parameters
        self._head_input: Tensor | None = None
        find_score_head(plain).register_forward_hook(self._capture_head_input)
        self._lookup = OneLookup(plain.get_input_embeddings())
        self.train_metrics, self.val_metrics, self.test_metrics = RewardMetrics(), RewardMetrics(), RewardMetrics()
        self.guard = NonFiniteGuard(on_nonfinite)
        self._compiled = False
        self._drop_gradients = False

    def _capture_head_input(self, module, args, output) -> None:
        self._head_input = args[0]

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Score sequences (through the configured forward mode).

        Args:
            input_ids: ``(N, T)`` token ids, left or right padded.
            attention_mask: ``(N, T)``, 1 on real tokens.

        Returns:
            ``rewards`` ``(N,)`` and ``hidden`` ``(N, H)``, the pooled hidden state that entered the score head.
        """
        return self.forward_mode(self, input_ids, attention_mask)

    def one_embedding_lookup(self, token_ids: list[Tensor]):
        """Context for a batch run as several passes: their ``(n, T)`` token ids are embedded in one lookup, so that
        backward builds one embedding gradient (:class:`~bsr_lightning.reward.embedding_lookup.OneLookup`). A no-op
        on compiled backbones and under FSDP, whose embedding weights are only whole inside the backbone's forward."""
        sharded = self.device_mesh is not None or isinstance(getattr(attached_trainer(self), "strategy", None),
                                                            FSDPStrategy)
        return self._lookup.batched(token_ids, enabled=not (self._compiled or sharded))

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

    def packed_forward(self, input_ids: Tensor, position_ids: Tensor, ends: Tensor,
                       attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One pass over ``(b, S)`` rows of several sequences each, with ``(b, S)`` positions restarting per sequence
        and an optional 4D ``attention_mask`` (or ``BlockMask``) that keeps them apart (without one, transformers
        derives it from the restarting positions); rewards ``(N,)`` and head inputs ``(N, H)`` are read at the
        ``(N,)`` last-token indices ``ends`` into the flattened ``b * S`` positions."""
        plain = self.backbone.get_base_model() if hasattr(self.backbone, "get_base_model") else self.backbone
        mask = {} if attention_mask is None else {"attention_mask": attention_mask}
        states = plain.base_model(input_ids=input_ids, position_ids=position_ids, use_cache=False, **mask)[0]
        hidden = states.flatten(0, 1)[ends]  # (N, H)
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

    def pair_outputs(self, batch: dict[str, Tensor]) -> PairOutputs:
        """Rewards and head-input hidden states of a batch of B pairs (``input_ids`` ``(2B, T)``, chosen first)."""
        rewards, hidden = self(batch["input_ids"], batch["attention_mask"])  # (2B,), (2B, H)
        chosen, rejected = rewards.chunk(2)
        chosen_hidden, rejected_hidden = hidden.chunk(2)
        return PairOutputs(chosen, rejected, chosen_hidden, rejected_hidden)

    def data_loss(self, out: PairOutputs, batch: dict[str, Tensor]) -> Tensor:
        """The loss ``()`` the data gives, before the regularizer's penalty: the pairwise loss of the regularizer's
        margin, averaged over the pairs."""
        return self.loss_fn(self.regularizer.margin(out), out.chosen, out.rejected, batch.get("margin")).mean()

    def pair_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Loss and statistics of one batch of B pairs."""
        out = self.pair_outputs(batch)
        penalty = self.regularizer.penalty(out)
        loss = self.data_loss(out, batch) + penalty
        values = {"loss": loss, "accuracy": (out.chosen > out.rejected).float(), "margin": out.chosen - out.rejected,
                  "penalty": penalty, "chosen_reward": out.chosen, "rejected_reward": out.rejected}
        hidden_norms = out.hidden.detach().float().norm(dim=-1)  # (2B,)
        return {"loss": loss, "values": values, "rewards": out.rewards, "hidden_norms": hidden_norms}

    def _run_stage(self, batch: dict[str, Tensor], stage: str) -> Tensor | None:
        out = self.pair_step(batch)
        if stage == "train" and not self.guard.ok(self.global_step, batch.get("row_ids"), attached_trainer(self),
                                                   loss=out["loss"], rewards=out["rewards"]):
            self.log("train/skipped_batches", float(self.guard.skipped), reduce_fx="max")
            return self._skipped_batch_loss()
        getattr(self, f"{stage}_metrics").update(out["values"], out["rewards"], out["hidden_norms"],
                                                 batch["attention_mask"].sum(-1))
        if stage == "train":
            step_stats = batch_summary(out["values"], out["rewards"], out["hidden_norms"])
            self.log("train/loss_step", step_stats.pop("loss"), prog_bar=True)
            self.log_dict({f"train/{k}_step": v for k, v in step_stats.items()})
        return out["loss"]

    def _skipped_batch_loss(self) -> Tensor | None:
        """None on one device (Lightning then skips backward and the optimizer step). Under DDP every rank must run
        backward, so a zero loss touching every trainable weight, whose gradients are dropped before the step."""
        if self.trainer.world_size == 1:
            return None
        self._drop_gradients = True
        return sum(p.sum() * 0.0 for p in self.parameters() if p.requires_grad)

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
        if self.device_mesh is not None:
            shard_fsdp2(self.backbone, self.device_mesh)
        if self.hparams.compile and not self._compiled:
            self.backbone.compile()
            self._compiled = True

    def on_before_optimizer_step(self, optimizer) -> None:
        if self._drop_gradients:  # a batch skipped on every rank: the optimizer leaves the weights alone
            self._drop_gradients = False
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None
            return
        if not self.guard.grads_ok(self.global_step, optimizer, self.trainer):
            self.log("train/skipped_batches", float(self.guard.skipped), reduce_fx="max")

    def on_fit_start(self) -> None:
        """Tell the regularizer the configured batch size; warn once when a batch-statistic regularizer (BSR) trains
        on length-grouped batches."""
        datamodule = getattr(attached_trainer(self), "datamodule", None)
        self.regularizer.configure(getattr(datamodule, "hparams", {}).get("batch_size"))
        grouped = bool(getattr(datamodule, "hparams", {}).get("group_by_length", False))
        if grouped and self.regularizer.batch_statistic and self.trainer.is_global_zero:
            warnings.warn(GROUPED_BATCHES_WARNING.format(name=type(self.regularizer).__name__), UserWarning,
                          stacklevel=1)

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")
