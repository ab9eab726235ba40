"""VLLMGenerate: the conversion between vLLM's outputs and a Rollout, and the weight sync, against a stand-in engine
(vLLM needs CUDA); the real engine runs where CUDA and vLLM are present."""

import importlib.util
from types import SimpleNamespace

import pytest
import torch

from bsr_lightning import Backbone, LoRA, Optimization, RLOOPolicy, Sampling, SyntheticPromptDataModule
from bsr_lightning.rloo.rewards import FunctionReward
from bsr_lightning.rloo.vllm_generation import VLLMGenerate


class FakeEngine:
    """Answers ``generate`` like vLLM's ``LLM``: ``n`` completions per prompt; records the weights it was given."""

    def __init__(self, eos: int) -> None:
        self.eos, self.loaded = eos, {}
        self.llm_engine = SimpleNamespace(model_executor=SimpleNamespace(driver_worker=SimpleNamespace(
            worker=SimpleNamespace(model_runner=SimpleNamespace(model=self)))))

    def load_weights(self, weights) -> None:
        self.loaded = {name: tensor.clone() for name, tensor in weights}

    def generate(self, prompts, params, use_tqdm=False):
        outputs = []
        for i, prompt in enumerate(prompts):
            completions = [  # stopped on EOS without returning it; stopped with it; ran out of tokens
                SimpleNamespace(token_ids=[10 + i, 11], finish_reason="stop", stop_reason=self.eos),
                SimpleNamespace(token_ids=[12, self.eos], finish_reason="stop", stop_reason=self.eos),
                SimpleNamespace(token_ids=[13] * params.max_tokens, finish_reason="length", stop_reason=None),
            ][: params.n]
            outputs.append(SimpleNamespace(prompt_token_ids=prompt["prompt_token_ids"], outputs=completions))
        return outputs


def policy(generation, lora=None) -> RLOOPolicy:
    return RLOOPolicy(Backbone("tiny:synthetic", lora=lora), FunctionReward("reward_fns:length_words"),
                      sampling=Sampling(k=3, max_new_tokens=4), generation=generation,
                      optimization=Optimization(lr=1e-3, schedule="constant"))


def batch_of(module, n: int = 2) -> dict:
    data = SyntheticPromptDataModule(batch_size=n, num_val_prompts=2)
    data.tokenizer = module.tokenizer
    data.setup("fit")
    return next(iter(data.train_dataloader()))


@pytest.mark.parametrize("lora", [None, LoRA(r=4, alpha=8)], ids=["full", "lora"])
def test_vllm_outputs_become_a_prompt_major_rollout_with_current_weights(monkeypatch, lora):
    generation = VLLMGenerate()
    module = policy(generation, lora)
    engine = FakeEngine(module.eos_ids[0])
    monkeypatch.setattr(generation, "engine", lambda model: engine)
    monkeypatch.setattr(generation, "sampling_params", lambda s, eos: SimpleNamespace(n=s.k, max_tokens=4))
    batch = batch_of(module)
    rollout = module.generation(module.backbone, module.tokenizer, batch, module.sampling, module.eos_ids)
    eos = module.eos_ids[0]
    assert rollout.input_ids.shape == (6, batch["input_ids"].size(1) + 4)
    assert rollout.response_ids[0].tolist()[:3] == [10, 11, eos]  # the EOS vLLM left out is put back
    assert rollout.response_ids[3].tolist()[:3] == [11, 11, eos]  # second prompt: its own completions
    assert rollout.has_eos.tolist() == [True, True, False] * 2 and rollout.lengths.tolist() == [3, 2, 4] * 2
    assert torch.equal(rollout.input_ids[1, : batch["input_ids"].size(1)], batch["input_ids"][0])
    # the engine got the policy's weights under plain names, adapters merged
    assert engine.loaded and not any("lora_" in name or "base_layer" in name for name in engine.loaded)
    plain = module.backbone.get_base_model() if lora else module.backbone
    name = "model.embed_tokens.weight"
    assert torch.equal(engine.loaded[name], dict(plain.named_parameters())[name].detach())


@pytest.mark.skipif(not (torch.cuda.is_available() and importlib.util.find_spec("vllm")),
                    reason="vLLM needs CUDA and the vllm package")
def test_rloo_steps_with_a_real_vllm_engine(tmp_path):  # pragma: no cover - GPU machines only
    import lightning as L

    module = policy(VLLMGenerate(gpu_memory_utilization=0.2))
    trainer = L.Trainer(max_steps=2, accelerator="gpu", devices=1, default_root_dir=tmp_path, logger=False,
                        enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(module, SyntheticPromptDataModule(batch_size=2, num_val_prompts=2))
    assert trainer.global_step == 2
