"""Reward sources for policy training, selected by ``class_path``: an exported reward model, or a Python function.

Each scores ``(prompt messages, response text)`` pairs. A reward model reads the conversation through its own
tokenizer and chat template (the policy's tokens are decoded to text first), so policy and reward model need not
share a vocabulary.
"""

from __future__ import annotations

import importlib

import torch

from bsr_lightning.data.formats import Message
from bsr_lightning.reward.scoring import ConversationScorer, load_reward_model

__all__ = ["FunctionReward", "ModelReward", "RewardSource", "prompt_text"]


def prompt_text(messages: list[Message]) -> str:
    """The plain text of a prompt's messages, as given to reward functions."""
    return "\n\n".join(m["content"] for m in messages)


class RewardSource:
    """Base class: ``__call__(prompts, responses) -> (N,)`` float32 rewards on CPU; ``to(device)`` places whatever
    it holds (a model is loaded there on first use)."""

    def __call__(self, prompts: list[list[Message]], responses: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def to(self, device) -> RewardSource:
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class FunctionReward(RewardSource):
    """A Python function as a reward source, named by its import path ``module:function``.

    Called as ``fn(prompt, response) -> float`` per sample, with ``prompt`` the prompt messages' contents joined by
    blank lines.

    Args:
        import_path: ``package.module:function``.
    """

    def __init__(self, import_path: str) -> None:
        module_name, _, name = import_path.partition(":")
        try:
            self._fn = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError, ValueError) as err:
            raise ValueError(f"Reward function {import_path!r} not found ({err}); give 'module:function' with the "
                             "module importable (on PYTHONPATH or installed).") from err
        self.import_path = import_path

    def __call__(self, prompts: list[list[Message]], responses: list[str]) -> torch.Tensor:
        return torch.tensor([float(self._fn(prompt_text(p), r)) for p, r in zip(prompts, responses, strict=True)])


class ModelReward(RewardSource):
    """A trained reward model, frozen, scored without gradients; loaded on first use (not when a config is parsed).

    Args:
        path: an exported directory (``export`` / ``ExportOnFitEnd``, tokenizer and chat template included), a hub
            id, or a Lightning ``.ckpt``.
        batch_size: sequences per forward pass.
        max_length: the longest conversation in tokens; longer ones keep their end (``truncate_left``) and are
            counted in ``truncated``.
    """

    def __init__(self, path: str, batch_size: int = 64, max_length: int = 1024) -> None:
        self.path = path
        self.batch_size = batch_size
        self.max_length = max_length
        self._scorer = None
        self._device = torch.device("cpu")

    @property
    def scorer(self):
        """The :class:`~bsr_lightning.reward.scoring.ConversationScorer`, loading the model on first use."""
        if self._scorer is None:
            module = load_reward_model(self.path).requires_grad_(False).to(self._device)
            self._scorer = ConversationScorer(module, self.batch_size, self.max_length, "truncate_left",
                                              progress=False)
        return self._scorer

    def __call__(self, prompts: list[list[Message]], responses: list[str]) -> torch.Tensor:
        conversations = [[*p, {"role": "assistant", "content": r}] for p, r in zip(prompts, responses, strict=True)]
        return torch.as_tensor(self.scorer.score(conversations, "reward"), dtype=torch.float32)

    @property
    def truncated(self) -> int:
        return self.scorer.counts["truncated"]

    def to(self, device) -> ModelReward:
        self._device = torch.device(device)
        self.scorer.module.to(self._device)
        return self
