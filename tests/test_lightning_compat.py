"""Lightning internals read in lightning_compat.py still mean what the package assumes."""

import lightning as L
from lightning.pytorch.demos.boring_classes import BoringModel

from bsr_lightning.lightning_compat import attached_trainer, batches_done_this_epoch


def test_batches_done_and_attached_trainer(tmp_path):
    seen = []

    class Probe(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            seen.append((batch_idx, batches_done_this_epoch(trainer)))

    model = BoringModel()
    assert attached_trainer(model) is None
    trainer = L.Trainer(max_epochs=2, limit_train_batches=3, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, callbacks=[Probe()])
    trainer.fit(model)
    assert attached_trainer(model) is trainer
    assert seen == [(0, 1), (1, 2), (2, 3)] * 2  # processed batches, counted again from 1 each epoch
