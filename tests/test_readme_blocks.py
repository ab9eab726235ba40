"""Every command of the bash blocks of the README and of the manual's pages (``docs/**/*.md``, the site) is run by a
test as written (on tiny models, or with a few steps appended), or is listed in ``WHERE`` with the reason it cannot
run in the suite (GPUs, a second node, the network, a benchmark's hours). A command added to a page without an entry
here fails ``test_every_readme_command_is_accounted_for``."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request

import torch

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.backbones.export import export_module
from bsr_lightning.cli import cli_main
from conftest import HH_DATA, REPO, free_port, wait_until_healthy

# (pattern on the command, where it runs: "file::test" of the suite, or "not here: why")
WHERE = [
    (r"^make demo$", "test_readme_blocks.py::test_make_demo_is_the_quickstart_fit"),
    (r"^make test$", "not here: it is the suite itself (.ci/run runs it)"),
    (r"^make lint$", "not here: ruff is unpinned in the dev extras and its rules change between releases; run it "
                     "before a commit"),
    (r"fit --config configs/reward/hh_rlhf_minilm\.yaml --data\.path ",
     "test_readme_blocks.py::test_the_hh_rlhf_line_trains_on_the_real_pairs"),
    (r"^python -m bsr_lightning fit --config configs/reward/llama3_8b_skywork_bsr\.yaml$",
     "not here: Llama-3.1-8B from the hub on 8 GPUs; test_configs.py parses the config and builds its strategy"),
    (r"fit --config configs/quickstart\.yaml --model\.regularizer my_regs",
     "test_readme_sequence.py::test_the_custom_regularizer_example_never_replaces_the_demos_export"),
    (r"^python -m bsr_lightning export --ckpt_path artifacts/quickstart",
     "test_readme_sequence.py::test_the_custom_regularizer_example_never_replaces_the_demos_export"),
    (r"^python -m bsr_lightning (evaluate|diagnose|scenarios) ",
     "test_readme_examples.py::test_the_readme_evaluate_block_runs_as_written"),
    (r"fit --config configs/(sft|reward|rloo)/synthetic_tiny\.yaml$",
     "test_readme_blocks.py::test_the_rloo_block_chains_its_three_fits"),
    (r"^python scripts/rloo_demo\.py ", "test_rloo.py::test_rloo_demo_quick_writes_summary"),
    (r"^pip install ", "not here: installs from PyPI (make install installs the [dev] extra, which has litserve)"),
    (r"^python -m bsr_lightning serve ", "test_readme_blocks.py::test_the_serve_block_scores_as_written"),
    (r"^curl ", "test_readme_blocks.py::test_the_serve_block_scores_as_written"),
    (r"^(torchrun|srun) ", "not here: two nodes of 8 GPUs"),
    (r"^(PYTHONPATH=\S+ )?python3? scripts/(bench_|profile_|reproduce|quickstart_figures|time_tests)",
     "not here: a benchmark or a reproduction (minutes to hours); the JSON it writes records the command and machine"),
    (r"^bash scripts/gpu_wheels\.sh$", "not here: downloads the wheels the GPU machine installs"),
    (r"^python3 -m pip install -q --no-index ", "not here: runs on the GPU machine (scripts/gpu_check.py)"),
]
GENERATED = ("reproduction/results.md", "reproduction/length/results.md")  # tables copied into reproduction.md


def pages() -> list:
    """The README and the manual's Markdown pages (the site's), generated tables left out."""
    docs = REPO / "docs"
    return [REPO / "README.md", *(p for p in sorted(docs.rglob("*.md"))
                                  if str(p.relative_to(docs)) not in GENERATED)]


def readme_commands() -> list[list[str]]:
    """Every distinct command of the pages' bash blocks (indented ones too), in order, as its words: continuation
    lines joined, comments cut."""
    commands = []
    for page in pages():
        for block in re.findall(r"^[ \t]*```bash\n(.*?)^[ \t]*```", page.read_text(), re.S | re.M):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                if (words := shlex.split(line, comments=True)) and words not in commands:
                    commands.append(words)
    return commands


def commands_matching(pattern: str) -> list[list[str]]:
    """The README's commands whose words, joined by spaces, match ``pattern``."""
    return [words for words in readme_commands() if re.search(pattern, " ".join(words))]


def test_every_readme_command_is_accounted_for():
    commands = [" ".join(words) for words in readme_commands()]
    assert len(commands) >= 20
    for command in commands:
        assert [w for p, w in WHERE if re.search(p, command)], f"README command with no test or reason: {command}"
    for pattern, where in WHERE:
        assert any(re.search(pattern, c) for c in commands), f"stale entry: {pattern}"
        if not where.startswith("not here"):
            file, name = where.split("::")
            assert f"def {name}(" in (REPO / "tests" / file).read_text(), where


def test_make_demo_is_the_quickstart_fit():
    """``make demo`` runs the quickstart config, which test_readme_sequence.py runs (with a few steps) and checks
    for the known-harmless warnings."""
    recipe = re.search(r"^demo:.*\n\t(.*)$", (REPO / "Makefile").read_text(), re.M).group(1)
    assert recipe == "$(PY) -m bsr_lightning fit --config configs/quickstart.yaml"


def test_the_hh_rlhf_line_trains_on_the_real_pairs(tmp_path, monkeypatch):
    """The README's line, from a checkout's layout (``configs/`` here, ``../shared`` beside it), on the first 48
    pairs for 2 steps."""
    (tmp_path / "shared").symlink_to(HH_DATA.parents[1])
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "configs").symlink_to(REPO / "configs")
    monkeypatch.chdir(tmp_path / "repo")
    (line,) = commands_matching(r"configs/reward/hh_rlhf_minilm\.yaml --data\.path ")
    cli = cli_main([*line[3:], "--data.max_pairs", "48", "--trainer.max_steps", "2", "--trainer.limit_val_batches",
                    "1", "--trainer.enable_progress_bar", "false"])
    assert cli.trainer.global_step == 2 and torch.isfinite(cli.trainer.callback_metrics["train/loss"])
    assert str(cli.trainer.default_root_dir).endswith("artifacts/hh_rlhf_minilm")
    assert (tmp_path / "repo/artifacts/hh_rlhf_minilm").is_dir()


def test_the_rloo_block_chains_its_three_fits(tmp_path, monkeypatch):
    """The SFT, reward and RLOO lines in order, each reading what the one before exported, with a few steps."""
    (tmp_path / "configs").symlink_to(REPO / "configs")
    monkeypatch.chdir(tmp_path)
    lines = commands_matching(r"fit --config configs/(sft|reward|rloo)/synthetic_tiny\.yaml$")
    assert [line[-1].split("/")[1] for line in lines] == ["sft", "reward", "rloo"]
    few = {"sft": ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3"],
           "reward": ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3"],
           "rloo": ["--trainer.max_steps", "2", "--trainer.val_check_interval", "2"]}
    for line in lines:
        cli = cli_main([*line[3:], *few[line[-1].split("/")[1]], "--trainer.limit_val_batches", "1",
                        "--trainer.enable_progress_bar", "false"])
        assert cli.trainer.global_step > 0
    for export in ("sft_policy", "reward_bsr/reward_model", "rloo_bsr/policy"):
        assert (tmp_path / "artifacts/rloo_demo" / export / "config.json").is_file(), export


def test_the_serve_block_scores_as_written(tmp_path):
    """``serve`` on the demo's export path and the ``curl`` line, with a free port in place of 8000 (curl itself
    where installed, else the same request through urllib)."""
    export_module(RewardModel(Backbone("tiny:synthetic"), score_init="normal"),
                  tmp_path / "artifacts/quickstart/reward_model")
    port = str(free_port())
    (serve,) = commands_matching(r"^python -m bsr_lightning serve ")
    serve = [sys.executable if t == "python" else port if t == "8000" else t for t in serve]
    (curl,) = commands_matching(r"^curl ")
    curl = [w.replace("localhost:8000", f"127.0.0.1:{port}") for w in curl]
    process = subprocess.Popen(serve, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process)
        if shutil.which("curl"):
            body = subprocess.run(curl, capture_output=True, text=True, timeout=60, check=True).stdout
        else:
            headers = dict([curl[curl.index("-H") + 1].split(": ")])
            request = urllib.request.Request("http://" + curl[3], data=curl[curl.index("-d") + 1].encode(),
                                             headers=headers)
            with urllib.request.urlopen(request, timeout=60) as response:
                body = response.read().decode()
        scores = json.loads(body)["scores"]
        assert len(scores) == 1 and isinstance(scores[0], float)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
