"""RewardBench's BOS (issue 34, item 2): ``--format rewardbench`` and ``rewardbench2`` tokenize as RewardBench's
pipeline does, ``tokenizer(text)`` with its special tokens and a doubled BOS taken once, checked against the wheel's
``RewardBenchPipeline`` run unchanged on the same texts; ``pairs``, ``multi`` and training keep the authors'
tokenization (a template's text as it is)."""

import types

import pytest
import torch
from tokenizers import processors

from bsr_lightning.backbones.tokenizers import load_tokenizer
from bsr_lightning.chat_templates import ZEPHYR_CHAT_TEMPLATE
from bsr_lightning.data.encoding import PairEncoder, render
from upstream import function

CONVERSATIONS = [[{"role": "user", "content": "How do I start chess?"}, {"role": "assistant", "content": answer}]
                 for answer in ("Learn the moves.", "no", "Play a lot, then read about openings.")]
BOS_TEMPLATE = "{{ bos_token }}" + ZEPHYR_CHAT_TEMPLATE  # a template that writes its own BOS


def adds_bos(path: str, template: str):
    """The tiny tokenizer with ``template`` and a post-processor that adds BOS, as Llama's does."""
    tok = load_tokenizer(path, chat_template=template)
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.bos_token_id)])
    return tok


def rewardbench_ids(tok, texts: list[str]) -> list[list[int]]:
    """The tokens RewardBench's pipeline attends to for ``texts``: its own ``RewardBenchPipeline.__call__`` with a
    model that records its inputs (and no CUDA)."""
    disable = function("rewardbench/models/pipeline.py", "disable_dropout_in_model", {"torch": torch})
    pipeline_class = function("rewardbench/models/pipeline.py", "RewardBenchPipeline",
                              {"torch": torch, "disable_dropout_in_model": disable})

    class OnCpu:
        bos_token, bos_token_id = tok.bos_token, tok.bos_token_id

        def __call__(self, *args, **kwargs):
            encoded = tok(*args, **kwargs)
            encoded.to = lambda device: encoded
            return encoded

    class Recorder(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            self.seen = input_ids, attention_mask
            return types.SimpleNamespace(logits=torch.zeros(len(input_ids), 1))

    model = Recorder()
    pipeline_class("text-classification", model, OnCpu())(texts, batch_size=8, max_length=2048)
    ids, mask = model.seen
    return [row[m.bool()].tolist() for row, m in zip(ids, mask, strict=True)]


@pytest.mark.parametrize("template", [ZEPHYR_CHAT_TEMPLATE, BOS_TEMPLATE], ids=["zephyr-no-bos", "writes-bos"])
def test_rewardbench_tokenization_equals_the_pipelines(tiny_llama, template):
    tok = adds_bos(tiny_llama, template)
    texts = [render(tok, c) for c in CONVERSATIONS]
    ours, _, _ = PairEncoder(tok, 2048, "truncate_right", special_tokens="rewardbench").encode_sequences(
        CONVERSATIONS, "rb")
    expected = rewardbench_ids(tok, texts)
    assert ours == expected
    assert all(seq[0] == tok.bos_token_id and seq[1] != tok.bos_token_id for seq in ours)  # one BOS, never two


def test_the_authors_tokenization_stays_for_pairs_and_training(tiny_llama):
    tok = adds_bos(tiny_llama, ZEPHYR_CHAT_TEMPLATE)
    ours, _, _ = PairEncoder(tok, 2048, "truncate_right").encode_sequences(CONVERSATIONS, "pairs")
    assert all(seq[0] != tok.bos_token_id for seq in ours)  # zephyr writes no BOS and none is added, as theirs
