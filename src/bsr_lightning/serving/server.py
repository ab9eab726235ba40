"""``python -m bsr_lightning serve --model DIR``: a trained reward model over HTTP, with LitServe.

``POST /score`` takes ``{"items": [{"prompt": str, "response": str} | {"messages": [{role, content}, ...]}, ...]}``
and returns ``{"scores": [float, ...]}`` in the same order: the scores ``evaluate`` gives for the same texts with the
same ``max_length`` and ``overlong`` policy (a conversation dropped as over-long scores ``null``). Requests arriving
together are batched (``max_batch_size`` requests, waiting at most ``batch_timeout`` seconds); a request holds at most
``max_items`` items, ``max_messages`` messages and ``max_chars`` characters per item and ``max_payload_bytes`` bytes
(413 beyond, checked before it is queued), and a malformed one gets a 400 with the reason. A request's failure is its
own: its batch-mates are scored as if it were not there. A request unanswered after ``timeout`` seconds gets a 504.
``GET /health`` answers ``ok`` once the model is loaded. The server binds to 127.0.0.1 unless ``host`` says
otherwise, and SIGTERM stops it gracefully (uvicorn finishes the requests in flight).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import sys

from bsr_lightning.backbones.names import resolve_model_path
from bsr_lightning.data.encoding import Overlong
from bsr_lightning.errors import check, require
from bsr_lightning.serving.guardian import start_guardian
from bsr_lightning.serving.protocol import SCORE_PATH, Limits, parse_items


def serve(model: str, host: str = "127.0.0.1", port: int = 8000, batch_size: int = 8, max_length: int = 1024,
          overlong: Overlong = "truncate_left", max_items: int = 1024, max_messages: int = 256,
          max_chars: int = 1_000_000, max_payload_bytes: int = 16_000_000, max_batch_size: int = 8,
          batch_timeout: float = 0.01, accelerator: str = "auto", timeout: float = 60.0) -> None:
    """Serve a reward model over HTTP (``POST /score``, ``GET /health``).

    Args:
        model: an exported directory (or hub id) or a Lightning ``.ckpt``.
        host: the interface to bind: 127.0.0.1 (this machine only) unless you ask for 0.0.0.0 or ``::`` (all).
        port: the TCP port.
        batch_size: sequences per forward pass; a batch of requests is sorted by length and cut into forward passes
            of this size, so a small one wastes less on padding (``docs/benchmarks.md``: 8 beat 32 on CPU).
        max_length: the longest conversation in tokens.
        overlong: ``truncate_left``, ``truncate_right`` or ``drop`` (dropped ones score null), as in ``evaluate``.
        max_items: conversations per request at most (413 beyond).
        max_messages: messages (turns) per conversation at most (413 beyond).
        max_chars: characters per conversation at most, all its messages together (413 beyond).
        max_payload_bytes: request body size at most (413 beyond).
        max_batch_size: requests scored together at most.
        batch_timeout: seconds a request waits for others to batch with.
        accelerator: ``cpu``, ``cuda`` or ``auto``.
        timeout: seconds a request may take, from its arrival to its scores (504 beyond).
    """
    for key, value, least in (("batch_size", batch_size, 1), ("max_items", max_items, 1), ("max_length", max_length, 2),
                              ("max_messages", max_messages, 2), ("max_chars", max_chars, 1),
                              ("max_batch_size", max_batch_size, 1), ("max_payload_bytes", max_payload_bytes, 1)):
        check(value >= least, key, f"must be at least {least}, got {value}.")
    check(1 <= port <= 65535, "port", f"must be in 1..65535, got {port}.")
    check(timeout > 0, "timeout", f"must be positive (seconds), got {timeout}.")
    check(batch_timeout >= 0, "batch_timeout", f"must be 0 or more (seconds), got {batch_timeout}.")
    if model.endswith(".ckpt"):  # a garbage or non-reward checkpoint: one message here, not a traceback per worker
        from bsr_lightning.reward.scoring import check_reward_checkpoint

        check_reward_checkpoint(model)
    else:
        resolve_model_path(model)  # a missing folder, or a hub id with the hub offline: one message, before workers
    require("litserve", "serve")
    import litserve as ls

    from bsr_lightning.serving.api import RewardModelAPI

    limits = Limits(max_items, max_messages, max_chars)
    api = RewardModelAPI(model, batch_size, max_length, overlong, limits, max_batch_size, batch_timeout)
    guard = (RequestGuard, {"path": SCORE_PATH, "max_bytes": max_payload_bytes, "limits": limits, "timeout": timeout})
    # LitServe's queues leave a semaphore for multiprocessing's resource tracker to unlink at exit, which it does
    # with a warning; the tracker is a separate process started with this interpreter's -W options
    if "ignore:resource_tracker:UserWarning" not in sys.warnoptions:
        sys.warnoptions.append("ignore:resource_tracker:UserWarning")
    start_guardian()  # if this process is killed outright, at any moment, the guardian ends what it started
    logging.getLogger("litserve.server").addFilter(_ManagerGoneAtShutdown())
    server = ls.LitServer(api, accelerator=accelerator, devices=1, timeout=timeout, middlewares=[guard])
    # LitServe shuts its workers down on KeyboardInterrupt only
    signal.signal(signal.SIGTERM, functools.partial(_interrupt, os.getpid()))
    print(f"Serving {model} on http://{host}:{port}{SCORE_PATH}", flush=True)
    server.run(host=host, port=port, generate_client_file=False, log_level="warning")
    print("Server stopped.", flush=True)


class _ManagerGoneAtShutdown(logging.Filter):
    """Drop LitServe's "Monitoring worker crashed" when the crash is its monitor thread finding the multiprocessing
    manager already shut down (a race in LitServe's own shutdown; the server stops cleanly). Any other crash of the
    monitor is still logged."""

    GONE = (BrokenPipeError, ConnectionResetError, EOFError, FileNotFoundError)

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (str(record.msg).startswith("Monitoring worker crashed") and isinstance(error, self.GONE))


def _interrupt(serving_pid: int, signum, frame) -> None:
    """SIGTERM in the serving process: stop as on Ctrl-C (LitServe then stops its workers). Forked workers inherit
    this handler; one that receives SIGTERM (uvicorn re-raises it as it stops) exits quietly instead."""
    if os.getpid() != serving_pid:
        sys.exit(0)
    raise KeyboardInterrupt


class RequestGuard:
    """ASGI middleware in front of ``POST /score``. Before LitServe sees a request (it answers 500 to all of these,
    and fails a malformed request's batch-mates with it): a body over ``max_bytes`` gets 413, one that is not JSON or
    not a valid request 400, one over ``limits`` 413. A JSON body sent without a JSON content type is accepted. A
    request not answered within ``timeout`` seconds gets 504.

    Args:
        app: the ASGI app it wraps.
        path: the route it guards.
        max_bytes: the largest body accepted.
        limits: what one request may hold.
        timeout: seconds from a request's arrival to its answer.
    """

    def __init__(self, app, path: str = SCORE_PATH, max_bytes: int = 16_000_000, limits: Limits = Limits(),
                 timeout: float = 60.0) -> None:
        self.app, self.path, self.max_bytes, self.limits, self.timeout = app, path, max_bytes, limits, timeout

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await _reply(send, 413, f"request body over {self.max_bytes} bytes; split the request")
        if (refusal := self._refusal(body)) is not None:
            return await _reply(send, *refusal)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
        scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        sent, started = False, False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def watched(message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, replay, watched), self.timeout)
        except TimeoutError:
            if not started:
                await _reply(send, 504, f"no scores within {self.timeout} s (serve --timeout); try again later")

    def _refusal(self, body: bytes) -> tuple[int, str] | None:
        """``(status, reason)`` for a body that is not a valid request within the limits, else None."""
        try:
            parse_items(json.loads(body), self.limits)
        except RecursionError:
            return 400, "the body is nested too deep"
        except OverflowError as err:
            return 413, str(err)
        except ValueError as err:
            return 400, f'the body must be JSON {{"items": [...]}} ({err})'
        return None


async def _reply(send, status: int, detail: str) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
