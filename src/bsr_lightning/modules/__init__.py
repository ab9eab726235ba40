"""One LightningModule per file."""

from bsr_lightning.modules.reward_model import RewardModel
from bsr_lightning.modules.rloo_policy import RLOOPolicy
from bsr_lightning.modules.sft import SFTModel

__all__ = ["RLOOPolicy", "RewardModel", "SFTModel"]
