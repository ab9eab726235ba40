"""bsr_lightning: robust reward models (batch-wise sum-to-zero regularization) and RLHF with PyTorch Lightning."""

from bsr_lightning.data import PreferenceDataModule, SyntheticPreferenceDataModule
from bsr_lightning.modules import RewardModel

__version__ = "0.1.0"
__all__ = ["PreferenceDataModule", "RewardModel", "SyntheticPreferenceDataModule", "__version__"]
