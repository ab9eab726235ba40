"""Reward sources for policy training, selected by ``class_path``: a reward model in this process
(:class:`ModelReward`), one served over HTTP (:class:`HTTPReward`), a Python function (:class:`FunctionReward`), or a
weighted sum of any of them (:class:`WeightedRewards`).

Each scores ``(prompt messages, response text)`` pairs. A reward model reads the conversation through its own
tokenizer and chat template (the policy's tokens are decoded to text first), so policy and reward model need not
share a vocabulary.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import time
import urllib.error
import urllib.request

import torch

from bsr_lightning.data.formats import Message
from bsr_lightning.errors import ConfigError, UserError, check
from bsr_lightning.reward.scoring import ConversationScorer, load_reward_model

__all__ = ["FunctionReward", "HTTPReward", "ModelReward", "RewardSource", "WeightedRewards", "prompt_text"]


class RewardServerError(UserError):
    """The reward server cannot be reached or refuses the requests."""


def prompt_text(messages: list[Message]) -> str:
    """The plain text of a prompt's messages, as given to reward functions."""
    return "\n\n".join(m["content"] for m in messages)


class RewardSource:
    """Base class: ``__call__(prompts, responses) -> (N,)`` float32 rewards on CPU; ``to(device)`` places whatever
    it holds (a model is loaded there on first use)."""

    def __call__(self, prompts: list[list[Message]], responses: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def to(self, device) -> RewardSource:
        return self

    def components(self) -> dict[str, torch.Tensor]:
        """The parts of the last scores, ``{name: (N,)}``, logged as ``train/reward/<name>``; none by default."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class FunctionReward(RewardSource):
    """A Python function as a reward source, named by its import path ``module:function``.

    Called as ``fn(prompt, response) -> float`` per sample or, with ``batched``, once per rollout batch as
    ``fn(prompts, responses) -> list[float]``; ``prompt`` is the prompt messages' contents joined by blank lines.

    Args:
        import_path: ``package.module:function``.
        batched: the function scores a whole batch of lists at once.
    """

    def __init__(self, import_path: str, batched: bool = False) -> None:
        self.batched = batched
        module_name, _, name = import_path.partition(":")
        try:
            self._fn = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError, ValueError) as err:
            raise ConfigError(f"Reward function {import_path!r} not found ({err}); give 'module:function' with the "
                             "module importable (on PYTHONPATH or installed).") from err
        self.import_path = import_path

    def __call__(self, prompts: list[list[Message]], responses: list[str]) -> torch.Tensor:
        texts = [prompt_text(p) for p in prompts]
        if not self.batched:
            return torch.tensor([float(self._fn(p, r)) for p, r in zip(texts, responses, strict=True)])
        scores = list(self._fn(texts, responses))
        if len(scores) != len(responses):
            raise ConfigError(f"reward function {self.import_path} returned {len(scores)} scores for {len(responses)} "
                             "responses (batched: one score per response, in order).")
        return torch.tensor([float(s) for s in scores])


class ModelReward(RewardSource):
    """A trained reward model, frozen, scored without gradients; loaded on first use (not when a config is parsed).

    Args:
        path: an exported directory (``export`` / ``ExportOnFitEnd``, tokenizer and chat template included), a hub
            id, or a Lightning ``.ckpt``.
        batch_size: sequences per forward pass.
        max_length: the longest conversation in tokens; longer ones keep their end (``truncate_left``) and are
            counted in ``truncated``.
    """

    def __init__(self, path: str, batch_size: int = 64, max_length: int = 1024) -> None:
        self.path = path
        self.batch_size = batch_size
        self.max_length = max_length
        self._scorer = None
        self._device = torch.device("cpu")

    @property
    def scorer(self):
        """The :class:`~bsr_lightning.reward.scoring.ConversationScorer`, loading the model on first use."""
        if self._scorer is None:
            module = load_reward_model(self.path).requires_grad_(False).to(self._device)
            self._scorer = ConversationScorer(module, self.batch_size, self.max_length, "truncate_left",
                                              progress=False)
        return self._scorer

    def __call__(self, prompts: list[list[Message]], responses: list[str]) -> torch.Tensor:
        conversations = [[*p, {"role": "assistant", "content": r}] for p, r in zip(prompts, responses, strict=True)]
        runs = [len(list(run)) for _, run in itertools.groupby(prompts)]  # a prompt's k completions: one group
        return torch.as_tensor(self.scorer.score(conversations, "reward", groups=runs), dtype=torch.float32)

    @property
    def truncated(self) -> int:
        return self.scorer.counts["truncated"]

    def to(self, device) -> ModelReward:
        self._device = torch.device(device)
        self.scorer.module.to(self._device)
        return self


class HTTPReward(RewardSource):
    """A reward model served over HTTP: ``python -m bsr_lightning serve``, or any server answering ``POST`` with
    ``{"items": [{"messages": [...]}, ...]}`` -> ``{"scores": [...]}``.

    Connection errors, timeouts and 5xx answers are retried ``max_retries`` times, waiting ``backoff`` seconds and
    doubling; then the run stops naming the URL and the last error. A 4xx answer stops at once (retrying cannot fix
    the request).

    Args:
        url: the scoring endpoint, e.g. ``http://127.0.0.1:8000/score``.
        timeout: seconds per request.
        max_retries: retries after a failed attempt.
        backoff: seconds before the first retry.
        token_env: an environment variable holding a bearer token for ``Authorization`` (never logged or saved).
        max_items: conversations per request (larger rollout batches go in several requests).
    """

    def __init__(self, url: str, timeout: float = 60.0, max_retries: int = 3, backoff: float = 1.0,
                 token_env: str | None = None, max_items: int = 1024) -> None:
        check(max_retries >= 0 and backoff >= 0 and timeout > 0 and max_items >= 1, "model.reward.init_args",
              "timeout and max_items must be positive, max_retries and backoff 0 or more.")
        self.url, self.timeout, self.max_retries, self.backoff = url, timeout, max_retries, backoff
        self.token_env, self.max_items = token_env, max_items

    def __call__(self, prompts: list[list[Message]], responses: list[str]) -> torch.Tensor:
        items = [{"messages": [*p, {"role": "assistant", "content": r}]} for p, r in zip(prompts, responses,
                                                                                           strict=True)]
        scores = []
        for start in range(0, len(items), self.max_items):
            scores += self._post(items[start: start + self.max_items])
        return torch.tensor([float("nan") if s is None else float(s) for s in scores])

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token_env is not None:
            token = os.environ.get(self.token_env)
            if not token:
                raise RewardServerError(f"HTTPReward: environment variable {self.token_env} (token_env) is not set.")
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _post(self, items: list[dict]) -> list:
        body, last = json.dumps({"items": items}).encode(), "no attempt"
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    scores = json.loads(response.read())["scores"]
                if len(scores) != len(items):
                    raise RewardServerError(f"{self.url} returned {len(scores)} scores for {len(items)} items.")
                return scores
            except urllib.error.HTTPError as err:
                last = f"HTTP {err.code}: {err.read().decode(errors='replace')[:300]}"
                if err.code < 500:
                    raise RewardServerError(f"reward server {self.url} refused the request ({last}).") from None
            except (urllib.error.URLError, OSError) as err:  # refused connections, timeouts, resets
                last = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
        raise RewardServerError(f"reward server {self.url} failed {self.max_retries + 1} times; last error: {last}. "
                                "Is `python -m bsr_lightning serve` running there?")


class WeightedRewards(RewardSource):
    """A weighted sum of reward sources, e.g. a reward model plus a rule-based function; each part is logged.

    Args:
        sources: the reward sources.
        weights: one per source; 1 each when None.
        names: one per source, for the logs (``train/reward/<name>``); ``<index>_<class>`` when None.
    """

    def __init__(self, sources: list[RewardSource], weights: list[float] | None = None,
                 names: list[str] | None = None) -> None:
        self.sources = list(sources)
        self.weights = list(weights) if weights is not None else [1.0] * len(self.sources)
        self.names = list(names) if names is not None else [f"{i}_{type(s).__name__}" for i, s in
                                                            enumerate(self.sources)]
        check(len(self.weights) == len(self.sources) == len(self.names) > 0, "model.reward.init_args",
              f"{len(self.sources)} sources, {len(self.weights)} weights, {len(self.names)} names: give one each.")
        self._last: dict[str, torch.Tensor] = {}

    def __call__(self, prompts: list[list[Message]], responses: list[str]) -> torch.Tensor:
        self._last = {name: source(prompts, responses).float() for name, source in zip(self.names, self.sources,
                                                                                        strict=True)}
        return sum(w * self._last[n] for n, w in zip(self.names, self.weights, strict=True))

    def components(self) -> dict[str, torch.Tensor]:
        return dict(self._last)

    def to(self, device) -> WeightedRewards:
        for source in self.sources:
            source.to(device)
        return self
