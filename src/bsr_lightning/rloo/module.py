"""``RLOOPolicy``: REINFORCE leave-one-out (Ahmadian et al. 2024, arXiv 2402.14740) against a reward source.

Per batch of ``B`` prompts: the generation backend samples ``k`` completions each (``N = B * k``), the reward
source scores them, the reward shapers shape the scores, the KL penalty is subtracted, leave-one-out advantages are
taken (and shaped again), then ``ppo_epochs`` passes of ``num_minibatches`` clipped-ratio updates run.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from bsr_lightning.args import Backbone, RLOOOptimization, Sampling
from bsr_lightning.backbones.loading import eos_token_ids, load_causal_lm
from bsr_lightning.backbones.transformers_compat import attention_implementation
from bsr_lightning.base import BackboneModule
from bsr_lightning.errors import check
from bsr_lightning.lightning_compat import attached_trainer
from bsr_lightning.rloo.advantages import leave_one_out_advantages
from bsr_lightning.rloo.forward import Padded, PolicyForward
from bsr_lightning.rloo.generation import Generator, HFGenerate, Rollout
from bsr_lightning.rloo.kl import KLPenalty, SequenceKL, sequence_kl
from bsr_lightning.rloo.loss import PolicyLoss, SequenceClip, masked_mean
from bsr_lightning.rloo.reference import DisabledAdapters, FrozenCopy, Reference
from bsr_lightning.rloo.rewards import RewardSource, prompt_text
from bsr_lightning.rloo.shapers import RewardShaper
from bsr_lightning.training.guards import NonFiniteGuard, OnNonFinite


class RLOOPolicy(BackboneModule):
    """Train a causal LM with RLOO against a reward source; an optional gold reward is logged, never optimized.

    ``trainer.max_steps`` counts optimizer steps: ``ppo_epochs * num_minibatches`` per prompt batch.

    Args:
        backbone: the starting policy (e.g. an exported SFTModel) and how it is loaded.
        reward: the reward source optimized: ``ModelReward`` (an exported reward model) or ``FunctionReward``.
        gold_reward: a reward source logged beside it (``val/gold_reward``), never optimized.
        sampling: ``k``, temperature, top_p, max_new_tokens; ``Sampling()`` (k 4, 64 tokens) when None.
        generation: the generation backend; ``HFGenerate()`` when None.
        kl: how the KL to the reference enters: ``SequenceKL`` (in the reward, default beta 0.05) or ``TokenKL``
            (per token, in the loss).
        reward_shapers: applied in order to the scores (before the KL penalty) and to the advantages: ``Center``,
            ``RMSNormalize``, ``Clip``, ``MissingEOSPenalty``, ``Whiten`` (:mod:`bsr_lightning.rloo.shapers`).
        reference: the KL's reference policy: ``FrozenCopy`` or ``DisabledAdapters`` (the default with LoRA).
        optimization: optimizer and schedule; AdamW, lr 1e-6, constant, gradient norm clipped to 1 when None.
        ppo_epochs: passes over each rollout batch.
        num_minibatches: optimizer steps per pass (the ``N`` rollouts are split evenly).
        policy_loss: how ratios and advantages make the loss: ``SequenceClip`` (the RLOO paper's, one ratio and clip
            per response; the default) or ``TokenClip`` (PPO/GRPO's per-token mean), each with its ``clip``.
        samples_every_n_steps: append sample completions to ``<log_dir>/samples.jsonl`` this often (0: never).
        num_samples: completions written each time.
        on_nonfinite: NaN/inf scores, advantages, loss or gradients: ``error`` stops naming the step and rows,
            ``skip`` skips the batch (or step) and counts it.
        forward_mode: how the policy's and the reference's log-prob passes see the rollouts: ``Padded`` (None; each
            sample with its own copy of the prompt) or ``SharedPrompt`` (each prompt once for its ``k`` samples,
            minibatches of whole prompt groups; equal log-probs, loss and gradients) from
            :mod:`bsr_lightning.rloo.forward`.
    """

    optimization_class = RLOOOptimization

    def __init__(self, backbone: Backbone, reward: RewardSource, gold_reward: RewardSource | None = None,
                 sampling: Sampling | None = None, generation: Generator | None = None, kl: KLPenalty | None = None,
                 reward_shapers: list[RewardShaper] | None = None, reference: Reference | None = None,
                 optimization: RLOOOptimization | None = None, ppo_epochs: int = 1, num_minibatches: int = 1,
                 policy_loss: PolicyLoss | None = None, samples_every_n_steps: int = 50, num_samples: int = 4,
                 on_nonfinite: OnNonFinite = "error", forward_mode: PolicyForward | None = None) -> None:
        super().__init__(backbone, optimization)
        check(ppo_epochs >= 1, "model.ppo_epochs", f"must be at least 1, got {ppo_epochs}.")
        check(num_minibatches >= 1, "model.num_minibatches", f"must be at least 1, got {num_minibatches}.")
        self.reward, self.gold_reward = reward, gold_reward
        self.sampling = sampling if sampling is not None else Sampling()
        self.generation = generation if generation is not None else HFGenerate()
        self.kl = kl if kl is not None else SequenceKL()
        self.policy_loss = policy_loss if policy_loss is not None else SequenceClip()
        self.reward_shapers = list(reward_shapers or [])
        self.forward_mode = forward_mode if forward_mode is not None else Padded()
        self.reference = reference if reference is not None else (DisabledAdapters() if backbone.lora else
                                                                  FrozenCopy())
        self.store_hparams(sampling=self.sampling, generation=self.generation, kl=self.kl, policy_loss=self.policy_loss,
                           reward_shapers=self.reward_shapers, reference=self.reference, forward_mode=self.forward_mode)
        self.automatic_optimization = False
        model = load_causal_lm(backbone, self.tokenizer)
        self.forward_mode.check(attention_implementation(model))
        self.eos_ids = eos_token_ids(model, self.tokenizer)
        self.guard = NonFiniteGuard(on_nonfinite)
        self.reference.attach(model)  # before adapters: kept out of the state dict and the optimizer
        self.backbone = self.wrap_backbone(model)

    def optimizer_steps_per_batch(self) -> int:
        return self.hparams.ppo_epochs * self.hparams.num_minibatches

    def on_fit_start(self) -> None:
        self._move_frozen()

    def on_validation_start(self) -> None:
        self._move_frozen()

    def _move_frozen(self) -> None:
        """Reward sources and the reference live outside the module's parameters: place them on its device."""
        for part in (self.reward, self.gold_reward, self.reference):
            if part is not None:
                part.to(self.device)

    def _logprobs(self, model, rollout: Rollout, index: Tensor | None = None, with_entropy: bool = False):
        index = torch.arange(rollout.input_ids.size(0), device=self.device) if index is None else index
        return self.forward_mode(model, rollout, index, self.sampling.temperature, self.sampling.k, with_entropy)

    def shaped_scores(self, scores: Tensor, has_eos: Tensor) -> Tensor:
        """``(N,)`` scores after every reward shaper's ``scores`` hook, in order."""
        for shaper in self.reward_shapers:
            scores = shaper.scores(scores, has_eos)
        return scores

    def advantages(self, rewards: Tensor) -> Tensor:
        """``(N,)`` leave-one-out advantages of ``(N,)`` rewards after every shaper's ``advantages`` hook."""
        advantages = leave_one_out_advantages(rewards, self.sampling.k)
        for shaper in self.reward_shapers:
            advantages = shaper.advantages(advantages)
        return advantages

    @torch.no_grad()
    def rollout(self, batch: dict) -> tuple[Rollout, dict[str, Tensor]]:
        """Sample, score and compute advantages; returns the rollout and its per-rollout statistics ``(N,)``."""
        rollout = self.generation(self.backbone, self.tokenizer, batch, self.sampling, self.eos_ids)
        old_logp, entropy = self._logprobs(self.backbone, rollout, with_entropy=True)
        ref_logp = self.reference.logprobs(self.backbone, lambda model: self._logprobs(model, rollout)[0])
        mask = rollout.response_mask
        scores = self.reward(rollout.prompts, rollout.responses).to(self.device)  # (N,)
        shaped = self.shaped_scores(scores, rollout.has_eos)
        rewards = shaped - self.kl.reward_penalty(old_logp, ref_logp, mask)
        stats = {"proxy_reward": scores, "shaped_reward": shaped, "reward": rewards,
                 "advantage": self.advantages(rewards), "kl": sequence_kl(old_logp, ref_logp, mask),
                 "entropy": masked_mean(entropy, mask, dim=-1), "response_length": rollout.lengths.float(),
                 "eos_rate": rollout.has_eos.float(), "old_logp": old_logp, "ref_logp": ref_logp}
        stats.update({f"reward/{name}": part.to(self.device) for name, part in self.reward.components().items()})
        if self.gold_reward is not None:
            stats["gold_reward"] = self.gold_reward(rollout.prompts, rollout.responses).to(self.device)
        return rollout, stats

    def training_step(self, batch: dict, batch_idx: int) -> None:
        rollout, stats = self.rollout(batch)
        if not self.guard.ok(self.global_step, batch.get("row_ids"), attached_trainer(self),
                             proxy_reward=stats["proxy_reward"], advantage=stats["advantage"]):
            return
        losses, clip_fractions = [], []
        for _ in range(self.hparams.ppo_epochs):
            for index in self.forward_mode.minibatches(rollout.input_ids.size(0), self.sampling.k,
                                                       self.hparams.num_minibatches, self.device):
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
        loss, clip_fraction = self.policy_loss(logp, stats["old_logp"][index], stats["advantage"][index], mask)
        loss = loss + self.kl.loss_penalty(logp, stats["ref_logp"][index], mask)
        optimizer.zero_grad()
        if not self.guard.ok(self.global_step, None, attached_trainer(self), loss=loss):
            return loss.detach(), clip_fraction
        self.manual_backward(loss)
        if not self.guard.grads_ok(self.global_step, optimizer, self.trainer):
            return loss.detach(), clip_fraction
        if self.optimization.max_grad_norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.optimization.max_grad_norm,
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
        names = (*names, *(name for name in stats if name.startswith("reward/")))  # WeightedRewards' parts
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
