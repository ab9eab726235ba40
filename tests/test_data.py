import gzip
import json
import logging

import pytest

from bsr_lightning.backbones.tokenizers import load_tokenizer
from bsr_lightning.data.encoding import PairEncoder, render
from bsr_lightning.data.formats import RowError, parse_hh, row_to_pair
from bsr_lightning.data.loading import iter_raw_rows
from bsr_lightning.data.preference import PreferenceDataModule, collect_pairs
from conftest import HH_DATA, write_jsonl

HH_CHOSEN = "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?"
HH_REJECTED = "\n\nHuman: Hi there\n\nAssistant: Go away."


def test_parse_hh_transcript():
    assert parse_hh(HH_CHOSEN) == [{"role": "user", "content": "Hi there"},
                                   {"role": "assistant", "content": "Hello! How can I help?"}]
    assert parse_hh("just some text") is None


@pytest.mark.parametrize("row", [
    {"chosen": HH_CHOSEN, "rejected": HH_REJECTED},
    {"prompt": "Hi there", "chosen": "Hello! How can I help?", "rejected": "Go away."},
    {"prompt": [{"role": "user", "content": "Hi there"}],
     "chosen": [{"role": "assistant", "content": "Hello! How can I help?"}],
     "rejected": [{"role": "assistant", "content": "Go away."}]},
    {"chosen": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"}],
     "rejected": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Go away."}]},
], ids=["hh", "prompt-strings", "conversational", "conversational-no-prompt"])
def test_three_formats_normalize_to_the_same_pair(row):
    pair = row_to_pair(row, 0, "f.jsonl:1")
    assert pair.prompt == [{"role": "user", "content": "Hi there"}]
    assert pair.chosen == [{"role": "assistant", "content": "Hello! How can I help?"}]
    assert pair.rejected == [{"role": "assistant", "content": "Go away."}]


@pytest.mark.parametrize("row, problem", [
    ({"chosen": "a"}, "missing column 'rejected'"),
    ({"chosen": 3, "rejected": "b"}, "column 'chosen' must be a string, got int"),
    ({"chosen": "  ", "rejected": "b"}, "empty value in column 'chosen'"),
    ({"prompt": "p", "chosen": "same", "rejected": "same"}, "identical"),
    ({"prompt": "p", "chosen": [{"role": "bot", "content": "x"}], "rejected": "y"}, "role 'bot'"),
    ({"prompt": "p", "chosen": [{"role": "user", "content": "x"}], "rejected": "y"}, "end with an assistant"),
    ({"prompt": "p", "chosen": "a", "rejected": "b", "margin": "big"}, "'margin' must be a finite number"),
])
def test_bad_rows_name_the_place_and_problem(row, problem):
    with pytest.raises(RowError, match=problem) as err:
        row_to_pair(row, 4, "data.jsonl:5")
    assert str(err.value).startswith("data.jsonl:5: ")


def test_malformed_json_line_is_reported_with_line_number(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}, "{not json",
                                             {"prompt": "p", "chosen": "a", "rejected": "c"}])
    with pytest.raises(RowError, match=r"d\.jsonl:2: malformed JSON.*bad_rows skip"):
        collect_pairs(iter_raw_rows(path), "error")


def test_skip_counts_bad_rows_and_reports_first_lines(tmp_path, caplog):
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b"}, "{oops", {"prompt": "p", "chosen": "a"},
            {"prompt": "p", "chosen": "x", "rejected": "y"}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    with caplog.at_level(logging.WARNING):
        pairs = collect_pairs(iter_raw_rows(path), "skip", "train")
    assert [p.where for p in pairs] == [f"{path}:1", f"{path}:4"]
    assert "skipped 2 bad rows of 4" in caplog.text and f"{path}:2" in caplog.text and f"{path}:3" in caplog.text


def test_reads_gz_json_array_parquet_and_csv(tmp_path):
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "c", "rejected": "d"}]
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "b.json").write_text(json.dumps(rows))
    import datasets

    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "c.parquet"))
    datasets.Dataset.from_list(rows).to_csv(str(tmp_path / "d.csv"), index=False)
    for name in ("a.jsonl.gz", "b.json", "c.parquet", "d.csv"):
        pairs = collect_pairs(iter_raw_rows(str(tmp_path / name)))
        assert [p.chosen[0]["content"] for p in pairs] == ["a", "c"], name


def test_missing_file_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        list(iter_raw_rows(str(tmp_path / "nope.jsonl")))


def test_real_hh_rlhf_rows_parse_and_turn_order_breaks_are_found(caplog):
    with pytest.raises(RowError, match=r"jsonl.gz:668: 'chosen': turns must alternate.*assistant -> assistant"):
        collect_pairs(iter_raw_rows(str(HH_DATA)))
    with caplog.at_level("WARNING"):
        pairs = collect_pairs(iter_raw_rows(str(HH_DATA)), "skip", "hh")
    # 9 of the 2,312 transcripts have two assistant turns in a row: bad rows, counted, not trained on
    assert len(pairs) == 2312 - 9 and "skipped 9 bad rows of 2312" in caplog.text
    for p in pairs:
        roles = [m["role"] for m in p.prompt + p.chosen]
        assert roles[0] == "user" and roles[-1] == "assistant"
        assert all(a != b for a, b in zip(roles, roles[1:], strict=False))


def test_overlong_policies_count_and_keep_special_tokens(tiny_bert):
    tok = load_tokenizer(tiny_bert)
    long = row_to_pair({"prompt": "word " * 40, "chosen": "good answer", "rejected": "bad answer"}, 0, "x")
    short = row_to_pair({"prompt": "hi", "chosen": "good", "rejected": "bad"}, 1, "y")
    kept, counts = PairEncoder(tok, 16, "drop").encode([long, short], "train")
    assert [p.row_id for p in kept] == [1] and counts["dropped_overlong"] == 1
    kept, counts = PairEncoder(tok, 16, "truncate_left").encode([long, short], "train")
    assert counts["truncated"] == 1 and len(kept[0].chosen) == 16
    assert kept[0].chosen[0] == tok.cls_token_id and kept[0].chosen[-1] == tok.sep_token_id
    assert tok.decode(kept[0].chosen[-3:-1]) == "good answer"
    kept, counts = PairEncoder(tok, 16, "truncate_right").encode([long, short], "train")
    # keeping the start cuts both answers off: identical pairs are dropped and counted, never trained on
    assert counts["dropped_identical_after_truncation"] == 1 and [p.row_id for p in kept] == [1]


def test_chat_template_renders_messages(tiny_llama):
    tok = load_tokenizer(tiny_llama)
    text = render(tok, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    assert text == "<|user|>hi<|end|><|assistant|>yo<|end|>"
    assert tok.pad_token == "<|pad|>" and tok.pad_token_id != tok.eos_token_id


def test_datamodule_carves_seeded_validation_split(tiny_bert, synthetic_jsonl):
    def build():
        dm = PreferenceDataModule(path=synthetic_jsonl, tokenizer=tiny_bert, val_fraction=0.25, batch_size=4)
        dm.setup("fit")
        return dm

    a, b = build(), build()
    val_ids = [p.row_id for p in a.datasets["val"].pairs]
    assert len(val_ids) == 12 and val_ids == [p.row_id for p in b.datasets["val"].pairs]
    assert not set(val_ids) & {p.row_id for p in a.datasets["train"].pairs}
    batch = next(iter(a.train_dataloader()))
    assert batch["input_ids"].shape[0] == 8 and batch["row_ids"].shape == (4,)
    assert batch["attention_mask"].sum(1).min() > 0


def test_length_grouped_sampler_is_a_permutation_with_similar_lengths():
    import numpy as np

    from bsr_lightning.data.collate import LengthGroupedSampler

    lengths = np.arange(100) % 17
    sampler = LengthGroupedSampler(lengths, batch_size=4, seed=1, window=25)
    order = list(sampler)
    assert sorted(order) == list(range(100)) and order == list(sampler)
    spread = np.mean([np.ptp(lengths[order[i:i + 4]]) for i in range(0, 100, 4)])
    assert spread < np.mean([np.ptp(lengths[i:i + 4]) for i in range(0, 100, 4)])
    sampler.set_epoch(1)
    assert list(sampler) != order


@pytest.mark.parametrize("overlong", ["truncate_left", "truncate_right", "drop"])
def test_huge_messages_are_cut_before_tokenizing_without_changing_the_kept_tokens(tiny_llama, overlong, caplog):

    tok = load_tokenizer(tiny_llama)
    encoder = PairEncoder(tok, 16, overlong)
    conversation = [{"role": "user", "content": "start " + "the quick brown fox " * 5000},
                    {"role": "assistant", "content": "jumps over " * 20000 + "the lazy dog"}]
    capped = encoder.cap_characters(conversation)
    assert encoder.char_cap <= max(len(m["content"]) for m in capped) <= 2 * encoder.char_cap < 50_000
    with caplog.at_level(logging.WARNING):
        got, counts, _ = encoder.encode_sequences([conversation], "huge")
    assert f"over {encoder.char_cap} characters, cut before tokenizing" in caplog.text
    full = encoder._tokenize([conversation])[0]  # the whole text, tokenized as before the cap
    expected = None if overlong == "drop" else encoder._truncate(full)
    assert got == [expected] and counts["capped_before_tokenizing"] == 1 and counts["overlong"] == 1


@pytest.mark.parametrize("overlong", ["truncate_left", "truncate_right"])
@pytest.mark.parametrize("filler", [" ", "\u0301", "a"])
def test_the_character_cap_never_drops_tokens_that_fit(tiny_bert, tiny_llama, overlong, filler):
    """Issue 32, finding 15: ``A + 6000 spaces + B`` is 15 tokens for WordPiece, which drops the spaces; a cut to
    the character cap used to score it as ``B`` alone. Spaces, combining marks (dropped by BERT's accent
    stripping) and one long word (no whitespace to cut at) are all tokenized whole, exactly as without the cap."""
    for path in (tiny_bert, tiny_llama):
        tok = load_tokenizer(path)
        encoder = PairEncoder(tok, 16, overlong)
        text = "alpha beta gamma delta " + filler * 6000 + " omega psi chi phi"
        conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": text}]
        got, _, _ = encoder.encode_sequences([conversation], "sparse")
        assert got == [encoder._truncate(encoder._tokenize([conversation])[0])], (path, filler)


def test_text_stays_text():
    """Issue 34, item 4: a string prompt is one user turn of exactly its text (a multi-format prompt that began
    with "Human:" was split into turns, and a trailing space was stripped, so a template that joins turns without a
    separator rendered "eat?apples!"); an HH-RLHF transcript by its own format ("\\n\\nHuman: ...") is still parsed."""
    from bsr_lightning.data.formats import as_messages, row_to_pair

    assert as_messages("Human: what do apes eat?", "prompt", "row 1", "user") == [
        {"role": "user", "content": "Human: what do apes eat?"}]
    pair = row_to_pair({"prompt": "What do apes eat? ", "chosen": "apples!", "rejected": "rocks"}, 0, "row 0")
    joined = "".join(m["content"] for m in pair.prompt + pair.chosen)
    assert joined == "What do apes eat? apples!"
    hh = row_to_pair({"chosen": HH_CHOSEN, "rejected": HH_REJECTED}, 1, "row 1")
    assert [m["role"] for m in hh.prompt] == ["user"] and hh.prompt[0]["content"] == "Hi there"
