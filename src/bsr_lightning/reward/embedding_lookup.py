"""One input-embedding lookup for the several forward passes of a bucketed batch.

A forward mode that runs a batch as several passes (``LengthBuckets``, ``SharedPrefix`` with ``buckets > 1``) looks
the token embeddings up once per pass, so backward builds one dense ``(vocab, H)`` embedding gradient per pass and
adds them up: for MiniLM (vocab 30,522, H 384) with 8 buckets that is 8 memsets and 7 additions of 47 MB per step,
about 4% of a CPU training step (``scripts/profile_rm.py``). :class:`OneLookup` looks up every pass's ids in one call
before the passes and hands each pass its rows through a forward hook on the embedding module, so backward builds
one gradient. The embeddings are the same values (a gather); only the order in which the embedding gradient's rows
are summed changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class OneLookup:
    """Serves precomputed embeddings to the next calls of ``embedding``, one per pass, in order.

    Args:
        embedding: the backbone's input embedding module (``get_input_embeddings()``), called once per forward pass
            with the pass's ``(n, T)`` token ids.
    """

    def __init__(self, embedding: nn.Module) -> None:
        self.embedding = embedding
        self.pending: list[tuple[Tensor, Tensor]] = []  # (ids (n, T), embeddings (n, T, H)) per pass, in order
        embedding.register_forward_hook(self._serve)

    def applies(self, passes: int) -> bool:
        """Whether one lookup saves anything and is safe: several passes, gradients on, and a trained, plain (not
        sharded, not partitioned) ``(vocab, H)`` weight."""
        weight = getattr(self.embedding, "weight", None)
        return (passes > 1 and torch.is_grad_enabled() and type(weight) is nn.Parameter and weight.requires_grad
                and weight.dim() == 2 and weight.numel() > 0)

    @contextmanager
    def batched(self, token_ids: list[Tensor], enabled: bool = True) -> Iterator[None]:
        """While inside, the embedding's calls on ``token_ids[0]``, ``token_ids[1]``, ... (each ``(n, T)``) return
        rows of one lookup of all of them. A no-op when ``enabled`` is false or :meth:`applies` is not."""
        if not (enabled and self.applies(len(token_ids))):
            yield
            return
        flat = self.embedding(torch.cat([ids.flatten() for ids in token_ids]))  # (sum n * T, H)
        parts = flat.split([ids.numel() for ids in token_ids])
        self.pending = [(ids, part.view(*ids.shape, -1)) for ids, part in zip(token_ids, parts, strict=True)]
        try:
            yield
        finally:
            self.pending = []

    def _serve(self, module: nn.Module, args: tuple, output: Tensor) -> Tensor | None:
        if not self.pending:
            return None
        ids, embeddings = self.pending.pop(0)
        if not (args and isinstance(args[0], Tensor) and args[0].shape == ids.shape and torch.equal(args[0], ids)):
            self.pending = []  # a backbone that calls its embeddings differently: keep its own lookups
            return None
        return embeddings
