"""The LitServe API behind ``serve`` (imported only when serving: LitServe is the ``serve`` extra)."""

from __future__ import annotations

import math

import litserve as ls
from fastapi import HTTPException

from bsr_lightning.data.formats import Message
from bsr_lightning.serving.protocol import SCORE_PATH, parse_items


class RewardModelAPI(ls.LitAPI):
    """``POST /score`` over :class:`~bsr_lightning.reward.scoring.ConversationScorer`; concurrent requests arrive
    here as one batch (a list of requests, each a list of conversations), are scored together and split back.

    Args:
        model: an exported directory (or hub id) or a Lightning ``.ckpt``.
        batch_size: sequences per forward pass.
        max_length: the longest conversation in tokens.
        overlong: the over-long policy, as in ``evaluate``.
        max_items: conversations per request at most.
        max_batch_size: requests scored together at most.
        batch_timeout: seconds a request waits for others.
    """

    def __init__(self, model: str, batch_size: int, max_length: int, overlong: str, max_items: int,
                 max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path=SCORE_PATH)
        self.model, self.batch_size, self.max_length, self.overlong = model, batch_size, max_length, overlong
        self.max_items = max_items

    def setup(self, device) -> None:
        from bsr_lightning.reward.scoring import ConversationScorer, load_reward_model

        module = load_reward_model(self.model).to(device)
        self.scorer = ConversationScorer(module, self.batch_size, self.max_length, self.overlong, progress=False)

    def decode_request(self, request) -> list[list[Message]]:
        try:
            return parse_items(request, self.max_items)
        except OverflowError as err:
            raise HTTPException(status_code=413, detail=str(err)) from None
        except ValueError as err:
            raise HTTPException(status_code=400, detail=str(err)) from None

    def batch(self, inputs: list[list[list[Message]]]) -> list[list[list[Message]]]:
        return inputs  # requests stay separate lists; predict flattens them

    def predict(self, x):
        """Scores of one request (``max_batch_size`` 1) or of a batch of requests, split back per request."""
        batched = self.max_batch_size > 1
        requests = x if batched else [x]
        flat = [conversation for request in requests for conversation in request]
        scores = [None if math.isnan(s) else float(s) for s in self.scorer.score(flat, "serve")] if flat else []
        out, start = [], 0
        for request in requests:
            out.append(scores[start: start + len(request)])
            start += len(request)
        return out if batched else out[0]

    def unbatch(self, output: list) -> list:
        return output

    def encode_response(self, scores: list[float | None]) -> dict:
        return {"scores": scores}
