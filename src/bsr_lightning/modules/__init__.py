"""One LightningModule per file."""

from bsr_lightning.modules.reward_model import RewardModel

__all__ = ["RewardModel"]
