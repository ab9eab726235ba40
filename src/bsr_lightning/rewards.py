"""Reward sources for policy training: an exported reward model, or a Python function.

Both score ``(prompt messages, response text)`` pairs. A reward model reads the conversation through its own
tokenizer and chat template (the policy's tokens are decoded to text first), so policy and reward model need not
share a vocabulary. A function is named by its import path ``module:function`` and is called as
``function(prompt, response) -> float`` with ``prompt`` the prompt messages' contents joined by blank lines.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import torch

from bsr_lightning.data.formats import Message


class RewardSource(Protocol):
    """Anything that scores a batch of responses to prompts."""

    def __call__(self, prompts: list[list[Message]], responses: list[str]) -> torch.Tensor:
        """``(N,)`` float32 rewards on CPU."""


def prompt_text(messages: list[Message]) -> str:
    """The plain text of a prompt's messages, as given to reward functions."""
    return "\n\n".join(m["content"] for m in messages)


class FunctionReward:
    """A Python function ``fn(prompt: str, response: str) -> float`` as a reward source.

    Args:
        import_path: ``package.module:function``.
    """

    def __init__(self, import_path: str) -> None:
        module_name, _, name = import_path.partition(":")
        try:
            self.fn = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"Reward function {import_path!r} not found ({err}); give 'module:function' with the "
                             "module importable (on PYTHONPATH or installed).") from err
        self.import_path = import_path

    def __call__(self, prompts: list[list[Message]], responses: list[str]) -> torch.Tensor:
        return torch.tensor([float(self.fn(prompt_text(p), r)) for p, r in zip(prompts, responses, strict=True)])

    def to(self, device) -> FunctionReward:
        return self


class ModelReward:
    """An exported reward-model directory (or a ``.ckpt``) as a reward source, frozen, scored without gradients.

    Args:
        path: the directory written by ``export`` / ``ExportOnFitEnd`` (tokenizer and chat template included).
        batch_size: sequences per forward pass.
        max_length: the longest conversation in tokens; longer ones keep their end (``truncate_left``) and are
            counted in ``truncated``.
    """

    def __init__(self, path: str, batch_size: int = 64, max_length: int = 1024) -> None:
        from bsr_lightning.evaluation.scoring import ConversationScorer, load_reward_model

        module = load_reward_model(path)
        module.requires_grad_(False)
        self.scorer = ConversationScorer(module, batch_size, max_length, "truncate_left", progress=False)
        self.path = path

    def __call__(self, prompts: list[list[Message]], responses: list[str]) -> torch.Tensor:
        conversations = [[*p, {"role": "assistant", "content": r}] for p, r in zip(prompts, responses, strict=True)]
        return torch.as_tensor(self.scorer.score(conversations, "reward"), dtype=torch.float32)

    @property
    def truncated(self) -> int:
        return self.scorer.counts["truncated"]

    def to(self, device) -> ModelReward:
        self.scorer.module.to(device)
        return self


def load_reward(spec: str, batch_size: int = 64, max_length: int = 1024) -> FunctionReward | ModelReward:
    """A reward source from a config string: a directory / ``.ckpt`` / hub id (reward model) or ``module:function``.

    A string with ``:`` that is not an existing path is taken as ``module:function``.
    """
    if ":" in spec and not Path(spec).exists() and not spec.startswith(("pkg:", "tiny:")):
        return FunctionReward(spec)
    return ModelReward(spec, batch_size, max_length)
