"""Rollouts: sample ``k`` completions per prompt and keep what the update needs. Generation backends are classes
selected by ``class_path`` (``generation`` of :class:`~bsr_lightning.RLOOPolicy`); all read the same
:class:`~bsr_lightning.args.Sampling`.

Shapes: ``B`` prompts, ``N = B * k`` rollouts, ``P`` prompt width (left padded), ``L`` response width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bsr_lightning.args import Sampling
from bsr_lightning.data.formats import Message


@dataclass
class Rollout:
    """``k`` sampled completions for each prompt of a batch, in prompt-major order."""

    prompts: list[list[Message]]  # N prompts (each repeated k times)
    input_ids: Tensor  # (N, P + L) prompt then response
    attention_mask: Tensor  # (N, P + L); 0 on padding and on tokens after the first EOS
    response_mask: Tensor  # (N, L); 1 on response tokens up to and including the first EOS
    prompt_width: int  # P
    responses: list[str]  # N decoded responses, special tokens removed
    has_eos: Tensor  # (N,) bool: the response ended with EOS within max_new_tokens

    @property
    def response_ids(self) -> Tensor:
        """``(N, L)``."""
        return self.input_ids[:, self.prompt_width :]

    @property
    def lengths(self) -> Tensor:
        """``(N,)`` response lengths in tokens, EOS included."""
        return self.response_mask.sum(-1)

    def select(self, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``input_ids``, ``attention_mask`` and ``response_mask`` of the rollouts at ``index``."""
        return self.input_ids[index], self.attention_mask[index], self.response_mask[index]


def response_mask_of(response_ids: Tensor, eos_ids: list[int]) -> tuple[Tensor, Tensor]:
    """``(N, L)`` mask of the tokens up to and including the first EOS, and ``(N,)`` whether an EOS came."""
    is_eos = torch.isin(response_ids, torch.tensor(eos_ids, device=response_ids.device))
    before_or_at_first_eos = (is_eos.long().cumsum(-1) - is_eos.long()) == 0
    return before_or_at_first_eos.long(), is_eos.any(-1)


def build_rollout(tokenizer, batch: dict, k: int, eos_ids: list[int], prompt_ids: Tensor, prompt_mask: Tensor,
                  response_ids: Tensor) -> Rollout:
    """A :class:`Rollout` from ``(N, P)`` prompts and ``(N, L)`` generated ids: tokens after the first EOS become
    padding, responses are decoded without special tokens."""
    response_mask, has_eos = response_mask_of(response_ids, eos_ids)
    response_ids = response_ids.masked_fill(response_mask == 0, tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
    prompts = [p for p in batch["prompts"] for _ in range(k)]
    return Rollout(prompts, torch.cat([prompt_ids, response_ids], 1), torch.cat([prompt_mask, response_mask], 1),
                   response_mask, prompt_ids.size(1), [t.strip() for t in texts], has_eos)


class Generator:
    """A generation backend: ``__call__(model, tokenizer, batch, sampling, eos_ids) -> Rollout`` for a batch of
    left-padded prompts (``input_ids``/``attention_mask`` ``(B, P)``, ``prompts``)."""

    def __call__(self, model, tokenizer, batch: dict, sampling: Sampling, eos_ids: list[int]) -> Rollout:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class HFGenerate(Generator):
    """``transformers``' ``generate`` on the policy itself, with the KV cache; ``temperature == 0`` decodes
    greedily."""

    @torch.no_grad()
    def __call__(self, model, tokenizer, batch: dict, sampling: Sampling, eos_ids: list[int]) -> Rollout:
        input_ids = batch["input_ids"].repeat_interleave(sampling.k, 0)  # (N, P)
        prompt_mask = batch["attention_mask"].repeat_interleave(sampling.k, 0)
        options = {"do_sample": False}
        if sampling.temperature > 0:
            options = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}
        was_training = model.training
        model.eval()
        out = model.generate(input_ids=input_ids, attention_mask=prompt_mask, max_new_tokens=sampling.max_new_tokens,
                             eos_token_id=eos_ids, pad_token_id=tokenizer.pad_token_id, use_cache=True, **options)
        model.train(was_training)
        return build_rollout(tokenizer, batch, sampling.k, eos_ids, input_ids, prompt_mask, out[:, input_ids.size(1):])
