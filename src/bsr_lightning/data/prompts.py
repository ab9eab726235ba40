"""``PromptDataModule`` (RLOO prompts) and ``SFTDataModule`` (prompt + response, loss on the response only)."""

from __future__ import annotations

import torch

from bsr_lightning.data.chat import ChatDataModule, ChatExample
from bsr_lightning.data.collate import pad_sequences

IGNORE_INDEX = -100


class PromptDataModule(ChatDataModule):
    """Prompts for policy training, chat template and generation prompt applied, left padded for ``generate``.

    Reads a ``prompt`` column (string, HH transcript or messages), the prompt part of preference rows
    (``chosen``/``rejected``), or a ``messages`` column. ``max_length`` bounds the prompt. Batches hold
    ``input_ids`` and ``attention_mask`` ``(B, P)``, ``row_ids`` ``(B,)`` and ``prompts`` (B lists of messages).
    Takes the arguments of :class:`~bsr_lightning.data.chat.ChatDataModule`.
    """

    def collate(self, examples: list[ChatExample]) -> dict:
        input_ids, attention_mask = pad_sequences([e.input_ids for e in examples], self.tokenizer.pad_token_id, "left")
        return {"input_ids": input_ids, "attention_mask": attention_mask, "prompts": [e.prompt for e in examples],
                "row_ids": torch.tensor([e.row_id for e in examples])}


class SFTDataModule(ChatDataModule):
    """(prompt, response) examples for supervised fine-tuning: preference rows (prompt + chosen), ``messages``
    (the last message is the response) or ``prompt`` + ``response``/``completion`` columns.

    Batches hold ``input_ids``, ``attention_mask`` and ``labels`` ``(B, T)``, right padded; ``labels`` is
    ``-100`` on prompt and padding tokens, so the loss covers response tokens (and the closing EOS) only.
    Takes the arguments of :class:`~bsr_lightning.data.chat.ChatDataModule`.
    """

    with_response = True

    def collate(self, examples: list[ChatExample]) -> dict:
        pad_id = self.tokenizer.pad_token_id
        input_ids, attention_mask = pad_sequences([e.input_ids for e in examples], pad_id, "right")
        labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
        for i, example in enumerate(examples):
            labels[i, : example.prompt_length] = IGNORE_INDEX
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
                "row_ids": torch.tensor([e.row_id for e in examples])}
