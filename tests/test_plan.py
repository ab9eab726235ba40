"""``plan``: exact parameter counts from the config alone, and memory figures that follow the stated rules."""

import pytest

from bsr_lightning import Backbone, LoRA, RewardModel, RLOOPolicy
from bsr_lightning.cli import cli_main
from bsr_lightning.plan import GIB
from bsr_lightning.rloo.rewards import FunctionReward
from conftest import REPO

TINY_RM = str(REPO / "configs/reward/synthetic_tiny.yaml")


def plan(*args):
    return cli_main(["plan", "--config", TINY_RM, *args])


def test_parameter_count_matches_the_built_module():
    module = RewardModel(Backbone("tiny:synthetic"), score_init="normal")
    measured = sum(p.numel() for p in module.parameters())
    got = plan()
    assert got["parameters"] == measured and got["trainable_parameters"] == measured
    # fp32 weights, gradients and AdamW's two moments, one device
    assert got["gib_per_device"]["weights"] * GIB == pytest.approx(4 * measured)
    assert got["gib_per_device"]["optimizer_states"] == pytest.approx(2 * got["gib_per_device"]["gradients"])


def test_lora_trainable_count_matches_and_fsdp_divides_by_devices():
    module = RewardModel(Backbone("tiny:synthetic", lora=LoRA(r=4, alpha=8)))
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    got = plan("--model.init_args.backbone.lora.r", "4", "--model.init_args.backbone.lora.alpha", "8")
    assert got["trainable_parameters"] == trainable < got["parameters"]

    single = plan()
    sharded = plan("--trainer.devices", "4",
                   "--trainer.strategy", "bsr_lightning.backbones.sharding.DecoderFSDPStrategy",
                   "--trainer.strategy.layer_classes", "[transformers.models.llama.modeling_llama.LlamaDecoderLayer]")
    for part in ("weights", "gradients", "optimizer_states"):
        assert sharded["gib_per_device"][part] == pytest.approx(single["gib_per_device"][part] / 4)
    assert sharded["gib_per_device"]["activations"] == pytest.approx(single["gib_per_device"]["activations"])


def test_nf4_shrinks_the_decoder_weights_and_rloo_counts_the_policy():
    full, nf4 = plan("--model.init_args.backbone.lora.r", "4"), plan("--model.init_args.backbone.lora.r", "4",
                                                            "--model.init_args.backbone.quantization", "nf4")
    assert nf4["gib_per_device"]["weights"] < full["gib_per_device"]["weights"]
    policy = RLOOPolicy(Backbone("tiny:synthetic"), FunctionReward("reward_fns:length_words"))
    got = cli_main(["plan", "--config", str(REPO / "configs/rloo/synthetic_tiny.yaml"),
                    "--model.init_args.backbone.name", "tiny:synthetic",
                    "--model.init_args.reward", "bsr_lightning.rloo.rewards.FunctionReward",
                    "--model.init_args.reward.import_path", "reward_fns:length_words"])
    assert got["parameters"] == sum(p.numel() for p in policy.parameters())
    assert got["gib_per_device"]["kv_cache"] > 0 and got["notes"]  # the function reward is named as uncounted


def test_plan_counts_8bit_optimizer_states():
    adamw = plan()
    paged = plan("--model.init_args.optimization.optimizer", "bitsandbytes.optim.PagedAdamW8bit")
    # fp32 AdamW: two 4-byte moments; 8-bit: two 1-byte codes + a float32 scale per 256 values
    ratio = paged["gib_per_device"]["optimizer_states"] / adamw["gib_per_device"]["optimizer_states"]
    assert ratio == pytest.approx(2 * (1 + 4 / 256) / 8)
    assert paged["gib_per_device"]["weights"] == adamw["gib_per_device"]["weights"]


def test_the_seed_reward_recipe_fits_eight_80gb_gpus(tmp_path):
    """configs/reward/llama3_8b_skywork_bsr.yaml with Llama-3.1-8B's shapes (config only, built on the meta device)."""
    from transformers import LlamaConfig

    from bsr_lightning.backbones.tokenizers import load_tokenizer

    LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=8).save_pretrained(tmp_path)
    load_tokenizer("tiny:synthetic").save_pretrained(tmp_path)
    got = cli_main(["plan", "--config", str(REPO / "configs/reward/llama3_8b_skywork_bsr.yaml"),
                    "--model.init_args.backbone.name", str(tmp_path)])
    assert 7.4e9 < got["parameters"] < 7.6e9 and got["world_size"] == 8
    assert got["micro_batch"] == {"sequences": 32, "length": 2048}  # 16 pairs per device, chosen + rejected
    assert got["total_gib_per_device"] < 0.85 * 80
