"""bsr_lightning: robust reward models (batch-wise sum-to-zero regularization) and RLHF with PyTorch Lightning."""

from bsr_lightning.data import PreferenceDataModule, SyntheticPreferenceDataModule
from bsr_lightning.data.prompts import (
    PromptDataModule,
    SFTDataModule,
    SyntheticPromptDataModule,
    SyntheticSFTDataModule,
)
from bsr_lightning.modules import RewardModel, RLOOPolicy, SFTModel

__version__ = "0.1.0"
__all__ = ["PreferenceDataModule", "PromptDataModule", "RLOOPolicy", "RewardModel", "SFTDataModule", "SFTModel",
           "SyntheticPreferenceDataModule", "SyntheticPromptDataModule", "SyntheticSFTDataModule", "__version__"]
