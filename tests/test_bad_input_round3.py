"""The 27 raw tracebacks and misleading messages of issue 32's probe (round 3), each now one ``bsr_lightning:
error:`` block with exit status 2, through the same rule as every other user error (``errors.user_error_in``).
``docs/reliability.md`` lists them."""

import json
import os
import struct
import sys

import pytest
import torch

from bsr_lightning.cli import main
from bsr_lightning.files import OUTPUTS
from conftest import run_main
from test_bad_input_table import ROW, made  # noqa: F401  (the shared fixture: a checkpoint, an export, data)
from test_cli import fit_args


def broken_weights(m: dict, name: str, data: bytes) -> str:
    """A copy of the export whose ``model.safetensors`` holds ``data``."""
    import shutil

    folder = m["root"] / f"weights_{name}"
    if not folder.exists():
        shutil.copytree(m["export"], folder)
        (folder / "model.safetensors").write_bytes(data)
    return str(folder)


def cases(m: dict) -> dict[str, tuple[list[str], str]]:
    r = m["root"]
    out = str(r / "out3")
    good = (r / "run3" / "x").parent
    original = open(os.path.join(m["export"], "model.safetensors"), "rb").read()
    header = struct.pack("<Q", 2**62) + b"{}"
    bad_json = b"{not json"
    (r / "dangling").unlink(missing_ok=True)
    os.symlink(r / "nowhere" / "at_all", r / "dangling")
    deep = r / "deep_manifest"
    deep.mkdir(exist_ok=True)
    (deep / OUTPUTS).write_text("[" * 200_000 + "]" * 200_000)
    (deep / "notes.txt").write_text("mine")
    long_name = r / "long_manifest"
    long_name.mkdir(exist_ok=True)
    (long_name / OUTPUTS).write_text(json.dumps({"files": {"a" * 5000: "sha256:0:0:0"}, "dirs": {"b" * 5000: "x"}}))
    (long_name / "notes.txt").write_text("mine")
    (r / "garbage.parquet").write_bytes(os.urandom(3000))
    (r / "notes").mkdir(exist_ok=True)
    (r / "notes" / "notes.md").write_text("# notes\n")
    fifo = r / "fifo_data"
    if not fifo.exists():
        os.mkfifo(fifo)
    (r / "nul.yaml").write_text('trainer:\n  default_root_dir: "a\\0b"\n')
    (r / "surrogate_subset.jsonl").write_text(json.dumps({**ROW, "subset": "\ud800x"}) + "\n")
    scores_dir = r / "scores_is_a_dir"
    (scores_dir / "scores.jsonl").mkdir(parents=True, exist_ok=True)
    (r / "wide.jsonl").write_text(json.dumps({"prompt": "q", "chosen": "a", **{f"c{i}": 1 for i in range(10**6)}})
                                  + "\n")
    automap = broken_weights(m, "automap", original)
    config = json.loads(open(os.path.join(automap, "config.json")).read())
    open(os.path.join(automap, "config.json"), "w").write(json.dumps({**config, "auto_map": {"AutoModel": "x.Y"}}))
    sft = r / "sft.ckpt"
    checkpoint = torch.load(m["ckpt"], weights_only=True)
    torch.save({**checkpoint, "hyper_parameters": {**checkpoint["hyper_parameters"],
                                                   "_class_path": "bsr_lightning.SFTModel"}}, sft)

    def ev(data: str = m["data"], model: str = m["export"], output: str = out, *extra: str) -> list[str]:
        return ["evaluate", "--model", model, "--data", data, "--output_dir", output, *extra]

    def fit(*extra: str) -> list[str]:
        return fit_args(m["export"], m["data"], good, "--data.val_fraction", "0", *extra)

    return {
        "empty model.safetensors": (ev(model=broken_weights(m, "empty", b"")), "its weights cannot be read"),
        "truncated model.safetensors": (ev(model=broken_weights(m, "truncated", original[: len(original) // 2])),
                                        "its weights cannot be read"),
        "garbage model.safetensors": (ev(model=broken_weights(m, "garbage", os.urandom(5000))),
                                      "its weights cannot be read"),
        "header too large": (ev(model=broken_weights(m, "header", header)), "its weights cannot be read"),
        "header not JSON": (ev(model=broken_weights(m, "json", struct.pack("<Q", len(bad_json)) + bad_json)),
                            "its weights cannot be read"),
        "a dangling link as output folder": (ev(output=str(r / "dangling")), "which does not exist"),
        "export into a dangling link": (["export", "--ckpt_path", m["ckpt"], "--output_dir", str(r / "dangling")],
                                        "which does not exist"),
        "a 5,000-character manifest name": (ev(output=str(long_name)), "holds 1 file(s) evaluate did not write"),
        "a manifest nested 200k deep": (ev(output=str(deep)), "holds 1 file(s) evaluate did not write"),
        "a garbage parquet": (ev(str(r / "garbage.parquet")), "not a readable parquet file"),
        "a glob matching notes.md": (ev(str(r / "notes" / "*")), "matches no data file"),
        "process substitution (a pipe)": (ev(str(fifo)), "not a data file by its name"),
        "an SFT checkpoint as reward model": (ev(model=str(sft)), "holds a SFTModel, not a RewardModel"),
        "serve an SFT checkpoint": (["serve", "--model", str(sft)], "holds a SFTModel, not a RewardModel"),
        "serve a garbage checkpoint": (["serve", "--model", str(r / "garbage.ckpt")], "cannot be read"),
        "betas [2,-1]": (fit("--model.optimization.betas", "[2,-1]"), "optimization.betas: must be two numbers"),
        "max_steps -5": (fit("--trainer.max_steps", "-5"), "trainer: `max_steps` must be a non-negative"),
        "a NUL byte in default_root_dir": ([*fit(), "--config", str(r / "nul.yaml")], "NUL byte"),
        "a lone surrogate in subset": (ev(str(r / "surrogate_subset.jsonl")), "column 'subset' holds a lone surrogate"),
        "scores.jsonl is a folder": (ev(m["data"], m["export"], str(scores_dir), "--overwrite", "true"),
                                     "scores.jsonl is a folder"),
        "a 10^6-column row": (ev(str(r / "wide.jsonl")), "and 999,982 more"),
        "an auto_map refusal names what works": (ev(model=automap), "export --trust_remote_code true"),
    }


def test_every_round3_input_is_one_short_message_and_exit_2(made, monkeypatch, capsys):  # noqa: F811
    failures = []
    for name, (args, expected) in cases(made).items():
        code, _, err = run_main(args, monkeypatch, capsys)
        ok = (code == 2 and "Traceback" not in err and "bsr_lightning: error:" in err and expected in err
              and len(err) < 5000)
        if not ok:
            failures.append(f"{name}: exit {code}, {len(err)} characters, stderr tail {err[-300:]!r}")
    assert not failures, "\n".join(failures)
    assert not (made["root"] / "out3").exists()


@pytest.mark.parametrize("raised, says", [
    (RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file data/0: file "
                  "write failed"), "cannot write a checkpoint"),
    (OSError(28, "No space left on device", "/x/model.safetensors"), "cannot write /x/model.safetensors"),
    (ValueError("embedded null byte"), "NUL byte"),
    (OSError(36, "File name too long", "a" * 5000), "File name too long"),
])
def test_a_full_disk_and_impossible_paths_are_one_message(monkeypatch, capsys, raised, says):
    """A full disk shows up as torch.save's RuntimeError or an OSError; neither can be made here for real."""
    import bsr_lightning.cli as cli

    def fail(args):
        raise raised

    monkeypatch.setitem(cli.COMMANDS, "evaluate", fail)
    monkeypatch.setattr(sys, "argv", ["bsr_lightning", "evaluate"])
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err and says in err and len(err) < 1000
