"""Chat templates by value: the paper's Zephyr rendering by name, files read once (relative paths included) and
kept as text in checkpoints and exports, and a path that does not exist refused instead of used as text."""

import pytest
from transformers import AutoTokenizer

from bsr_lightning.args import Backbone
from bsr_lightning.backbones.tokenizers import chat_text, load_tokenizer, template_writes_specials
from bsr_lightning.chat_templates import ZEPHYR_CHAT_TEMPLATE, resolve_template
from bsr_lightning.cli import cli_main
from bsr_lightning.data.chat import render_ids
from bsr_lightning.errors import ConfigError
from test_cli import checkpoint_of, fit_args

CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris."}]


def test_zephyr_renders_the_papers_text_without_bos(tiny_llama):
    tok = load_tokenizer(tiny_llama, "zephyr")
    assert tok.chat_template == ZEPHYR_CHAT_TEMPLATE
    # written out by hand from the template of the alignment handbook that the paper's run_alignment.py sets
    expected = "<|system|>\nBe brief.</s>\n<|user|>\nCapital of France?</s>\n<|assistant|>\nParis.</s>\n"
    assert chat_text(tok, CONVERSATION) == expected
    assert chat_text(tok, CONVERSATION[:2], generation_prompt=True).endswith("Capital of France?</s>\n<|assistant|>\n")
    ids = render_ids(tok, CONVERSATION, generation_prompt=False)
    assert template_writes_specials(tok) and ids[0] != tok.bos_token_id  # add_special_tokens=False, as theirs
    assert tok.decode(ids) == expected


def test_a_template_path_is_read_once_and_a_missing_one_is_refused(tmp_path, monkeypatch):
    (tmp_path / "tpl.jinja").write_text("{% for m in messages %}[{{ m['content'] }}]{% endfor %}")
    monkeypatch.chdir(tmp_path)
    assert Backbone("m", chat_template="tpl.jinja").chat_template.startswith("{% for m in messages %}")
    with pytest.raises(ConfigError, match=r"backbone.chat_template: 'no_such.jinja' is not a Jinja template.*no such "
                                          r"file"):
        Backbone("m", chat_template="no_such.jinja")
    with pytest.raises(ConfigError, match=r"'zephir' is not a Jinja template, not one of the named templates"):
        resolve_template("zephir")
    assert resolve_template("{{ messages[0]['content'] }}") == "{{ messages[0]['content'] }}"


def test_a_relative_template_reaches_the_export_from_another_directory(tiny_llama, synthetic_jsonl, tmp_path,
                                                                      monkeypatch):
    (tmp_path / "tpl.jinja").write_text("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}")
    monkeypatch.chdir(tmp_path)
    cli_main(fit_args(tiny_llama, synthetic_jsonl, tmp_path / "run", "--model.backbone.chat_template", "tpl.jinja"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the path no longer resolves: the checkpoint must hold the text
    cli_main(["export", "--ckpt_path", str(checkpoint_of(tmp_path / "run")), "--output_dir", str(tmp_path / "out")])
    exported = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert exported.chat_template == (tmp_path / "tpl.jinja").read_text()
