"""Reward-model training: the LightningModule, regularizers, pairwise losses, forward modes, training metrics and
scoring with a trained model (:mod:`bsr_lightning.reward.scoring`)."""
