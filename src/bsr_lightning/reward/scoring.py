"""Score conversations with a trained reward model (an exported directory or a Lightning checkpoint): used by RLOO's
reward sources and by evaluation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from tqdm.auto import tqdm

from bsr_lightning.args import Backbone, DType
from bsr_lightning.data.collate import pad_sequences
from bsr_lightning.data.encoding import Overlong, PairEncoder, SpecialTokens
from bsr_lightning.data.formats import Message
from bsr_lightning.errors import UserError
from bsr_lightning.reward.forward import SHARED_PREFIX_ATTENTION, group_forward
from bsr_lightning.reward.module import RewardModel
from bsr_lightning.reward.prefix_layout import make_group
from bsr_lightning.training.checkpoints import checkpoint_class, load_module_from_checkpoint, read_checkpoint


def load_reward_model(model: str, dtype: DType | None = None, allow_modules: list[str] | None = None) -> RewardModel:
    """A :class:`~bsr_lightning.RewardModel` in eval mode from an exported Hugging Face directory (or hub id) or a
    Lightning ``.ckpt``; ``dtype`` (``bfloat16``, ``float16``, ``float32``) casts its weights, None keeps them.
    ``allow_modules``: modules of the user's that a checkpoint may name (else only bsr_lightning's classes)."""
    if model.endswith(".ckpt"):
        check_reward_checkpoint(model, allow_modules)
        module = load_module_from_checkpoint(model, allow_modules=allow_modules)
        return module.to(getattr(torch, dtype)) if dtype else module
    module = RewardModel(Backbone(name=model, dtype=dtype)).eval()
    if getattr(module.backbone, "fresh_score_head", False):
        raise UserError(f"model {model}: it has no trained score head (transformers initialized a random one), so "
                        "its scores would mean nothing and change from run to run. Give a reward model: an export of "
                        "fit, a .ckpt, or a sequence-classification model with one label.")
    return module


def check_reward_checkpoint(ckpt_path: str, allow_modules: list[str] | None = None) -> None:
    """Stop with a :class:`UserError` unless ``ckpt_path`` is a readable checkpoint of a :class:`RewardModel`; reads
    only its hyper-parameters (the tensors are memory-mapped), so a server can check before it starts workers."""
    cls, _ = checkpoint_class(read_checkpoint(ckpt_path, mmap=True), ckpt_path, allow_modules)
    if not issubclass(cls, RewardModel):
        raise UserError(f"checkpoint {ckpt_path} holds a {cls.__name__}, not a RewardModel; give a reward model's "
                        "checkpoint or export.")


class ConversationScorer:
    """Score many conversations in length-sorted batches under ``inference_mode``; results in input order.

    Args:
        module: a RewardModel (``score`` and ``tokenizer``).
        batch_size: sequences per forward pass.
        max_length: the longest sequence in tokens.
        overlong: the over-long policy; with ``drop`` the dropped sequences score NaN and are counted.
        progress: show a progress bar.
        shared_prefix: score the groups :meth:`score_each` is given with their prompt computed once, where the model
            can; False scores every conversation alone.
        special_tokens: ``template`` or ``rewardbench`` tokenization (:class:`~bsr_lightning.data.encoding.
            PairEncoder`).
    """

    def __init__(self, module, batch_size: int = 16, max_length: int = 512, overlong: Overlong = "truncate_left",
                 progress: bool = True, shared_prefix: bool = True, special_tokens: SpecialTokens = "template"):
        self.module = module
        self.progress = progress
        self.batch_size = batch_size
        self.encoder = PairEncoder(module.tokenizer, max_length, overlong, special_tokens=special_tokens)
        self.counts: Counter = Counter()
        self.shared_prefix = shared_prefix

    def score(self, conversations: list[list[Message]], desc: str = "scoring",
              groups: list[int] | None = None) -> np.ndarray:
        """``(N,)`` float scores of ``conversations`` (see :meth:`score_with_hidden`)."""
        return self.score_with_hidden(conversations, desc, keep_hidden=False, groups=groups)[0]

    def score_with_hidden(self, conversations: list[list[Message]], desc: str = "scoring",
                          keep_hidden: bool = True, groups: list[int] | None = None
                          ) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores ``(N,)`` and, with ``keep_hidden``, the head-input hidden states ``(N, H)`` (NaN where dropped);
        a conversation that cannot be scored is a :class:`UserError` naming it (:meth:`score_each` gives each its
        own problem instead); ``groups`` as in :meth:`score_each`."""
        scores, hidden, problems = self.score_each(conversations, desc, keep_hidden, groups)
        if problems:
            index, problem = next(iter(problems.items()))
            raise UserError(f"{desc}: conversation {index} cannot be scored: {problem}.")
        return scores, hidden

    def score_each(self, conversations: list[list[Message]], desc: str = "scoring", keep_hidden: bool = False,
                   groups: list[int] | None = None) -> tuple[np.ndarray, np.ndarray | None, dict[int, str]]:
        """Scores ``(N,)`` (NaN where dropped or unscorable), with ``keep_hidden`` the head-input hidden states
        ``(N, H)``, and ``{index: problem}`` of the conversations that cannot be scored; the others are scored as
        if those were not there.

        ``groups``: sizes of consecutive runs of ``conversations`` that share a prompt (a row's responses). Where the
        model can (:attr:`groups_share_prefix`), each run goes through the backbone once with its shared prompt
        computed once (:func:`~bsr_lightning.reward.forward.group_forward`); the scores equal scoring each alone."""
        ids, counts, problems = self.encoder.encode_sequences(conversations, desc)
        self.counts.update(counts)
        scores, hidden = np.full(len(ids), np.nan), None
        grouped = groups is not None and self.groups_share_prefix
        batches = self._batches(ids, groups if grouped else [1] * len(ids))
        device = next(self.module.parameters()).device
        with torch.inference_mode():
            for batch in tqdm(batches, desc=desc, unit="batch", disable=not self.progress):
                rewards, states = (self._grouped if grouped else self._padded)(batch, ids, device)
                chunk = [i for group in batch for i in group]
                scores[chunk] = rewards.float().cpu().numpy()
                if keep_hidden:
                    hidden = np.full((len(ids), states.shape[-1]), np.nan) if hidden is None else hidden
                    hidden[chunk] = states.float().cpu().numpy()
        return scores, hidden, problems

    @property
    def groups_share_prefix(self) -> bool:
        """Whether groups are scored with their prompt computed once: asked for (``shared_prefix``), and a causal
        decoder with an attention implementation that takes the group layout's mask."""
        return self.shared_prefix and getattr(self.module, "pooling", None) == "last" and \
            getattr(self.module, "attention", None) in SHARED_PREFIX_ATTENTION

    def _batches(self, ids: list, sizes: list[int]) -> list[list[list[int]]]:
        """Groups of ``sizes`` consecutive conversations (their scorable members; groups of one when each is scored
        alone) sorted by total length, in batches of at most ``batch_size`` sequences (a larger group is a batch of
        its own)."""
        bounds = np.cumsum([0, *sizes])
        groups = [[i for i in range(a, b) if ids[i] is not None] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        groups = sorted((g for g in groups if g), key=lambda g: sum(len(ids[i]) for i in g))
        batches: list[list[list[int]]] = []
        for group in groups:
            if batches and sum(map(len, batches[-1])) + len(group) <= self.batch_size:
                batches[-1].append(group)
            else:
                batches.append([group])
        return batches

    def _padded(self, batch: list[list[int]], ids: list, device) -> tuple[torch.Tensor, torch.Tensor]:
        pad_id, side = self.module.tokenizer.pad_token_id, self.module.tokenizer.padding_side
        input_ids, mask = pad_sequences([np.asarray(ids[i]) for group in batch for i in group], pad_id, side)
        return self.module(input_ids.to(device), mask.to(device))

    def _grouped(self, batch: list[list[int]], ids: list, device) -> tuple[torch.Tensor, torch.Tensor]:
        groups = [make_group([torch.as_tensor(ids[i], device=device) for i in group]) for group in batch]
        return group_forward(self.module, groups)
