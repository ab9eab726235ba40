"""Rollouts per second: bsr_lightning's RLOOPolicy against TRL's RLOOTrainer, same policy, reward model and settings.

    python scripts/bench_rloo.py --steps 20 --output docs/bench_rloo.json

Both sides: the tiny policy (``tiny:synthetic``, or ``--policy DIR``), the same reward-model directory (``--reward``;
by default a randomly initialized tiny sequence classifier is written, since throughput does not depend on its
quality), fp32 on CPU, 8 prompts x k=4 completions per step, at most 48 new tokens, temperature 1, beta 0.05, one
optimizer step per rollout batch, no gradient checkpointing. The first step (warm-up) is not timed. The learning
rate is tiny so both policies keep their initial length distribution; mean completion lengths are reported.
The last line of output is one JSON object. ``--prompts hh`` times the update step on HH-RLHF-length prompts
instead, grouped against padded (``scripts/bench_rloo_groups.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
PROMPTS_PER_STEP, K, MAX_NEW, BETA, LR = 8, 4, 48, 0.05, 1e-7


def prompts() -> list[list[dict]]:
    from bsr_lightning.synthetic_task import all_prompts

    return [[{"role": "user", "content": p}] for p in all_prompts()]


def write_tiny_reward(path: Path) -> str:
    from transformers import AutoModelForSequenceClassification

    from bsr_lightning.backbones.names import resolve_model_path
    from bsr_lightning.backbones.tokenizers import load_tokenizer

    source = resolve_model_path("tiny:synthetic")
    AutoModelForSequenceClassification.from_pretrained(source, num_labels=1).save_pretrained(path)
    load_tokenizer(source).save_pretrained(path)
    return str(path)


def run_project(policy: str, reward: str, steps: int, data=None, forward_mode=None, max_new: int = MAX_NEW) -> dict:
    """Whole RLOO steps of ``RLOOPolicy`` on ``data`` (the synthetic prompts when None)."""
    import lightning as L

    from bsr_lightning import Backbone, Optimization, RLOOPolicy, Sampling, SyntheticPromptDataModule
    from bsr_lightning.rloo.kl import SequenceKL
    from bsr_lightning.rloo.rewards import ModelReward

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.lengths: list[float] = []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            self.times.append(time.perf_counter())
            self.lengths.append(float(trainer.callback_metrics["train/response_length"]))

    L.seed_everything(0)
    module = RLOOPolicy(Backbone(policy), ModelReward(reward), sampling=Sampling(k=K, max_new_tokens=max_new),
                        optimization=Optimization(lr=LR, schedule="constant", max_grad_norm=1.0),
                        kl=SequenceKL(BETA), samples_every_n_steps=0, forward_mode=forward_mode)
    clock = Clock()
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, callbacks=[clock],
                        log_every_n_steps=1)
    data = data or SyntheticPromptDataModule(batch_size=PROMPTS_PER_STEP, num_val_prompts=0, val_fraction=0)
    trainer.fit(module, data)
    return summarize(clock.times, clock.lengths[1:])


def run_trl(policy: str, reward: str, steps: int, output_dir: str, prompt_list: list | None = None,
            max_new: int = MAX_NEW) -> dict:
    """Whole steps of TRL's RLOOTrainer on ``prompt_list`` (lists of messages; the synthetic prompts when None)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl import RLOOConfig, RLOOTrainer

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.lengths: list[float] = []

        def on_step_end(self, args, state, control, **kwargs) -> None:
            self.times.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kwargs) -> None:
            if logs and "completions/mean_length" in logs:
                self.lengths.append(float(logs["completions/mean_length"]))

    config = RLOOConfig(output_dir=output_dir, use_cpu=True, report_to="none", bf16=False, seed=0,
                        gradient_checkpointing=False, per_device_train_batch_size=PROMPTS_PER_STEP * K,
                        num_generations=K, max_completion_length=max_new, temperature=1.0, beta=BETA,
                        learning_rate=LR, max_steps=steps, logging_steps=1, save_strategy="no",
                        disable_dropout=True, dataloader_num_workers=0)
    tokenizer = AutoTokenizer.from_pretrained(policy, padding_side="left")
    reward_tokenizer = AutoTokenizer.from_pretrained(reward)
    clock = Clock()
    dataset = Dataset.from_list([{"prompt": p} for p in prompt_list or prompts()])
    trainer = RLOOTrainer(model=AutoModelForCausalLM.from_pretrained(policy),
                          reward_funcs=AutoModelForSequenceClassification.from_pretrained(reward, num_labels=1),
                          args=config, train_dataset=dataset,
                          processing_class=tokenizer, reward_processing_classes=reward_tokenizer, callbacks=[clock])
    trainer.train()
    return summarize(clock.times, clock.lengths[1:])


def summarize(times: list[float], lengths: list[float]) -> dict:
    """Rollouts/s over the steps after the first (warm-up); peak RSS of the process so far."""
    timed = len(times) - 1
    rollouts_per_s = timed * PROMPTS_PER_STEP * K / (times[-1] - times[0])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rollouts_per_s": round(rollouts_per_s, 2), "timed_steps": timed,
            "mean_completion_tokens": round(sum(lengths) / max(1, len(lengths)), 2), "peak_rss_mb": round(peak_mb)}


def one_side(side: str, policy: str, reward: str, steps: int) -> dict:
    command = [sys.executable, __file__, "--side", side, "--policy", policy, "--reward", reward, "--steps", str(steps)]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{side} run failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])[side]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--policy", default="tiny:synthetic")
    parser.add_argument("--reward", default=None, help="an exported reward directory (default: a random tiny one)")
    parser.add_argument("--side", choices=["both", "project", "trl"], default="both")
    parser.add_argument("--output", default=None, help="also write the JSON here")
    parser.add_argument("--prompts", choices=["synthetic", "hh"], default="synthetic",
                        help="hh: the update step on HH-RLHF-length prompts, grouped against padded "
                             "(scripts/bench_rloo_groups.py)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--whole_steps", type=int, default=6, help="hh: whole RLOO steps per row (one warm-up)")
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--policy_dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed_one", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prompts == "hh":
        import bench_rloo_groups

        args.steps = args.steps if "--steps" in sys.argv else 6
        bench_rloo_groups.main(args)
        return
    from bsr_lightning.backbones.names import resolve_model_path

    policy = resolve_model_path(args.policy)
    with tempfile.TemporaryDirectory() as tmp:
        reward = args.reward or write_tiny_reward(Path(tmp) / "reward")
        if args.side == "project":
            result = {"project": run_project(policy, reward, args.steps)}
        elif args.side == "trl":
            result = {"trl": run_trl(policy, reward, args.steps, str(Path(tmp) / "trl"))}
        else:  # one process per side, so peak memory is each side's own
            result = {side: one_side(side, policy, reward, args.steps) for side in ("project", "trl")}
    if len(result) == 2:
        result["ratio_rollouts_per_s"] = round(result["project"]["rollouts_per_s"] / result["trl"]["rollouts_per_s"],
                                               2)
    import torch

    result["settings"] = {"prompts_per_step": PROMPTS_PER_STEP, "k": K, "max_new_tokens": MAX_NEW,
                          "steps": args.steps, "policy": args.policy, "device": "cpu",
                          "torch_threads": torch.get_num_threads()}
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
