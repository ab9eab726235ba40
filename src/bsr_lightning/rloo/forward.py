"""How the policy's (and the reference's) log-probability passes see a rollout: the cost changes, the log-probs do
not.

* :class:`Padded`: the ``(N, P + L)`` padded batch, every sample with its own copy of the prompt (the default).
* :class:`SharedPrompt`: each prompt once for its ``k`` samples, laid out as ``[prompt | response 1 | ... |
  response k]`` (:mod:`~bsr_lightning.reward.prefix_layout`, the layout of the reward model's ``SharedPrefix``);
  minibatches keep a prompt's samples together. Decoders with ``sdpa``, ``eager`` or ``flex_attention``.

Each returns log-probs ``(n, L)`` of the response tokens at the sampling temperature and, when asked, the entropy
``(n, L)`` of each next-token distribution (no gradient); tests check they are equal to :class:`Padded`'s where the
response mask is 1.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor

from bsr_lightning.backbones.transformers_compat import attention_implementation
from bsr_lightning.errors import ConfigError
from bsr_lightning.reward.forward import MASKS, SHARED_PREFIX_ATTENTION
from bsr_lightning.reward.prefix_layout import allowed, build_rows
from bsr_lightning.rloo.generation import Rollout
from bsr_lightning.rloo.loss import response_logprobs


class PolicyForward:
    """The interface: ``check(attention)`` at start, ``minibatches(n, k, count, device)`` (index tensors of one pass
    over ``n`` rollouts in prompt-major order) and ``__call__(model, rollout, index, temperature, with_entropy)``."""

    def check(self, attention: str) -> None:
        """Stop at start when this pass cannot run with attention implementation ``attention``."""

    def minibatches(self, n: int, k: int, count: int, device) -> tuple[Tensor, ...]:
        """``count`` random minibatches of the rollout indices ``0..n-1``."""
        return torch.randperm(n, device=device).chunk(count)

    def __call__(self, model, rollout: Rollout, index: Tensor, temperature: float, k: int,
                 with_entropy: bool = False) -> tuple[Tensor, Tensor | None]:
        """Log-probs (and entropies) of the rollouts at ``index``; ``k`` samples per prompt, prompt-major."""
        raise NotImplementedError


class Padded(PolicyForward):
    """The padded batch: each sample with its own copy of the prompt."""

    def __call__(self, model, rollout, index, temperature, k, with_entropy=False):
        input_ids, attention_mask, _ = rollout.select(index)
        return response_logprobs(model, input_ids, attention_mask, rollout.prompt_width, temperature, with_entropy)


class SharedPrompt(PolicyForward):
    """Each prompt once for its ``k`` samples: one row ``[prompt | response 1 | ... | response k]`` per prompt, each
    response attending to the prompt and causally to itself, never to another, positions continuing from the
    prompt's end. On HH-length prompts (about 120 tokens) with 64 new tokens and k = 4 it computes 375 positions per
    prompt where the padded pass computes 730. Minibatches are made of whole prompt groups."""

    def check(self, attention: str) -> None:
        if attention not in SHARED_PREFIX_ATTENTION:
            raise ConfigError(f"model.forward_mode SharedPrompt needs attention in {SHARED_PREFIX_ATTENTION}, got "
                              f"{attention!r}: one sample must not see another. Set model.backbone.attention to sdpa, "
                              "or use bsr_lightning.rloo.forward.Padded.")

    def minibatches(self, n, k, count, device):
        groups = torch.randperm(n // k, device=device)
        return tuple((chunk[:, None] * k + torch.arange(k, device=device)).flatten() for chunk in groups.chunk(count))

    def __call__(self, model, rollout, index, temperature, k, with_entropy=False):
        ids, attention_mask, response_mask = rollout.select(index)
        p = rollout.prompt_width
        members: dict[int, list[int]] = defaultdict(list)  # prompt -> its selected rows, in the selection's order
        for row, owner in enumerate((index // k).tolist()):
            members[owner].append(row)
        groups = []
        for rows in members.values():
            prompt = ids[rows[0], :p][attention_mask[rows[0], :p].bool()]
            groups.append(([torch.cat([prompt, ids[r, p:][response_mask[r].bool()]]) for r in rows], len(prompt)))
        layout = build_rows(groups, pad_id=0)  # padding positions are masked and never read
        mask = MASKS.get(attention_implementation(model), allowed)(layout.segments)
        logits = model(input_ids=layout.input_ids, position_ids=layout.position_ids, attention_mask=mask).logits
        where = _response_positions(groups, list(members.values()), layout.input_ids.size(1), response_mask.shape)
        targets = ids[:, p:]
        picked = logits.flatten(0, 1)[where].float()  # (n, L, V): the logits that predict each response token
        if temperature > 0:
            picked = picked / temperature
        logp_all = torch.log_softmax(picked, -1)
        valid = response_mask.bool()
        logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1).masked_fill(~valid, 0.0)
        entropy = None
        if with_entropy:
            with torch.no_grad():
                entropy = (-(logp_all.exp() * logp_all).sum(-1)).masked_fill(~valid, 0.0)
        return logp, entropy


def _response_positions(groups, members: list[list[int]], width: int, shape: torch.Size) -> Tensor:
    """``(n, L)`` flattened layout indices of the logits that predict each response token (the prompt's last
    position for the first, the previous response token's after), in the selection's row order; positions past a
    response's end point at index 0 and are masked."""
    device = groups[0][0][0].device
    where = torch.zeros(shape, dtype=torch.long, device=device)
    for row, ((sequences, p), rows) in enumerate(zip(groups, members, strict=True)):
        start = row * width + p  # the first response's first token
        for sequence, r in zip(sequences, rows, strict=True):
            n = len(sequence) - p
            where[r, :n] = torch.cat([torch.tensor([row * width + p - 1], device=device),
                                      torch.arange(start, start + n - 1, device=device)])
            start += n
    return where
