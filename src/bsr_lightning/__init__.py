"""bsr_lightning: robust reward models (batch-wise sum-to-zero regularization) and RLHF with PyTorch Lightning.

The packages, by concern: :mod:`~bsr_lightning.reward` (reward-model training), :mod:`~bsr_lightning.rloo` (policy
training), :mod:`~bsr_lightning.sft`, :mod:`~bsr_lightning.backbones` (Hugging Face models), :mod:`~bsr_lightning.data`,
:mod:`~bsr_lightning.training` (optimizers, checkpoints, callbacks), :mod:`~bsr_lightning.evaluation` and
:mod:`~bsr_lightning.experiments`; ``docs/architecture.md`` draws the arrows between them.

The names below are imported on first use (PEP 562), so ``python -m bsr_lightning --help`` starts without loading
torch or Lightning; ``from bsr_lightning import RewardModel`` and the class path ``bsr_lightning.RewardModel`` work
as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_WHERE = {
    "bsr_lightning.args": ("Backbone", "LoRA", "Optimization", "RewardOptimization", "RLOOOptimization", "Sampling",
                           "SFTOptimization"),
    "bsr_lightning.data.listwise": ("ListwiseDataModule",),
    "bsr_lightning.data.preference": ("PreferenceDataModule",),
    "bsr_lightning.data.prompts": ("PromptDataModule", "SFTDataModule"),
    "bsr_lightning.data.synthetic": ("SyntheticPreferenceDataModule", "SyntheticPromptDataModule",
                                     "SyntheticSFTDataModule"),
    "bsr_lightning.reward.listwise": ("ListwiseRewardModel",),
    "bsr_lightning.reward.module": ("RewardModel",),
    "bsr_lightning.rloo.module": ("RLOOPolicy",),
    "bsr_lightning.sft": ("SFTModel",),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}
__all__ = ["Backbone", "LoRA", "Optimization", "RewardOptimization", "RLOOOptimization", "SFTOptimization",
           "ListwiseDataModule", "ListwiseRewardModel", "PreferenceDataModule", "PromptDataModule", "RLOOPolicy",
           "RewardModel", "SFTDataModule", "SFTModel", "Sampling", "SyntheticPreferenceDataModule",
           "SyntheticPromptDataModule", "SyntheticSFTDataModule", "__version__"]  # = _MODULE_OF's names (a test)

if TYPE_CHECKING:  # what type checkers and IDEs see
    from bsr_lightning.args import (
        Backbone,
        LoRA,
        Optimization,
        RewardOptimization,
        RLOOOptimization,
        Sampling,
        SFTOptimization,
    )
    from bsr_lightning.data.listwise import ListwiseDataModule
    from bsr_lightning.data.preference import PreferenceDataModule
    from bsr_lightning.data.prompts import PromptDataModule, SFTDataModule
    from bsr_lightning.data.synthetic import (
        SyntheticPreferenceDataModule,
        SyntheticPromptDataModule,
        SyntheticSFTDataModule,
    )
    from bsr_lightning.reward.listwise import ListwiseRewardModel
    from bsr_lightning.reward.module import RewardModel
    from bsr_lightning.rloo.module import RLOOPolicy
    from bsr_lightning.sft import SFTModel


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'bsr_lightning' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
