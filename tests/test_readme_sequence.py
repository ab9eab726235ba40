"""The README's sequence on a fresh machine: the demo, then the custom-regularizer example, then the demo's model
scored: the example never replaces the demo's export (it did: the export folder was hard-coded)."""

import re
import shlex
import sys

import pytest

from bsr_lightning.cli import cli_main
from bsr_lightning.errors import UserError
from bsr_lightning.files import sha256_of
from conftest import REPO, write_jsonl

MY_REGS = '''
from bsr_lightning.reward.regularizers import PairOutputs, Regularizer

class HiddenNormPenalty(Regularizer):
    def __init__(self, weight: float = 1e-4):
        self.weight = weight

    def penalty(self, out: PairOutputs):
        return self.weight * out.hidden.pow(2).sum(-1).mean()
'''
QUICK = ["--data.num_pairs", "32", "--data.num_val_pairs", "16", "--trainer.max_steps", "2",
         "--trainer.precision", "32-true", "--trainer.enable_progress_bar", "false"]


def readme_commands(heading: str, page: str = "docs/guide/train.md") -> list[list[str]]:
    """The arguments after ``python -m bsr_lightning`` of each command in the first bash block after ``heading``."""
    text = (REPO / page).read_text()
    block = re.search(r"```bash\n(.*?)```", text[text.index(heading):], re.S).group(1)
    return [shlex.split(line.split("#")[0])[3:] for line in block.splitlines()
            if line.startswith("python -m bsr_lightning")]


def test_the_custom_regularizer_example_never_replaces_the_demos_export(tmp_path, monkeypatch):
    (tmp_path / "my_regs.py").write_text(MY_REGS)
    monkeypatch.delitem(sys.modules, "my_regs", raising=False)  # another test's my_regs may be imported already
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = str(REPO / "configs/quickstart.yaml")
    root = ["--trainer.default_root_dir", str(tmp_path / "artifacts/quickstart")]
    cli_main(["fit", "--config", config, *QUICK, *root])  # make demo
    demo = tmp_path / "artifacts/quickstart/reward_model"
    export = readme_commands("## Export")
    assert len(export) == 1 and export[0][0] == "export"
    cli_main(export[0])  # as written, from the demo's checkpoint
    assert (tmp_path / "my_rm/config.json").is_file() and (tmp_path / "my_rm/model.safetensors").is_file()
    before = {p.name: sha256_of(p) for p in demo.iterdir() if p.is_file()}
    cli_main(["fit", "--config", config, *QUICK, *root])  # make demo again: its own export, replaced
    custom = ["fit", "--config", config, *QUICK, "--model.regularizer", "my_regs.HiddenNormPenalty",
              "--model.regularizer.init_args.weight", "1e-3"]
    with pytest.raises(UserError, match=r"holds the export of another run.*--trainer.default_root_dir"):
        cli_main([*custom, *root])
    assert {p.name: sha256_of(p) for p in demo.iterdir() if p.is_file()}.keys() == before.keys()
    cli_main([*custom, "--trainer.default_root_dir", str(tmp_path / "artifacts/my_regs")])  # as the README shows
    assert (tmp_path / "artifacts/my_regs/reward_model/config.json").is_file()
    data = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "p", "chosen": "good answer", "rejected": "bad"}])
    metrics = cli_main(["evaluate", "--model", str(demo), "--data", data, "--output_dir", str(tmp_path / "eval")])
    assert metrics["pairs"] == 1
    del sys.modules["my_regs"]  # not left for another test's my_regs


def test_the_demo_prints_none_of_the_known_harmless_warnings(tmp_path):
    import subprocess

    done = subprocess.run([sys.executable, "-m", "bsr_lightning", "fit", "--config",
                           str(REPO / "configs/quickstart.yaml"), *QUICK, "--trainer.default_root_dir",
                           str(tmp_path / "q")], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    for noise in ("LOAD REPORT", "Tip:", "LeafSpec", "is an instance of `nn.Module`", "manual optimization"):
        assert noise not in output, noise
    assert "Held-out accuracy (val/accuracy)" in output and "Exported RewardModel" in output
