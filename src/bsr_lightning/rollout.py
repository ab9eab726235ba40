"""Rollouts for policy training: sample ``k`` completions per prompt with ``generate`` (KV cache, left padding) and
compute response-token log-probabilities.

Shapes: ``B`` prompts, ``N = B * k`` rollouts, ``P`` prompt width (left padded), ``L`` response width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bsr_lightning.data.formats import Message
from bsr_lightning.models import position_ids_of


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


@torch.no_grad()
def sample(model, tokenizer, batch: dict, k: int, eos_ids: list[int], max_new_tokens: int, temperature: float,
           top_p: float) -> Rollout:
    """Generate ``k`` completions per prompt of ``batch`` (``input_ids``/``attention_mask`` ``(B, P)`` left padded,
    ``prompts``). ``temperature == 0`` decodes greedily."""
    input_ids = batch["input_ids"].repeat_interleave(k, 0)  # (N, P)
    prompt_mask = batch["attention_mask"].repeat_interleave(k, 0)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 else {
        "do_sample": False}
    was_training = model.training
    model.eval()
    out = model.generate(input_ids=input_ids, attention_mask=prompt_mask, max_new_tokens=max_new_tokens,
                         eos_token_id=eos_ids, pad_token_id=tokenizer.pad_token_id, use_cache=True, **sampling)
    model.train(was_training)
    width = input_ids.size(1)
    response_ids = out[:, width:]  # (N, L)
    response_mask, has_eos = response_mask_of(response_ids, eos_ids)
    response_ids = response_ids.masked_fill(response_mask == 0, tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
    prompts = [p for p in batch["prompts"] for _ in range(k)]
    return Rollout(prompts, torch.cat([input_ids, response_ids], 1), torch.cat([prompt_mask, response_mask], 1),
                   response_mask, width, [t.strip() for t in texts], has_eos)


def response_logprobs(model, input_ids: Tensor, attention_mask: Tensor, prompt_width: int, temperature: float,
                      with_entropy: bool = False) -> tuple[Tensor, Tensor | None]:
    """Log-probabilities ``(N, L)`` of the response tokens under ``model`` at the sampling temperature, and with
    ``with_entropy`` the entropy ``(N, L)`` of each next-token distribution (no gradient)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask,
                   position_ids=position_ids_of(attention_mask)).logits
    logits = logits[:, prompt_width - 1 : -1].float()  # (N, L, V): position t predicts token t + 1
    if temperature > 0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(-1, input_ids[:, prompt_width:].unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy
