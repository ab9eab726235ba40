"""``PromptDataModule`` (RLOO prompts) and ``SFTDataModule`` (prompt + response, loss on the response only)."""

from __future__ import annotations

import random

import torch

from bsr_lightning.data.chat import ChatDataModule, ChatExample
from bsr_lightning.data.collate import pad_sequences
from bsr_lightning.data.synthetic import PROMPTS, TOPICS, generate_preference_rows

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


class SyntheticPromptDataModule(PromptDataModule):
    """Prompts of the generated task (:mod:`bsr_lightning.data.synthetic`), whose gold reward is computable.

    The ``len(TOPICS) * len(PROMPTS)`` distinct prompts are shuffled with ``seed``; the last ``num_val_prompts``
    are held out for validation.

    Args:
        num_val_prompts: held-out prompts.
        **kwargs: the rest of :class:`PromptDataModule`'s arguments (``path`` is ignored).
    """

    def __init__(self, num_val_prompts: int = 16, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_val_prompts = num_val_prompts

    def read_rows(self, stage: str):
        prompts = [p.format(t=t) for t in TOPICS for p in PROMPTS]
        random.Random(self.hparams.seed).shuffle(prompts)
        cut = len(prompts) - self.num_val_prompts
        chosen = prompts[:cut] if stage == "train" else prompts[cut:]
        return [(f"synthetic[{stage}] row {i}", {"prompt": p}) for i, p in enumerate(chosen)]


class SyntheticSFTDataModule(SFTDataModule):
    """SFT examples of the generated task: each prompt with its pair's chosen (higher gold) response.

    Args:
        num_examples: training examples (and ``num_examples // 10`` validation ones, from another seed).
        **kwargs: the rest of :class:`SFTDataModule`'s arguments (``path`` is ignored).
    """

    def __init__(self, num_examples: int = 2000, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_examples = num_examples

    def read_rows(self, stage: str):
        count, seed = (self.num_examples, self.hparams.seed) if stage == "train" else (
            max(1, self.num_examples // 10), self.hparams.seed + 100_003)
        rows = generate_preference_rows(count, seed)
        return [(f"synthetic[{stage}] row {i}", {"prompt": r["prompt"], "response": r["chosen"]})
                for i, r in enumerate(rows)]
