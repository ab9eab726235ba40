"""What every LightningModule of the package trains with: optimizers and schedules, NaN guards, crash-safe
checkpoints, checkpoint loading and the export callback."""
