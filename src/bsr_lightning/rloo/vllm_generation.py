"""``VLLMGenerate``: RLOO rollouts from a vLLM engine colocated in the training process (``pip install
'bsr_lightning[vllm]'``, CUDA). The engine is built once from the policy's own directory; before every rollout batch
it gets the policy's current weights (LoRA merged), so it always samples from the policy being trained.

Shapes: ``B`` prompts, ``N = B * k`` rollouts, ``P`` prompt width (left padded), ``L`` longest response.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from bsr_lightning.args import Sampling
from bsr_lightning.backbones.export import dense_state_dict
from bsr_lightning.errors import ConfigError, require
from bsr_lightning.rloo.generation import Generator, Rollout, build_rollout

# attribute paths to the engine's torch model, newest vLLM first; the in-process engine needs no multiprocessing
_MODEL_PATHS = ("llm_engine.model_executor.driver_worker.worker.model_runner.model",
                "llm_engine.model_executor.driver_worker.model_runner.model")


class VLLMGenerate(Generator):
    """Sample with vLLM; the same :class:`~bsr_lightning.args.Sampling` as ``HFGenerate`` (``k`` samples per prompt as
    vLLM's ``n``, temperature 0 greedy, ``top_p``, ``max_new_tokens``, stopping at the policy's EOS ids).

    Args:
        gpu_memory_utilization: the fraction of GPU memory vLLM may take (weights, KV cache), leaving the rest to
            training.
        dtype: the engine's weight dtype (``auto``: the checkpoint's).
        max_model_len: the longest prompt + response; None for the model's own limit.
        sleep: release vLLM's GPU memory between rollout batches (``LLM.sleep``/``wake_up``, vLLM 0.7.3 and later).
        seed: the engine's sampling seed.
    """

    def __init__(self, gpu_memory_utilization: float = 0.3, dtype: str = "auto", max_model_len: int | None = None,
                 sleep: bool = False, seed: int = 0) -> None:
        self.gpu_memory_utilization, self.dtype, self.max_model_len = gpu_memory_utilization, dtype, max_model_len
        self.sleep, self.seed = sleep, seed
        self._llm = None

    @torch.no_grad()
    def __call__(self, model, tokenizer, batch: dict, sampling: Sampling, eos_ids: list[int]) -> Rollout:
        llm = self.engine(model)
        if self.sleep and hasattr(llm, "wake_up"):
            llm.wake_up()
        self.load_weights(llm, model)
        prompts = [ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["attention_mask"],
                                                                  strict=True)]
        outputs = llm.generate([{"prompt_token_ids": p} for p in prompts], self.sampling_params(sampling, eos_ids),
                               use_tqdm=False)
        if self.sleep and hasattr(llm, "sleep"):
            llm.sleep(level=1)
        responses = [self._tokens(c, eos_ids) for out in outputs for c in out.outputs]  # prompt-major, k each
        device = batch["input_ids"].device
        prompt_ids = batch["input_ids"].repeat_interleave(sampling.k, 0)
        prompt_mask = batch["attention_mask"].repeat_interleave(sampling.k, 0)
        return build_rollout(tokenizer, batch, sampling.k, eos_ids, prompt_ids, prompt_mask,
                             pad_right(responses, tokenizer.pad_token_id, device))

    def sampling_params(self, sampling: Sampling, eos_ids: list[int]):
        from vllm import SamplingParams

        greedy = sampling.temperature == 0
        return SamplingParams(n=sampling.k, temperature=0.0 if greedy else sampling.temperature,
                              top_p=1.0 if greedy else sampling.top_p, max_tokens=sampling.max_new_tokens,
                              stop_token_ids=eos_ids, seed=self.seed, detokenize=False)

    @staticmethod
    def _tokens(completion, eos_ids: list[int]) -> list[int]:
        """A completion's token ids, ending with its EOS when it stopped on one (vLLM may leave the EOS out)."""
        ids = list(completion.token_ids)
        if completion.finish_reason == "stop" and (not ids or ids[-1] not in eos_ids):
            stop = getattr(completion, "stop_reason", None)
            ids.append(stop if stop in eos_ids else eos_ids[0])
        return ids

    def engine(self, model: nn.Module):
        """The vLLM engine, built on first use from the policy's directory."""
        if self._llm is None:
            require("vllm", "VLLMGenerate (CUDA only)")
            from vllm import LLM

            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine's model in this process
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            self._llm = LLM(model=base.config._name_or_path, dtype=self.dtype, seed=self.seed,
                            gpu_memory_utilization=self.gpu_memory_utilization, max_model_len=self.max_model_len,
                            enable_sleep_mode=self.sleep)
        return self._llm

    @staticmethod
    def load_weights(llm, model: nn.Module) -> None:
        """Copy the policy's current weights (LoRA adapters merged) into the engine's model."""
        target = engine_model(llm)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        weights = dense_state_dict(base) if hasattr(model, "get_base_model") else base.state_dict()
        target.load_weights(weights.items())

    def __repr__(self) -> str:
        return f"VLLMGenerate(gpu_memory_utilization={self.gpu_memory_utilization}, sleep={self.sleep})"


def engine_model(llm) -> nn.Module:
    """The torch model inside a vLLM ``LLM`` (single GPU, in-process engine)."""
    for path in _MODEL_PATHS:
        target = llm
        for name in path.split("."):
            target = getattr(target, name, None)
        if target is not None:
            return target
    raise ConfigError("VLLMGenerate cannot reach the vLLM engine's model in this vLLM version; it needs a single-GPU, "
                      "in-process engine (VLLM_ENABLE_V1_MULTIPROCESSING=0).")


def pad_right(sequences: list[list[int]], pad_id: int, device) -> Tensor:
    """``(N, L)`` token ids, right padded with ``pad_id`` to the longest (at least one column)."""
    width = max(1, max(len(s) for s in sequences))
    out = torch.full((len(sequences), width), pad_id, dtype=torch.long, device=device)
    for i, seq in enumerate(sequences):
        out[i, : len(seq)] = torch.tensor(seq, dtype=torch.long, device=device)
    return out
