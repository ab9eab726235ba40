"""QLoRA: 4-bit/8-bit frozen base + LoRA adapters + trainable score head; checkpoints hold only trained weights;
export writes dequantized, merged full-precision weights that score as the module did."""

import lightning as L
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from bsr_lightning import Backbone, LoRA, Optimization, RewardModel, RLOOPolicy, Sampling, SyntheticPromptDataModule
from bsr_lightning.backbones.loading import position_ids_of
from bsr_lightning.cli import cli_main
from bsr_lightning.rloo.rewards import FunctionReward
from bsr_lightning.training.checkpoints import load_module_from_checkpoint


def fit_cli(data, root, quantization):
    cli_main(["fit", "--model", "bsr_lightning.RewardModel", "--model.backbone.name", "tiny:synthetic",
              "--model.optimization.lr", "1e-2", "--model.score_init", "normal", "--model.backbone.lora.r", "4",
              "--model.backbone.lora.alpha", "8",
              "--model.backbone.quantization", quantization, "--data", "bsr_lightning.PreferenceDataModule",
              "--data.path", data, "--data.batch_size", "8", "--data.val_fraction", "0.25", "--data.max_length", "128",
              "--trainer.max_steps", "4", "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(root),
              "--trainer.enable_progress_bar", "false", "--trainer.logger", "false", "--seed_everything", "0",
              "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
              "--trainer.callbacks.dirpath", str(root / "ckpt"), "--trainer.callbacks.save_last", "true"])
    return root / "ckpt" / "last.ckpt"


@pytest.mark.parametrize("quantization, rtol", [("nf4", 2e-3), ("int8", 2e-3)])
def test_qlora_reward_model_trains_exports_and_scores_equal(synthetic_jsonl, tmp_path, quantization, rtol):
    # tiny:synthetic (hidden 64): bitsandbytes' CPU inference kernels need dimensions of at least 64
    torch.manual_seed(0)
    base = RewardModel(Backbone("tiny:synthetic", lora=LoRA(r=4, alpha=8), quantization=quantization),
                       score_init="normal")
    ckpt = fit_cli(synthetic_jsonl, tmp_path, quantization)
    stored = torch.load(ckpt, weights_only=True)["state_dict"]
    assert stored and all("lora_" in k or ".score." in k for k in stored)  # only adapters and the score head

    module = load_module_from_checkpoint(str(ckpt))
    layer = module.backbone.get_base_model().model.layers[0].self_attn.q_proj
    assert type(layer.get_base_layer()).__module__.startswith("bitsandbytes")  # the base stayed quantized
    lora_b = dict(module.named_parameters())["backbone.base_model.model.model.layers.0.self_attn.q_proj.lora_B."
                                              "default.weight"]
    assert lora_b.abs().sum() > 0  # trained (LoRA B starts at zero)

    cli_main(["export", "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "export")])
    exported = AutoModelForSequenceClassification.from_pretrained(tmp_path / "export").eval()
    assert getattr(exported.config, "quantization_config", None) is None
    assert all(p.dtype == torch.float32 for p in exported.parameters())
    assert type(exported.model.layers[0].self_attn.q_proj) is torch.nn.Linear

    ids = torch.randint(10, 190, (6, 20))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0  # one left-padded row
    with torch.no_grad():
        got = exported(input_ids=ids, attention_mask=mask, position_ids=position_ids_of(mask)).logits.squeeze(-1)
    # bitsandbytes' fp32 path (taken when inputs need gradients): dequantize, then matmul, as the export does
    want = module.train()(ids, mask)[0].detach()
    assert torch.allclose(got, want, rtol=rtol, atol=rtol * want.abs().max().item())
    # its CPU inference kernels compute in bf16: within a percent
    inference = module.score(ids, mask)
    assert torch.allclose(got, inference, atol=1e-2 * inference.abs().max().item())
    assert not torch.allclose(base.score(ids, mask), inference, atol=1e-2)  # and training changed the scores


def test_quantization_without_lora_is_refused(tiny_llama):
    with pytest.raises(ValueError, match="needs LoRA adapters"):
        Backbone(tiny_llama, quantization="nf4")
    with pytest.raises(ValueError, match="quantization: must be one of .nf4., .int8."):
        Backbone(tiny_llama, lora=LoRA(r=4), quantization="fp8")


def test_qlora_policy_trains_adapters_only(tmp_path):
    L.seed_everything(0)
    policy = RLOOPolicy(Backbone("tiny:synthetic", lora=LoRA(r=4, alpha=8), quantization="nf4"),
                        FunctionReward("reward_fns:length_words"), sampling=Sampling(k=2, max_new_tokens=6),
                        optimization=Optimization(lr=1e-2, schedule="constant", max_grad_norm=1.0))
    before = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}
    trainer = L.Trainer(max_steps=2, default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(policy, SyntheticPromptDataModule(batch_size=4, num_val_prompts=4))
    after = dict(policy.named_parameters())
    assert before and all("lora_" in n for n in before)
    assert any(not torch.equal(before[n], after[n]) for n in before)
    layer = policy.backbone.get_base_model().model.layers[0].mlp.up_proj.get_base_layer()
    assert type(layer).__name__ == "Linear4bit"


def test_sharding_with_quantization_or_lora_is_refused_at_start(tmp_path, synthetic_jsonl):
    from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy

    from bsr_lightning import PreferenceDataModule
    from bsr_lightning.backbones.sharding import DecoderFSDPStrategy, check_strategy

    fsdp = DecoderFSDPStrategy(["transformers.models.llama.modeling_llama.LlamaDecoderLayer"])
    with pytest.raises(ValueError, match="cannot be combined with DecoderFSDPStrategy.*Use DDP"):
        check_strategy(fsdp, "nf4", {"r": 4})
    with pytest.raises(ValueError, match="LoRA is not supported with ModelParallelStrategy"):
        check_strategy(ModelParallelStrategy(), None, {"r": 4})
    check_strategy(DDPStrategy(), "nf4", {"r": 4})  # QLoRA under DDP is supported

    module = RewardModel(Backbone("tiny:synthetic", lora=LoRA(r=4), quantization="nf4"))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=1, logger=False, enable_checkpointing=False,
                        strategy=ModelParallelStrategy(data_parallel_size=1, tensor_parallel_size=1),
                        default_root_dir=tmp_path)
    try:
        with pytest.raises(ValueError, match="quantization='nf4' cannot be combined with ModelParallelStrategy"):
            trainer.fit(module, PreferenceDataModule(path=synthetic_jsonl, batch_size=4, max_length=128))
        assert trainer.global_step == 0
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
