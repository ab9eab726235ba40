"""RLOO policy training: the LightningModule, generation (rollouts), reward sources, reward shapers, leave-one-out
advantages, KL penalties, the reference policy and the clipped policy loss."""
