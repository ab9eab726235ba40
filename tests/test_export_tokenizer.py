"""An export's ``tokenizer.json`` has no fixed padding or truncation, whatever the training calls left in it."""

from tokenizers import Tokenizer

from bsr_lightning.backbones.names import resolve_model_path
from bsr_lightning.backbones.tokenizers import export_tokenizer, load_tokenizer


def test_exported_tokenizer_json_is_plain(tmp_path):
    tokenizer = load_tokenizer(resolve_model_path("tiny:synthetic"))
    tokenizer(["Happy to help!"], padding="max_length", truncation=True, max_length=128)  # as training's collate does
    leaked = tmp_path / "leaked"
    tokenizer.save_pretrained(leaked)
    exported = tmp_path / "exported"
    export_tokenizer(tokenizer).save_pretrained(exported)
    plain = Tokenizer.from_file(str(exported / "tokenizer.json"))
    assert plain.padding is None and plain.truncation is None
    assert len(plain.encode("Happy to help!").ids) < 10
    # the tokenizer it came from still works as before (the export changed a copy)
    assert len(tokenizer("Happy to help!")["input_ids"]) < 10
