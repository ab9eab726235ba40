"""Bad input gives an error naming file and line (or a counted skip), never a silent change; bad config values
name their key."""

import gzip
import json
import logging

import pytest

from bsr_lightning import Backbone, Optimization, PreferenceDataModule, Sampling
from bsr_lightning.backbones.tokenizers import load_tokenizer
from bsr_lightning.data.encoding import PairEncoder
from bsr_lightning.data.formats import row_to_pair
from bsr_lightning.data.loading import iter_raw_rows
from bsr_lightning.data.preference import collect_pairs
from bsr_lightning.errors import ConfigError, DataError, RowError
from bsr_lightning.reward.regularizers import BatchSumToZero, HiddenNormVariance, RewardCentering
from bsr_lightning.rloo.kl import SequenceKL
from conftest import HH_DATA, write_jsonl

ROW = {"prompt": "How do I get started with chess?", "chosen": "Practice a little every day.",
       "rejected": "Figure it out yourself."}


def test_a_truncated_gzip_names_the_file_and_line(tmp_path):
    data = HH_DATA.read_bytes()
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.jsonl.gz:\d+: the compressed file ends early"):
        collect_pairs(iter_raw_rows(str(path)), "skip")


def test_non_utf8_lines_are_located_and_counted_under_skip_and_a_bom_is_accepted(tmp_path, caplog):
    path = tmp_path / "mixed.jsonl"
    good = json.dumps(ROW).encode()
    path.write_bytes(b"\xef\xbb\xbf" + good + b"\n" + good.replace(b"chess", b"ch\xffss") + b"\n" + good + b"\n")
    with pytest.raises(RowError, match=r"mixed.jsonl:2: not UTF-8 text \(byte 0xff"):
        collect_pairs(iter_raw_rows(str(path)))
    with caplog.at_level(logging.WARNING):
        pairs = collect_pairs(iter_raw_rows(str(path)), "skip", "mixed")
    assert [p.where for p in pairs] == [f"{path}:1", f"{path}:3"]  # the BOM line is a valid row
    assert "skipped 1 bad rows of 3" in caplog.text


def test_a_gzipped_file_with_a_bom_reads(tmp_path):
    path = tmp_path / "bom.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b"\xef\xbb\xbf" + json.dumps(ROW).encode() + b"\n")
    assert len(collect_pairs(iter_raw_rows(str(path)))) == 1


def test_csv_rows_are_strings_located_by_file_line_and_empty_cells_say_so(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text('prompt,chosen,rejected\n"What is 6*7?",42,41\n"two\nlines",good,\n')
    rows = list(iter_raw_rows(str(path)))
    assert rows[0] == (f"{path}:2", {"prompt": "What is 6*7?", "chosen": "42", "rejected": "41"})
    assert row_to_pair(rows[0][1], 0, rows[0][0]).chosen[0]["content"] == "42"
    assert rows[1][0] == f"{path}:3"
    with pytest.raises(RowError, match=r"pairs.csv:3: empty value in column 'rejected'"):
        collect_pairs(rows)


@pytest.mark.parametrize("chosen, message", [
    ([{"role": "assistant", "content": "hi"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
     "turns must alternate user -> assistant, starting with the user; got assistant -> user -> assistant"),
    ([{"role": "user", "content": "q"}, {"role": "user", "content": "q again"}, {"role": "assistant", "content": "a"}],
     "got user -> user -> assistant"),
])
def test_messages_out_of_turn_order_are_bad_rows(chosen, message):
    rejected = [*chosen[:-1], {"role": "assistant", "content": "other"}]
    with pytest.raises(RowError, match=message):
        row_to_pair({"chosen": chosen, "rejected": rejected}, 0, "f:1")


def test_pairs_that_render_to_identical_tokens_are_bad_rows(tmp_path):
    tokenizer = load_tokenizer("tiny:synthetic")  # word-level: unknown words both become <unk>
    pair = row_to_pair({"prompt": "chess", "chosen": "zzzz", "rejected": "qqqq"}, 0, "f:7")
    with pytest.raises(RowError, match="f:7: 'chosen' and 'rejected' render to the same tokens"):
        PairEncoder(tokenizer, 64).encode([pair], "t")
    encoded, counts = PairEncoder(tokenizer, 64, bad_rows="skip").encode([pair], "t")
    assert encoded == [] and counts["bad_identical_tokens"] == 1


@pytest.mark.parametrize("build, key", [
    (lambda: BatchSumToZero(weight=-1e-3), "model.regularizer.init_args.weight"),
    (lambda: RewardCentering(weight=-1.0), "model.regularizer.init_args.weight"),
    (lambda: HiddenNormVariance(weight=-1.0), "model.regularizer.init_args.weight"),
    (lambda: SequenceKL(beta=-0.1), "model.kl.init_args.beta"),
    (lambda: Optimization(lr=0.0), "optimization.lr"),
    (lambda: Optimization(max_grad_norm=-1.0), "optimization.max_grad_norm"),
    (lambda: Sampling(top_p=0.0), "sampling.top_p"),
    (lambda: Sampling(k=1), "sampling.k"),
    (lambda: Backbone("x", quantization="fp8"), "backbone.quantization"),
    (lambda: PreferenceDataModule(path="x.jsonl", batch_size=0), "data.batch_size"),
    (lambda: PreferenceDataModule(path="x.jsonl", max_length=0), "data.max_length"),
    (lambda: PreferenceDataModule(path="x.jsonl", eval_batch_size=0), "data.eval_batch_size"),
])
def test_bad_config_values_are_refused_naming_the_key(build, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build()


def test_a_missing_data_file_names_the_path_and_key(tmp_path):
    from bsr_lightning.errors import PathNotFound

    with pytest.raises(PathNotFound, match=r"data file not found: .*nope.jsonl .*data.path"):
        list(iter_raw_rows(str(tmp_path / "nope.jsonl")))
    write_jsonl(tmp_path / "ok.jsonl", [ROW])


def test_allowed_values_come_from_the_literal_types():
    from typing import get_args

    from bsr_lightning.args import Schedule
    from bsr_lightning.data.encoding import Overlong

    with pytest.raises(ConfigError, match=r"model.regularizer.init_args.scope: must be one of 'device', 'global', "
                                          r"got 'world'"):
        BatchSumToZero(scope="world")
    with pytest.raises(ConfigError, match="optimization.schedule: must be one of " + ", ".join(
            repr(v) for v in get_args(Schedule))):
        Optimization(schedule="step")
    with pytest.raises(ConfigError, match="overlong: must be one of " + ", ".join(repr(v) for v in get_args(Overlong))):
        PairEncoder(None, 8, "cut")
