"""bsr_lightning: robust reward models (batch-wise sum-to-zero regularization) and RLHF with PyTorch Lightning.

The packages, by concern: :mod:`~bsr_lightning.reward` (reward-model training), :mod:`~bsr_lightning.rloo` (policy
training), :mod:`~bsr_lightning.sft`, :mod:`~bsr_lightning.backbones` (Hugging Face models), :mod:`~bsr_lightning.data`,
:mod:`~bsr_lightning.training` (optimizers, checkpoints, callbacks), :mod:`~bsr_lightning.evaluation` and
:mod:`~bsr_lightning.experiments`; ``docs/architecture.md`` draws the arrows between them.
"""

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

__version__ = "0.1.0"
__all__ = ["Backbone", "LoRA", "Optimization", "RewardOptimization", "RLOOOptimization", "SFTOptimization",
           "ListwiseDataModule", "ListwiseRewardModel", "PreferenceDataModule", "PromptDataModule", "RLOOPolicy",
           "RewardModel", "SFTDataModule", "SFTModel", "Sampling", "SyntheticPreferenceDataModule",
           "SyntheticPromptDataModule", "SyntheticSFTDataModule", "__version__"]
