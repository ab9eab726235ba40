"""The LitServe API behind ``serve`` (imported only when serving: LitServe is the ``serve`` extra)."""

from __future__ import annotations

import math

import litserve as ls
from fastapi.responses import JSONResponse

from bsr_lightning.data.formats import Message
from bsr_lightning.serving.protocol import SCORE_PATH, Limits, Rejected, parse_items


class RewardModelAPI(ls.LitAPI):
    """``POST /score`` over :class:`~bsr_lightning.reward.scoring.ConversationScorer`; concurrent requests arrive
    here as one batch (a list of requests, each a list of conversations), are scored together and split back. A
    request that fails (a malformed body, an item that cannot be scored) gets its own error; its batch-mates are
    scored as if it were not there.

    Args:
        model: an exported directory (or hub id) or a Lightning ``.ckpt``.
        batch_size: sequences per forward pass.
        max_length: the longest conversation in tokens.
        overlong: the over-long policy, as in ``evaluate``.
        limits: what one request may hold.
        max_batch_size: requests scored together at most.
        batch_timeout: seconds a request waits for others.
    """

    def __init__(self, model: str, batch_size: int, max_length: int, overlong: str, limits: Limits,
                 max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path=SCORE_PATH)
        self.model, self.batch_size, self.max_length, self.overlong = model, batch_size, max_length, overlong
        self.limits = limits

    def setup(self, device) -> None:
        from bsr_lightning.reward.scoring import ConversationScorer, load_reward_model

        module = load_reward_model(self.model).to(device)
        self.scorer = ConversationScorer(module, self.batch_size, self.max_length, self.overlong, progress=False)

    def decode_request(self, request) -> list[list[Message]] | Rejected:
        """The request's conversations, or its own error (raising here would fail the whole batch)."""
        try:
            return parse_items(request, self.limits)
        except OverflowError as err:
            return Rejected(413, str(err))
        except ValueError as err:
            return Rejected(400, str(err))

    def batch(self, inputs: list) -> list:
        return inputs  # requests stay separate lists; predict flattens them

    def predict(self, x):
        """Scores of one request (``max_batch_size`` 1) or of a batch of requests, split back per request; a
        request with an item that cannot be scored gets a 400 naming the item."""
        batched = self.max_batch_size > 1
        requests = x if batched else [x]
        live = [r for r in requests if not isinstance(r, Rejected)]
        flat = [conversation for request in live for conversation in request]
        scores, _, problems = self.scorer.score_each(flat, "serve") if flat else ([], None, {})
        out, start = [], 0
        for request in requests:
            if isinstance(request, Rejected):
                out.append(request)
                continue
            bad = next((i for i in range(start, start + len(request)) if i in problems), None)
            out.append([None if math.isnan(s) else float(s) for s in scores[start: start + len(request)]]
                       if bad is None else Rejected(400, f"items[{bad - start}]: cannot be scored: {problems[bad]}"))
            start += len(request)
        return out if batched else out[0]

    def unbatch(self, output: list) -> list:
        return output

    def encode_response(self, output):
        """``{"scores": [...]}``, or the request's own error as a ``JSONResponse`` (no return annotation: LitServe
        would make it the route's response model)."""
        if isinstance(output, Rejected):
            return JSONResponse({"detail": output.detail}, status_code=output.status)
        return {"scores": output}
