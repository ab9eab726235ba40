"""Export a trained backbone to a Hugging Face directory, atomically: LoRA adapters merged, 4-bit/8-bit weights
dequantized, the score head kept.

``AutoModelForSequenceClassification.from_pretrained`` (or ``AutoModelForCausalLM``) loads the directory, with the
tokenizer and its chat template, and scores as the Lightning module did.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from bsr_lightning.backbones.model_card import export_files
from bsr_lightning.backbones.tokenizers import export_tokenizer, template_writes_specials
from bsr_lightning.errors import UserError
from bsr_lightning.files import MANIFEST, apply_umask, check_export_dir, export_run_id, file_identity


def save_pretrained_atomic(model, tokenizer, output_dir: str | Path, overwrite: bool = False,
                           extra_files: dict[str, str] | None = None, run: str | None = None,
                           run_id: str | None = None, expect_run_id: str | None = None) -> Path:
    """``save_pretrained`` model and tokenizer into ``output_dir``, never deleting a file the export did not write.

    A new directory is written beside it and renamed into place (a crash leaves no half-written export). Into an
    earlier export (:data:`~bsr_lightning.files.MANIFEST` vouches by hash for every file there), or with
    ``overwrite`` into any directory, the new files replace same-named ones one by one and the files the earlier
    export wrote (unchanged since) but this one does not are removed; every other file is kept. Modes follow the
    umask. ``extra_files`` (name -> text: the model card, the training config) are written beside the weights.
    ``run_id`` is recorded in the manifest; with ``expect_run_id`` set (the export a training run saw when it
    started, ``""`` for none), an export that another run wrote meanwhile is refused just before the files move,
    unless ``overwrite``.
    """
    output_dir = Path(output_dir)
    earlier = check_export_dir(output_dir, overwrite)  # the earlier export's files, hashed once here
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        written = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        for name in written:  # safetensors and others create 0600 files: every file follows the umask
            apply_umask(tmp / name)
        (tmp / MANIFEST).write_text(json.dumps({"files": {name: file_identity(tmp / name) for name in written},
                                                "run": run, "run_id": run_id}, indent=1))
        apply_umask(tmp / MANIFEST)
        apply_umask(tmp, directory=True)
        _check_no_other_run(output_dir, expect_run_id, overwrite)
        if not output_dir.exists():
            try:
                tmp.rename(output_dir)
                return output_dir
            except OSError:  # another process made the folder meanwhile: its files are checked as any others
                earlier = check_export_dir(output_dir, overwrite)
        _merge_into(tmp, output_dir, written, set(earlier))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output_dir


def _check_no_other_run(output_dir: Path, expect_run_id: str | None, overwrite: bool) -> None:
    """Stop when ``output_dir`` now holds an export another run wrote after this one started (``expect_run_id``:
    what was there then, ``""`` for nothing)."""
    if expect_run_id is None or overwrite:
        return
    now = export_run_id(output_dir) or ""
    if now != expect_run_id:
        raise UserError(f"{output_dir}: another run wrote an export there while this one trained (its run "
                        f"{now or 'unknown'}); this run's export would replace it. Its checkpoints are kept: export "
                        "one with `python -m bsr_lightning export --ckpt_path ... --output_dir NEW_DIR`.")


def _merge_into(tmp: Path, output_dir: Path, written: list[str], earlier: set[str]) -> None:
    """Move the new export's files into an existing directory; drop only the earlier export's leftovers
    (``earlier``: the files its manifest lists inside the folder with the hash it recorded,
    :func:`~bsr_lightning.files.owned_files`). A file whose hash differs, or a name that leads outside, is the
    user's and stays."""
    for name in [*written, MANIFEST]:  # the manifest last: it vouches for a complete export
        (output_dir / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / name, output_dir / name)
    for name in sorted(earlier - set(written)):
        (output_dir / name).unlink(missing_ok=True)


def export_module(module, output_dir: str | Path, overwrite: bool = False, metrics: dict[str, float] | None = None,
                  license: str | None = None, location: str | None = None, backbone=None,
                  run_id: str | None = None, expect_run_id: str | None = None) -> Path:
    """Export a live module with ``backbone`` and ``tokenizer`` (RewardModel, SFTModel, RLOOPolicy): LoRA adapters
    merged into the weights, the tokenizer with its chat template and padding side (:func:`export_tokenizer`), a
    model card (``README.md``) and the resolved training config. See :func:`save_pretrained_atomic` for what
    happens to an existing directory.

    Args:
        module: the module to export.
        output_dir: the Hugging Face directory to write.
        overwrite: write into a non-empty directory that no export wrote.
        metrics: the final validation metrics for the card.
        license: the license for the card's front matter.
        location: where users will load it from (a hub repo id), for the card's usage snippet.
        backbone: the plain backbone to save (gathered from FSDP shards); ``module.backbone`` merged by default.
        run_id: the training run's identity, recorded in the manifest.
        expect_run_id: the export's run identity when the run started (``""``: none); see
            :func:`save_pretrained_atomic`.
    """
    tokenizer = export_tokenizer(module.tokenizer)
    files = export_files(module.card_facts(), metrics, license, location or str(output_dir),
                         add_special_tokens=not template_writes_specials(tokenizer))
    model = backbone if backbone is not None else merged_for_export(module.backbone)
    run = getattr(module, "run_record", {}).get("command")
    return save_pretrained_atomic(model, tokenizer, output_dir, overwrite, files, run, run_id, expect_run_id)


def merged_for_export(model):
    """A plain ``transformers`` model for ``save_pretrained``: LoRA adapters merged and 4-bit/8-bit weights
    dequantized into a new full-precision model (the score head kept). Plain models are returned unchanged.

    peft's own ``merge_and_unload`` re-quantizes merged weights of a quantized base, so the saved model would not
    score as the trained one did; here every weight is ``dequantize(W) + B @ A * scale`` in the compute dtype."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if inner is model and getattr(model, "hf_quantizer", None) is None:
        return model
    return rebuild_plain(inner, dense_state_dict(inner))


def rebuild_plain(model, state: dict[str, torch.Tensor]):
    """A new, plain (unquantized, unwrapped) model of ``model``'s class and config holding ``state``; non-persistent
    buffers (e.g. rotary frequencies) are copied from ``model``."""
    config = copy.deepcopy(model.config)
    for key in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, key):
            delattr(config, key)
    dtype = next(v.dtype for v in state.values() if v.is_floating_point())
    with torch.device("meta"):
        plain = type(model)(config)
    plain.load_state_dict(state, strict=True, assign=True)
    source_buffers = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in model.named_buffers()}
    for name, buffer in list(plain.named_buffers()):  # non-persistent buffers (e.g. rotary frequencies)
        if buffer.is_meta:
            owner, _, leaf = name.rpartition(".")
            plain.get_submodule(owner).register_buffer(leaf, source_buffers[name].detach().cpu().clone(),
                                                       persistent=False)
    plain.tie_weights()
    return plain.to(dtype).eval()


def dense_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The effective weights of a (LoRA-injected, possibly quantized) transformers model under its plain names."""
    from peft.tuners.lora import LoraLayer
    from peft.utils import ModulesToSaveWrapper

    state, done = {}, []
    for name, module in model.named_modules():
        if any(name.startswith(prefix) for prefix in done):
            continue
        prefix = f"{name}." if name else ""
        if isinstance(module, LoraLayer):
            base = module.get_base_layer()
            weight = _dense_weight(base).float()
            for adapter in module.active_adapters:
                weight = weight + module.get_delta_weight(adapter).float()
            state.update(_tensors(prefix, weight=weight.to(_compute_dtype(base)), bias=base.bias))
            done.append(prefix)
        elif isinstance(module, ModulesToSaveWrapper):
            trained = module.modules_to_save[module.active_adapters[0]]
            state.update({prefix + k: v for k, v in trained.state_dict().items()})
            done.append(prefix)
        elif _is_bnb(module):
            state.update(_tensors(prefix, weight=_dense_weight(module).to(_compute_dtype(module)), bias=module.bias))
            done.append(prefix)
        elif any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False)):
            own = {k: v for k, v in module.state_dict(keep_vars=True).items() if "." not in k}  # persistent only
            state.update(_tensors(prefix, **own))
    return {k: v.detach().clone() for k, v in state.items()}


def _tensors(prefix: str, **tensors) -> dict:
    return {prefix + k: v for k, v in tensors.items() if v is not None}


def _is_bnb(module: nn.Module) -> bool:
    return type(module).__module__.startswith("bitsandbytes") and hasattr(module, "weight")


def _compute_dtype(layer: nn.Module) -> torch.dtype:
    if _is_bnb(layer):
        return getattr(layer, "compute_dtype", None) or torch.float32
    return layer.weight.dtype


def _dense_weight(layer: nn.Module) -> torch.Tensor:
    """``(out, in)`` weight of a linear layer, dequantized when it is a bitsandbytes layer."""
    if not _is_bnb(layer):
        return layer.weight
    from peft.utils.integrations import dequantize_bnb_weight

    layer.state_dict()  # bitsandbytes restores its standard layout here if CPU inference re-packed the weight
    return dequantize_bnb_weight(layer.weight, state=getattr(layer, "state", None))
