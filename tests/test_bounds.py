"""Bounds on what a file can make the program do (issue 32, finding 12): a chat template is probed in a sandboxed
process with time, memory and output limits; a ``config.json`` that describes far more than its weights is refused
before anything is built; a line longer than any row is read past, not held."""

import gzip
import json
import shutil
import time
import tracemalloc

import pytest
import torch

from bsr_lightning import Backbone, RewardModel, template_probe
from bsr_lightning.backbones.export import export_module
from bsr_lightning.data import loading
from bsr_lightning.data.loading import iter_raw_rows
from bsr_lightning.errors import ConfigError, RowError
from conftest import run_main, write_jsonl

LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


@pytest.fixture(scope="module")
def export(tiny_llama, tmp_path_factory) -> str:
    torch.manual_seed(0)
    return str(export_module(RewardModel(Backbone(tiny_llama), score_init="normal"),
                             tmp_path_factory.mktemp("rm") / "export"))


def hostile_copy(export: str, tmp_path, config: dict | None = None, template: str | None = None) -> str:
    folder = tmp_path / "hostile"
    shutil.copytree(export, folder)
    if config:
        (folder / "config.json").write_text(json.dumps({**json.loads((folder / "config.json").read_text()),
                                                         **config}))
    if template:
        (folder / "chat_template.jinja").write_text(template)
    return str(folder)


@pytest.mark.parametrize("template, says", [(LOOPS, "did not finish rendering five short messages within 1 s"),
                                            ("{{ 'a' * 300000000 }}", "five short messages"),
                                            ("{{ 'ab' * 600000 }}", "wrote 1,200,000 characters")])
def test_a_hostile_chat_template_is_refused_before_any_data(export, template, says, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(template_probe, "SECONDS", 1.0)
    data = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    started = time.monotonic()
    code, _, err = run_main(["evaluate", "--model", hostile_copy(export, tmp_path, template=template), "--data", data,
                             "--output_dir", str(tmp_path / "out")], monkeypatch, capsys)
    assert code == 2 and "its chat template" in err and says in err and "refused" in err, err
    assert time.monotonic() - started < 30 and not (tmp_path / "out").exists()


def test_ordinary_templates_pass_the_probe():
    from bsr_lightning.chat_templates import PLAIN_CHAT_TEMPLATE, ZEPHYR_CHAT_TEMPLATE

    generation = "{% for m in messages %}{% generation %}{{ m['content'] }}{% endgeneration %}{% endfor %}"
    template_probe.check_template({"default": ZEPHYR_CHAT_TEMPLATE, "plain": PLAIN_CHAT_TEMPLATE}, "model x")
    template_probe.check_template(generation, "model x")  # transformers' own tag
    with pytest.raises(ConfigError, match="wrote"):
        template_probe.check_template("{{ 'x' * 2000000 }}", "model x")


def test_a_config_far_beyond_its_weights_is_refused_before_building(export, tmp_path, monkeypatch, capsys):
    """``num_hidden_layers: 200000`` beside a 2-layer model's weights built layers for over 200 s."""
    data = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    started = time.monotonic()
    code, _, err = run_main(["evaluate", "--model", hostile_copy(export, tmp_path, {"num_hidden_layers": 200_000}),
                             "--data", data, "--output_dir", str(tmp_path / "out")], monkeypatch, capsys)
    assert code == 2 and "200000 layers" in err and "does not fit the weights" in err, err
    assert time.monotonic() - started < 30


def test_a_config_beyond_memory_is_refused_with_the_numbers(monkeypatch):
    from transformers import LlamaConfig

    from bsr_lightning.backbones import sizing

    monkeypatch.setattr(sizing, "available_memory", lambda: 2**30)
    config = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, vocab_size=128256)
    # 2 * 128256 * 4096 embeddings + 32 * (4 * 4096^2 + 3 * 4096 * 14336) = 8,835,301,376 (an upper estimate: the real
    # model shares k and v heads and has 8.0B); times 2 bytes = 16.46 GiB
    with pytest.raises(ConfigError, match=r"8\.8B parameters .* 16\.5 GiB of weights, more than the 1\.0 GiB"):
        sizing.check_model_size(config, "/nonexistent", "llama-8b", 2)
    sizing.check_model_size(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, vocab_size=500),
                            "/nonexistent", "small", 4)


def test_a_line_longer_than_any_row_is_read_past_not_held(tmp_path, monkeypatch):
    """A 1 GB line in a 970 KB ``.jsonl.gz`` peaked at 4.1 GB; here the cap is 1 MB and the line 30 MB."""
    monkeypatch.setattr(loading, "MAX_ROW_BYTES", 2**20)
    path = tmp_path / "bomb.jsonl.gz"
    row = json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"})
    with gzip.open(path, "wt") as f:
        f.write(row + "\n" + '{"prompt": "' + "x" * 30_000_000 + '"}\n' + row + "\n")
    tracemalloc.start()
    rows = list(iter_raw_rows(str(path)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [w for w, _ in rows] == [f"{path}:1", f"{path}:2", f"{path}:3"]
    assert isinstance(rows[1][1], RowError) and "a line over 1 MiB" in str(rows[1][1])
    assert rows[0][1] == rows[2][1] == json.loads(row)
    assert peak < 8 * 2**20
