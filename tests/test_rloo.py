"""RLOOPolicy, SFTModel and their data on the tiny offline policy (``tiny:synthetic``)."""

import csv
import json
import sys

import lightning as L
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bsr_lightning import (
    Backbone,
    Optimization,
    RLOOPolicy,
    Sampling,
    SFTModel,
    SyntheticPromptDataModule,
    SyntheticSFTDataModule,
)
from bsr_lightning.args import LoRA
from bsr_lightning.backbones.export import export_module
from bsr_lightning.cli import cli_main
from bsr_lightning.data.prompts import PromptDataModule
from bsr_lightning.rloo.kl import TokenKL
from bsr_lightning.rloo.reference import FrozenCopy
from bsr_lightning.rloo.rewards import FunctionReward
from conftest import HH_DATA, REPO, load_script


def policy(reward: str, k: int, max_new_tokens: int, lr: float = 1e-6, lora: LoRA | None = None,
           **kwargs) -> RLOOPolicy:
    """The tiny policy against a rule-based reward of ``reward_fns``."""
    return RLOOPolicy(Backbone("tiny:synthetic", lora=lora), FunctionReward(f"reward_fns:{reward}"),
                      sampling=Sampling(k=k, max_new_tokens=max_new_tokens),
                      optimization=Optimization(lr=lr, schedule="constant", max_grad_norm=1.0), **kwargs)


def prompt_batch(module, n: int = 3) -> dict:
    data = SyntheticPromptDataModule(batch_size=n, num_val_prompts=4)
    data.tokenizer = module.tokenizer
    data.setup("fit")
    return next(iter(data.train_dataloader()))


def trainer(tmp_path, steps: int) -> L.Trainer:
    return L.Trainer(max_steps=steps, default_root_dir=tmp_path, logger=L.pytorch.loggers.CSVLogger(tmp_path),
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     log_every_n_steps=1, limit_val_batches=0)


def train_rewards(tmp_path) -> list[float]:
    path = next(tmp_path.glob("lightning_logs/version_*/metrics.csv"))
    return [float(r["train/proxy_reward"]) for r in csv.DictReader(open(path)) if r.get("train/proxy_reward")]


@pytest.mark.parametrize("lora", [None, LoRA(r=4, alpha=8)], ids=["copy", "lora"])
def test_kl_is_zero_before_the_first_update(lora):
    torch.manual_seed(0)
    module = policy("length_words", k=2, max_new_tokens=8, lora=lora)
    module.setup("fit")
    rollout, stats = module.rollout(prompt_batch(module))
    assert stats["kl"].abs().max().item() == 0.0
    assert torch.equal(stats["old_logp"], stats["ref_logp"])
    assert stats["reward"].shape == (6,) and stats["advantage"].view(3, 2).sum(-1).abs().max() < 1e-5
    assert len(rollout.responses) == 6 and rollout.response_mask.shape == rollout.response_ids.shape


def test_policy_learns_a_rule_based_reward(tmp_path):
    L.seed_everything(0)
    module = policy("count_practice", k=4, max_new_tokens=16, lr=3e-3, samples_every_n_steps=0)
    trainer(tmp_path, 40).fit(module, SyntheticPromptDataModule(batch_size=8, num_val_prompts=8))
    rewards = train_rewards(tmp_path)
    assert len(rewards) == 40
    assert sum(rewards[:5]) / 5 < 1.0 and sum(rewards[-5:]) / 5 > 5.0  # 'Practice' count per 16-token response


def test_kl_grows_and_reference_stays_frozen(tmp_path):
    L.seed_everything(0)
    module = policy("length_words", k=2, max_new_tokens=8, lr=3e-3, ppo_epochs=2, num_minibatches=2,
                    samples_every_n_steps=0)
    assert isinstance(module.reference, FrozenCopy)  # the default without LoRA
    reference = {k: v.clone() for k, v in module.reference.model.state_dict().items()}
    trainer(tmp_path, 8).fit(module, SyntheticPromptDataModule(batch_size=4, num_val_prompts=4))
    assert all(torch.equal(v, module.reference.model.state_dict()[k]) for k, v in reference.items())
    assert not any("reference" in k for k in module.state_dict())
    rollout, stats = module.rollout(prompt_batch(module))
    assert not torch.equal(stats["old_logp"], stats["ref_logp"])  # the policy moved away from the reference
    assert TokenKL(beta=1.0).loss_penalty(stats["old_logp"], stats["ref_logp"], rollout.response_mask) > 0


def test_exported_policy_generates_the_same_tokens_greedily(tmp_path):
    L.seed_everything(0)
    module = policy("count_practice", k=2, max_new_tokens=8, lr=3e-3, lora=LoRA(r=4, alpha=8),
                    samples_every_n_steps=0)
    trainer(tmp_path, 3).fit(module, SyntheticPromptDataModule(batch_size=4, num_val_prompts=4))
    out = export_module(module, tmp_path / "policy")
    assert AutoTokenizer.from_pretrained(out).chat_template == module.tokenizer.chat_template
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    batch = prompt_batch(module)
    kwargs = {"max_new_tokens": 12, "do_sample": False, "pad_token_id": module.tokenizer.pad_token_id}
    module.backbone.eval()
    with torch.no_grad():
        expected = module.backbone.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                            **kwargs)
        got = reloaded.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)
    assert torch.equal(expected, got)


def test_sft_loss_covers_response_tokens_only_and_falls(tmp_path):
    L.seed_everything(0)
    module = SFTModel(Backbone("tiny:synthetic"), Optimization(lr=3e-3, warmup_ratio=0.03, schedule="cosine"))
    data = SyntheticSFTDataModule(num_examples=256, batch_size=16)
    data.tokenizer = module.tokenizer
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    example = data.datasets["train"][0]
    labels = data.collate([example])["labels"][0]
    assert (labels[: example.prompt_length] == -100).all() and labels[-1] == module.tokenizer.eos_token_id
    response = module.tokenizer.decode(labels[labels != -100], skip_special_tokens=True)
    assert response == example.response[0]["content"]
    before = module._loss(batch)[0].item()
    trainer(tmp_path, 30).fit(module, data)
    module.eval()
    assert module._loss(batch)[0].item() < before - 1.0


def test_prompts_from_preference_data_are_left_padded_user_turns():
    from bsr_lightning.backbones.tokenizers import load_tokenizer

    data = PromptDataModule(path=str(HH_DATA), tokenizer="tiny:synthetic", max_length=64, batch_size=4,
                            max_rows=200, bad_rows="skip")  # 9 HH transcripts repeat an assistant turn
    data.setup("fit")
    counts = data.counts
    kept = len(data.datasets["train"]) + len(data.datasets.get("val", []))
    assert kept + counts["train"]["dropped_overlong"] + counts["val"]["dropped_overlong"] == 200
    assert counts["train"]["dropped_overlong"] > 0  # long HH prompts are dropped and counted, never cut
    batch = next(iter(data.train_dataloader()))
    assert batch["attention_mask"][:, -1].all() and all(p[-1]["role"] == "user" for p in batch["prompts"])
    tokenizer = load_tokenizer("tiny:synthetic")
    assert tokenizer.decode(batch["input_ids"][0][-1:]) == "<|assistant|>"


def test_prompt_rows_ending_with_assistant_are_refused(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": "How do I get started with chess?"}) + "\n" + json.dumps(
        {"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n")
    data = PromptDataModule(path=str(path), tokenizer="tiny:synthetic", val_fraction=0)
    with pytest.raises(ValueError, match=r"prompts.jsonl:2: the prompt must end with a user message"):
        data.setup("fit")


def test_rloo_cli_logs_metrics_and_samples(tmp_path):
    cli = cli_main(["fit", "--config", str(REPO / "configs/rloo/synthetic_tiny.yaml"),
                    "--model.backbone.name", "tiny:synthetic",
                    "--model.reward", "bsr_lightning.rloo.rewards.FunctionReward",
                    "--model.reward.import_path", "reward_fns:length_words",
                    "--trainer.max_steps", "4", "--trainer.val_check_interval", "2",
                    "--trainer.limit_val_batches", "1", "--trainer.default_root_dir", str(tmp_path),
                    "--trainer.callbacks.output_dir", str(tmp_path / "policy"), "--model.samples_every_n_steps", "2"])
    log_dir = tmp_path / "lightning_logs" / "version_0"
    names = set(next(csv.DictReader(open(log_dir / "metrics.csv"))).keys())
    for name in ("train/proxy_reward", "train/gold_reward", "train/kl", "train/entropy", "train/response_length",
                 "train/eos_rate", "train/clip_fraction", "train/advantage_mean", "train/advantage_std",
                 "val/gold_reward", "val/kl"):
        assert name in names, name
    samples = [json.loads(line) for line in open(log_dir / "samples.jsonl")]
    assert samples and {"prompt", "response", "proxy_reward", "gold_reward", "kl"} <= set(samples[0])
    assert cli.trainer.global_step == 4 and (tmp_path / "policy" / "config.json").is_file()


def test_rloo_demo_quick_writes_summary(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["rloo_demo.py", "--output_dir", str(tmp_path), "--quick"])
    monkeypatch.syspath_prepend(str(REPO / "scripts"))  # as when it runs: its helpers sit beside it
    load_script("rloo_demo").main()  # in this process: the script runs its fits through cli_main
    summary = json.loads((tmp_path / "summary.json").read_text())
    for name in ("bt", "bsr"):
        for when in ("start", "end"):
            assert set(summary[name][when]) == {"proxy_reward", "gold_reward", "kl", "response_length"}
        assert summary[name]["start"]["kl"] == 0.0
    assert summary["run"]["cpu"] and summary["run"]["date"]
    assert (tmp_path / "overoptimization.png").stat().st_size > 10_000
