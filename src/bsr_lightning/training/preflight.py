"""Checks before ``fit`` that need the built trainer and model: bf16 on a CPU that emulates it, and a resume whose
model differs from its checkpoint's."""

from __future__ import annotations

import warnings

import torch

from bsr_lightning.training.checkpoints import read_checkpoint


def warn_emulated_bf16(trainer) -> None:
    """Warn once when bf16 runs on a CPU without native bf16 (no AVX-512 or AMX): torch emulates it there, some
    30x slower than fp32 (``scripts/bench_bf16_cpu.py``)."""
    capability = torch.backends.cpu.get_cpu_capability()
    on_cpu = trainer.strategy.root_device.type == "cpu"
    if on_cpu and "bf16" in str(trainer.precision) and not capability.startswith(("AVX512", "AMX")):
        warnings.warn(f"trainer.precision {trainer.precision} on a CPU with {capability} only: bf16 is emulated here "
                      "and much slower than fp32. Pass --trainer.precision 32-true.", UserWarning, stacklevel=1)


def _flat(value, prefix: str = "") -> dict:
    """``{"a.b.c": leaf}`` of nested dicts."""
    if not isinstance(value, dict):
        return {prefix.rstrip("."): value}
    out = {}
    for key, item in value.items():
        out.update(_flat(item, f"{prefix}{key}."))
    return out


DATA_KEYS_FREE_ON_RESUME = {"num_workers"}
"""Data settings that do not change which batches a resumed run sees."""


def changed_hparams(ckpt_path: str, hparams: dict, data_hparams: dict | None = None) -> list[str]:
    """``key: saved -> now`` for every model hyper-parameter, and every data setting (``data.KEY``, but
    :data:`DATA_KEYS_FREE_ON_RESUME`), that differs from the one saved in ``ckpt_path``; the checkpoint is read as
    plain data only (``weights_only``)."""
    checkpoint = read_checkpoint(ckpt_path, mmap=True)  # Lightning reads the weights afterwards
    saved = dict(checkpoint["hyper_parameters"])
    now = dict(hparams)
    saved_data = checkpoint.get("datamodule_hyper_parameters")
    if isinstance(saved_data, dict) and data_hparams:
        skip = DATA_KEYS_FREE_ON_RESUME
        saved["data"] = {k: v for k, v in saved_data.items() if k not in skip}
        now["data"] = {k: v for k, v in data_hparams.items() if k not in skip}
    old = _flat({k: v for k, v in saved.items() if not k.startswith("_")})
    new = _flat({k: v for k, v in now.items() if not k.startswith("_")})
    return [f"{key}: {old[key]!r} -> {new[key]!r}" for key in sorted(old.keys() & new.keys())
            if _plain_value(old[key]) != _plain_value(new[key])]


def _plain_value(value):
    return list(value) if isinstance(value, tuple) else value
