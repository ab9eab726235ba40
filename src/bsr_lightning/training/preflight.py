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


def changed_hparams(ckpt_path: str, hparams: dict) -> list[str]:
    """``key: saved -> now`` for every model hyper-parameter (as plain data) that differs from the one saved in
    ``ckpt_path``; the checkpoint is read as plain data only (``weights_only``)."""
    saved = read_checkpoint(ckpt_path, mmap=True)["hyper_parameters"]  # Lightning reads the weights afterwards
    old = _flat({k: v for k, v in saved.items() if not k.startswith("_")})
    new = _flat({k: v for k, v in hparams.items() if not k.startswith("_")})
    return [f"{key}: {old[key]!r} -> {new[key]!r}" for key in sorted(old.keys() & new.keys())
            if _plain_value(old[key]) != _plain_value(new[key])]


def _plain_value(value):
    return list(value) if isinstance(value, tuple) else value
