"""``RLOOPolicy``: REINFORCE leave-one-out (Ahmadian et al. 2024) against an exported reward model.

Per batch of ``B`` prompts: sample ``k`` completions each (``N = B * k``), score them with the reward model, shape
the scores with the regularizer's reward-side hook, clip them, penalize completions without EOS, subtract the KL
penalty, take leave-one-out advantages, then run ``ppo_epochs`` passes of ``num_minibatches`` clipped-ratio updates.

How the reward-side hook changes the gradient under the leave-one-out baseline: the advantage of a rollout is its
reward minus the mean of the other ``k - 1`` rewards of its prompt, so adding one constant to every reward of the
batch cancels exactly. ``BatchSumToZero.shape_rewards`` (subtract the batch mean) therefore changes nothing unless
``reward_clip`` is set (then it moves the clipping window onto the batch's centre); what BSR changes in RLOO is the
reward model it trained. ``LogitNorm.shape_rewards`` (divide by the batch's RMS) rescales every score advantage by a
per-batch factor: the policy gradient no longer depends on the reward model's scale, and the KL penalty weighs
relatively more when raw scores are large (an adaptive ``beta``).
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from bsr_lightning.adapters import AdapterCheckpoints, LoRA, Quantization, apply_lora, check_quantization
from bsr_lightning.guards import NonFiniteGuard, OnNonFinite
from bsr_lightning.models import eos_token_ids, load_causal_lm, load_tokenizer
from bsr_lightning.optim import Schedule, build_optimizer
from bsr_lightning.regularizers import NoRegularizer, Regularizer
from bsr_lightning.rewards import load_reward, prompt_text
from bsr_lightning.rl import (
    KLPenalty,
    SequenceKL,
    clipped_surrogate,
    leave_one_out_advantages,
    masked_mean,
    sequence_kl,
    whiten,
)
from bsr_lightning.rollout import Rollout, response_logprobs, sample
from bsr_lightning.specs import object_spec


class RLOOPolicy(AdapterCheckpoints, L.LightningModule):
    """Train a causal LM with RLOO against a reward model; an optional gold reward is logged, never optimized.

    ``trainer.max_steps`` counts optimizer steps: ``ppo_epochs * num_minibatches`` per prompt batch.

    Args:
        model_name_or_path: the starting policy (hub id, local directory, e.g. an exported SFTModel).
        reward_model: an exported reward directory (or ``.ckpt``), or ``module:function`` scoring
            ``(prompt, response) -> float``.
        gold_reward: the same kinds as ``reward_model``; logged beside the proxy reward.
        regularizer: its ``shape_rewards`` hook is applied to each rollout batch's reward-model scores.
        kl: how the KL to the reference enters: ``SequenceKL`` (in the reward, default beta 0.05) or ``TokenKL``
            (per-token, in the loss).
        k: completions per prompt (at least 2).
        ppo_epochs: passes over each rollout batch.
        num_minibatches: optimizer steps per pass (the ``N`` rollouts are split evenly).
        clip_range: PPO's ratio clip epsilon.
        whiten_advantages: normalize advantages to zero mean, unit std over the rollout batch.
        reward_clip: clip shaped scores to ``[-reward_clip, reward_clip]``; None for no clipping.
        missing_eos_penalty: subtracted from the score of completions that reach ``max_new_tokens`` without EOS.
        temperature: sampling temperature (also used for the log-probabilities).
        top_p: nucleus sampling threshold.
        max_new_tokens: the longest completion.
        lr: learning rate of AdamW.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        warmup_ratio: fraction of the optimizer steps spent warming up.
        lr_schedule: ``constant``, ``linear`` or ``cosine`` after warmup.
        max_grad_norm: clip the gradient norm; None for no clipping.
        lora: train LoRA adapters; the reference is then the policy with adapters disabled (no second copy).
        quantization: load the frozen base in ``nf4`` or ``int8`` (bitsandbytes; needs ``lora``): QLoRA.
        chat_template: a Jinja chat template replacing the policy tokenizer's.
        torch_dtype: ``bfloat16``, ``float16``, ``float32`` or None for the checkpoint's.
        attn_implementation: e.g. ``sdpa`` or ``flash_attention_2``.
        trust_remote_code: allow model code from the hub (off unless asked for).
        gradient_checkpointing: recompute activations in the backward pass.
        reward_batch_size: sequences per reward-model forward pass.
        reward_max_length: the longest conversation the reward model reads (the end is kept).
        samples_every_n_steps: every this many prompt batches, append sample completions to ``samples.jsonl``.
        num_samples: completions written each time.
        on_nonfinite: NaN/inf rewards or loss: ``error`` stops naming the step and prompt row ids, ``skip`` skips
            the rollout batch (or minibatch update) and counts it.
    """

    def __init__(self, model_name_or_path: str, reward_model: str, gold_reward: str | None = None,
                 regularizer: Regularizer | None = None, kl: KLPenalty | None = None, k: int = 4,
                 ppo_epochs: int = 1, num_minibatches: int = 1, clip_range: float = 0.2,
                 whiten_advantages: bool = False, reward_clip: float | None = None,
                 missing_eos_penalty: float | None = None, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 64, lr: float = 1e-6, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), warmup_ratio: float = 0.0,
                 lr_schedule: Schedule = "constant", max_grad_norm: float | None = 1.0, lora: LoRA | None = None,
                 quantization: Quantization | None = None,
                 chat_template: str | None = None, torch_dtype: str | None = None,
                 attn_implementation: str | None = None, trust_remote_code: bool = False,
                 gradient_checkpointing: bool = False, reward_batch_size: int = 64, reward_max_length: int = 1024,
                 samples_every_n_steps: int = 50, num_samples: int = 4,
                 on_nonfinite: OnNonFinite = "error") -> None:
        super().__init__()
        check_quantization(quantization, lora)
        if k < 2:
            raise ValueError(f"RLOO needs k >= 2 completions per prompt, got k={k}.")
        self.save_hyperparameters(ignore=["regularizer", "kl"])
        self.regularizer = regularizer if regularizer is not None else NoRegularizer()
        self.kl = kl if kl is not None else SequenceKL()
        self.hparams.update(regularizer=object_spec(self.regularizer), kl=object_spec(self.kl),
                            lora=asdict(lora) if isinstance(lora, LoRA) else lora)  # plain data in checkpoints
        self.automatic_optimization = False
        self.tokenizer = load_tokenizer(model_name_or_path, chat_template, trust_remote_code)
        model = load_causal_lm(model_name_or_path, self.tokenizer, False, torch_dtype, trust_remote_code,
                               attn_implementation, quantization)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable()
        self.eos_ids = eos_token_ids(model, self.tokenizer)
        self.guard = NonFiniteGuard(on_nonfinite)
        self._frozen: dict = {}  # reference, reward, gold: kept out of the state dict and the optimizer
        if lora is None:
            self._frozen["reference"] = copy.deepcopy(model).eval().requires_grad_(False)
        self.backbone = apply_lora(model, lora, quantized=quantization is not None)
        self.backbone.train()

    def setup(self, stage: str) -> None:
        super().setup(stage)  # AdapterCheckpoints: supported strategy for lora/quantization
        hp = self.hparams
        if stage == "fit" or stage == "validate":
            self._frozen.setdefault("reward", load_reward(hp.reward_model, hp.reward_batch_size, hp.reward_max_length))
            if hp.gold_reward is not None:
                self._frozen.setdefault("gold", load_reward(hp.gold_reward, hp.reward_batch_size,
                                                            hp.reward_max_length))

    def on_fit_start(self) -> None:
        self._move_frozen()

    def on_validation_start(self) -> None:
        self._move_frozen()

    def _move_frozen(self) -> None:
        for name, value in self._frozen.items():
            self._frozen[name] = value.to(self.device)

    def reference_logprobs(self, rollout: Rollout) -> Tensor:
        """``(N, L)`` response log-probabilities under the frozen reference."""
        if "reference" in self._frozen:
            return self._logprobs(self._frozen["reference"], rollout)[0]
        with self.backbone.disable_adapter():
            return self._logprobs(self.backbone, rollout)[0]

    def _logprobs(self, model, rollout: Rollout, index: Tensor | None = None, with_entropy: bool = False):
        index = torch.arange(rollout.input_ids.size(0), device=self.device) if index is None else index
        input_ids, attention_mask, _ = rollout.select(index)
        return response_logprobs(model, input_ids, attention_mask, rollout.prompt_width, self.hparams.temperature,
                                 with_entropy)

    @torch.no_grad()
    def rollout(self, batch: dict) -> tuple[Rollout, dict[str, Tensor]]:
        """Sample, score and compute advantages; returns the rollout and its per-rollout statistics ``(N,)``."""
        hp = self.hparams
        rollout = sample(self.backbone, self.tokenizer, batch, hp.k, self.eos_ids, hp.max_new_tokens,
                         hp.temperature, hp.top_p)
        old_logp, entropy = self._logprobs(self.backbone, rollout, with_entropy=True)
        ref_logp = self.reference_logprobs(rollout)
        mask = rollout.response_mask
        scores = self._frozen["reward"](rollout.prompts, rollout.responses).to(self.device)  # (N,)
        shaped = self.regularizer.shape_rewards(scores)
        if hp.reward_clip is not None:
            shaped = shaped.clamp(-hp.reward_clip, hp.reward_clip)
        if hp.missing_eos_penalty is not None:
            shaped = shaped - hp.missing_eos_penalty * (~rollout.has_eos).float()
        rewards = shaped - self.kl.reward_penalty(old_logp, ref_logp, mask)
        advantages = leave_one_out_advantages(rewards, hp.k)
        if hp.whiten_advantages:
            advantages = whiten(advantages)
        stats = {"proxy_reward": scores, "shaped_reward": shaped, "reward": rewards, "advantage": advantages,
                 "kl": sequence_kl(old_logp, ref_logp, mask), "entropy": masked_mean(entropy, mask, dim=-1),
                 "response_length": rollout.lengths.float(), "eos_rate": rollout.has_eos.float(),
                 "old_logp": old_logp, "ref_logp": ref_logp}
        if "gold" in self._frozen:
            stats["gold_reward"] = self._frozen["gold"](rollout.prompts, rollout.responses).to(self.device)
        return rollout, stats

    def training_step(self, batch: dict, batch_idx: int) -> None:
        rollout, stats = self.rollout(batch)
        if not self.guard.ok(self.global_step, batch.get("row_ids"), proxy_reward=stats["proxy_reward"],
                             advantage=stats["advantage"]):
            return
        losses, clip_fractions = [], []
        for _ in range(self.hparams.ppo_epochs):
            order = torch.randperm(rollout.input_ids.size(0), device=self.device)
            for index in order.chunk(self.hparams.num_minibatches):
                loss, clip_fraction = self._update(rollout, stats, index)
                losses.append(loss)
                clip_fractions.append(clip_fraction)
        self._log_stats("train", stats)
        self.log_dict({"train/loss": torch.stack(losses).mean(), "train/clip_fraction": torch.stack(clip_fractions)
                      .mean(), "train/advantage_std": stats["advantage"].std()}, batch_size=len(batch["prompts"]))
        if self.hparams.samples_every_n_steps and batch_idx % self.hparams.samples_every_n_steps == 0:
            self._write_samples(rollout, stats)

    def _update(self, rollout: Rollout, stats: dict[str, Tensor], index: Tensor) -> tuple[Tensor, Tensor]:
        """One optimizer step on the rollouts at ``index``; returns the loss and the clip fraction."""
        optimizer, scheduler = self.optimizers(), self.lr_schedulers()
        logp, _ = self._logprobs(self.backbone, rollout, index)
        mask = rollout.response_mask[index]
        loss, clip_fraction = clipped_surrogate(logp, stats["old_logp"][index], stats["advantage"][index], mask,
                                                self.hparams.clip_range)
        loss = loss + self.kl.loss_penalty(logp, stats["ref_logp"][index], mask)
        optimizer.zero_grad()
        if not self.guard.ok(self.global_step, None, loss=loss):
            return loss.detach(), clip_fraction
        self.manual_backward(loss)
        if not self.guard.grads_ok(self.global_step, optimizer, self.trainer):
            return loss.detach(), clip_fraction
        if self.hparams.max_grad_norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.max_grad_norm,
                                gradient_clip_algorithm="norm")
        optimizer.step()
        scheduler.step()
        return loss.detach(), clip_fraction

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """Held-out rollouts with fixed noise per batch (the same draws at every validation, so the curve compares
        policies, not samples); training's RNG stream is left untouched (exact resume)."""
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(batch_idx)
            _, stats = self.rollout(batch)
        self._log_stats("val", stats)

    def _log_stats(self, stage: str, stats: dict[str, Tensor]) -> None:
        names = ("proxy_reward", "gold_reward", "reward", "kl", "entropy", "response_length", "eos_rate")
        values = {f"{stage}/{name}": stats[name].float().mean() for name in names if name in stats}
        if stage == "train":
            values["train/advantage_mean"] = stats["advantage"].mean()
        self.log_dict(values, batch_size=stats["reward"].numel(), prog_bar=False, on_epoch=stage == "val")

    def _write_samples(self, rollout: Rollout, stats: dict[str, Tensor]) -> None:
        """Append sample completions with their rewards to ``<log_dir>/samples.jsonl`` (rank 0)."""
        if not self.trainer.is_global_zero:
            return
        log_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / "samples.jsonl", "a", encoding="utf-8") as handle:
            for i in range(min(self.hparams.num_samples, len(rollout.responses))):
                row = {"step": self.global_step, "prompt": prompt_text(rollout.prompts[i]),
                       "response": rollout.responses[i], "proxy_reward": round(float(stats["proxy_reward"][i]), 4),
                       "kl": round(float(stats["kl"][i]), 4)}
                if "gold_reward" in stats:
                    row["gold_reward"] = round(float(stats["gold_reward"][i]), 4)
                handle.write(json.dumps(row) + "\n")

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        total = self.trainer.estimated_stepping_batches
        if self.trainer.max_steps in (-1, None):  # counted in prompt batches: convert to optimizer steps
            total *= hp.ppo_epochs * hp.num_minibatches
        return build_optimizer(self, hp.lr, hp.weight_decay, hp.betas, hp.warmup_ratio, hp.lr_schedule, int(total))
