"""The reference policy of the KL penalty: a frozen copy of the starting policy, or the policy with its LoRA adapters
disabled (no second copy in memory)."""

from __future__ import annotations

import copy
from collections.abc import Callable

from torch import Tensor, nn

from bsr_lightning.errors import ConfigError


class Reference:
    """Base class: ``attach`` is given the policy's model before training; ``logprobs(policy, fn)`` returns
    ``fn(reference_model)`` ``(N, L)``."""

    def attach(self, model: nn.Module) -> None:
        """Called once with the policy's model, before LoRA adapters are added."""

    def to(self, device) -> Reference:
        return self

    def logprobs(self, policy: nn.Module, fn: Callable[[nn.Module], Tensor]) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class FrozenCopy(Reference):
    """A frozen deep copy of the starting policy (full weights: as much memory again as the policy's weights). It is
    kept out of the state dict and the optimizer."""

    def __init__(self) -> None:
        self.model: nn.Module | None = None

    def attach(self, model: nn.Module) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def to(self, device) -> FrozenCopy:
        if self.model is not None:
            self.model.to(device)
        return self

    def logprobs(self, policy: nn.Module, fn: Callable[[nn.Module], Tensor]) -> Tensor:
        return fn(self.model)


class DisabledAdapters(Reference):
    """The policy with its LoRA adapters disabled: the base weights are the reference (LoRA policies only)."""

    def logprobs(self, policy: nn.Module, fn: Callable[[nn.Module], Tensor]) -> Tensor:
        if not hasattr(policy, "disable_adapter"):
            raise ConfigError("DisabledAdapters needs a LoRA policy (`backbone.lora`); use FrozenCopy otherwise.")
        with policy.disable_adapter():
            return fn(policy)
