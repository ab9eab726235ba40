"""One gate for code (docs/reliability.md, round 3): no name a checkpoint holds is imported unless it is the
package's own or named exactly with ``--allow_modules``; no optional package is imported from the working directory;
a sharded checkpoint folder unpickles nothing that could run code.

The signature walk plants ``evilmod.Foo`` (a module in the working directory that writes a marker when imported) as a
bare string and as a ``class_path`` in every parameter of every LightningModule's signature, and in every parameter
of every class of the package those parameters accept, two levels deep, then runs the gate and, when the gate lets a
value through, jsonargparse's own parse of it: nothing may be imported.
"""

import dataclasses
import importlib
import inspect
import os
import pickle
import pkgutil
import subprocess
import sys
import typing
from argparse import ArgumentError

import pytest
import torch

import bsr_lightning
from bsr_lightning.base import BackboneModule
from bsr_lightning.class_paths import _hints, check_module_hparams, module_allowed
from bsr_lightning.errors import ConfigError, MissingExtra, UserError, require
from bsr_lightning.training.checkpoints import read_checkpoint

PLANTS = {"bare": "evilmod.Foo", "colon": "evilmod:Foo", "dict": {"class_path": "evilmod.Foo", "init_args": {}}}


def _import_package() -> None:
    for info in pkgutil.walk_packages(bsr_lightning.__path__, "bsr_lightning."):
        try:
            importlib.import_module(info.name)
        except Exception:  # an optional dependency that is not installed (vllm, ...)
            continue


def _all_subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


def _our_classes(annotation) -> list[type]:
    """The package's classes a value of ``annotation`` may be: the annotation's classes and their subclasses."""
    args = typing.get_args(annotation) or (annotation,)
    found = []
    for arg in args:
        if typing.get_args(arg):
            found += _our_classes(arg)
        elif isinstance(arg, type) and arg not in (str, int, float, bool, type(None)):
            found += [c for c in (arg, *_all_subclasses(arg)) if c.__module__.startswith("bsr_lightning")]
    return list(dict.fromkeys(found))


def plants(annotation, depth: int = 0):
    """``(label, value)``: a value of ``annotation``'s type with ``evilmod`` planted in it, at every place."""
    yield from PLANTS.items()
    yield "list", [PLANTS["bare"]]
    if depth >= 2:
        return
    for cls in _our_classes(annotation):
        for name, hint in _hints(cls).items():
            if name == "return":
                continue
            for label, value in plants(hint, depth + 1):
                label = f"{cls.__name__}.{name}.{label}"
                if dataclasses.is_dataclass(cls):
                    yield label, {name: value}
                else:
                    yield label, {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": {name: value}}


def _modules() -> list[type]:
    _import_package()
    return [c for c in _all_subclasses(BackboneModule) if c.__module__.startswith("bsr_lightning")]


def _jsonargparse_parse(cls: type, hparams: dict) -> None:
    """What ``build_from_hparams`` does before instantiating: the parse that resolves class paths."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "module", fail_untyped=False)
    try:
        parser.parse_object({"module": hparams})
    except (ArgumentError, ValueError, TypeError, ImportError):
        pass


def test_evilmod_planted_anywhere_in_any_module_signature_is_never_imported(planted):
    modules = _modules()
    assert {"RewardModel", "ListwiseRewardModel", "RLOOPolicy", "SFTModel"} <= {m.__name__ for m in modules}
    refused, parsed = [], 0
    for cls in modules:
        for name, hint in _hints(cls).items():
            if name == "return":
                continue
            for label, value in plants(hint):
                try:
                    check_module_hparams(cls, {name: value}, f"{cls.__name__}.{name}.{label}")
                except ConfigError as err:
                    assert "evilmod" in str(err) and "--allow_modules '[evilmod]'" in str(err)
                    refused.append(f"{cls.__name__}.{name}.{label}")
                    continue
                _jsonargparse_parse(cls, {name: value})  # let through: a value jsonargparse never imports
                parsed += 1
                assert "evilmod" not in sys.modules, f"{cls.__name__}.{name} {label}: {value!r} was imported"
    assert not planted.exists()
    assert len(refused) > 200 and parsed > 0  # some values are plain strings that jsonargparse keeps as strings
    for nested in ("RewardModel.backbone.Backbone.lora.bare", "RewardModel.regularizer.BatchSumToZero.weight.dict",
                   "RLOOPolicy.reward.WeightedRewards.sources.list", "RLOOPolicy.reward_shapers.Clip.limit.dict"):
        assert nested in refused, nested  # the walk reached nested dataclasses, init_args and lists


def test_allow_modules_is_exact_not_a_prefix():
    assert module_allowed("my_regs", ["my_regs"])
    assert not module_allowed("my_regs_evil", ["my_regs"])
    assert not module_allowed("my_regs.sub", ["my_regs"])
    assert module_allowed("bsr_lightning.reward.regularizers")
    assert not module_allowed("bsr_lightning_evil")
    from bsr_lightning.reward.module import RewardModel

    with pytest.raises(ConfigError, match="my_regs_evil"):
        check_module_hparams(RewardModel, {"regularizer": "my_regs_evil.Foo"}, "ckpt", ["my_regs"])


def _trained_checkpoint(tiny_llama, synthetic_jsonl, tmp_path_factory):
    from bsr_lightning.cli import cli_main
    from test_cli import checkpoint_of, fit_args

    root = tmp_path_factory.mktemp("gate")
    cli_main(fit_args(tiny_llama, synthetic_jsonl, root))
    return torch.load(checkpoint_of(root), weights_only=True)


def test_bare_string_class_paths_in_a_checkpoint_run_nothing_in_export_and_evaluate(
        tiny_llama, synthetic_jsonl, tmp_path_factory, planted, tmp_path):
    from bsr_lightning.cli import cli_main
    from conftest import write_jsonl

    trained = _trained_checkpoint(tiny_llama, synthetic_jsonl, tmp_path_factory)
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "chosen": "good", "rejected": "bad"}])
    for key in ("regularizer", "loss", "forward_mode"):
        path = tmp_path / f"{key}.ckpt"
        torch.save({**trained, "hyper_parameters": {**trained["hyper_parameters"], key: "evilmod.Foo"}}, path)
        for command in (["export", "--ckpt_path", str(path), "--output_dir", str(tmp_path / "out")],
                        ["evaluate", "--model", str(path), "--data", data, "--output_dir", str(tmp_path / "ev")],
                        ["export", "--ckpt_path", str(path), "--output_dir", str(tmp_path / "out"),
                         "--allow_modules", "[evilmod_other]"]):
            with pytest.raises(ConfigError, match="outside bsr_lightning"):
                cli_main(command)
    assert not planted.exists() and "evilmod" not in sys.modules


class Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_sharded_checkpoint_with_a_pickled_payload_runs_nothing(tmp_path, monkeypatch):
    import torch.distributed.checkpoint as dcp

    monkeypatch.chdir(tmp_path)
    state = {"state_dict": {"w": torch.arange(6.0).view(2, 3)}, "hyper_parameters": {"lr": 0.1}, "epoch": 1}
    dcp.save(state, checkpoint_id=str(tmp_path / "good.ckpt"), no_dist=True)
    loaded = read_checkpoint(str(tmp_path / "good.ckpt"))
    assert torch.equal(loaded["state_dict"]["w"], state["state_dict"]["w"])
    assert loaded["hyper_parameters"] == {"lr": 0.1}
    (tmp_path / "evil.ckpt").mkdir()
    (tmp_path / "evil.ckpt" / ".metadata").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(UserError, match="pickled objects"):
        read_checkpoint(str(tmp_path / "evil.ckpt"))
    assert not (tmp_path / "PWNED").exists()


def test_optional_packages_never_come_from_the_working_directory(tmp_path):
    (tmp_path / "peft.py").write_text("open('RAN_PEFT', 'w').write('x')\n")
    (tmp_path / "nothere_extra.py").write_text("open('RAN_OTHER', 'w').write('x')\n")
    code = ("import sys; sys.path.insert(0, '')\n"
            "from bsr_lightning.errors import require, MissingExtra\n"
            "require('peft', 'backbone.lora'); import peft; print(peft.__file__)\n"
            "try:\n    require('nothere_extra', 'x')\nexcept MissingExtra as e:\n    print('refused')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "site-packages" in done.stdout and "refused" in done.stdout
    assert not (tmp_path / "RAN_PEFT").exists() and not (tmp_path / "RAN_OTHER").exists()


def test_require_refuses_a_module_already_imported_from_outside_a_distribution(tmp_path, monkeypatch):
    (tmp_path / "matplotlib_fake.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "peft", importlib.import_module("matplotlib_fake"))
    with pytest.raises(MissingExtra, match="not part of an installed distribution"):
        require("peft", "backbone.lora")
    assert inspect.ismodule(sys.modules["peft"])
