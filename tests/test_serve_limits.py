"""``serve`` under hostile load (issue 32, findings 11, 13 and 14): a request's failure is its own, sizes are checked
before a request is queued, a slow request gets a 504 within ``--timeout``, and a SIGKILL at start-up leaves no
process behind."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bsr_lightning.serving.protocol import Limits
from bsr_lightning.serving.server import RequestGuard
from bsr_lightning.synthetic_task import generate_preference_rows
from conftest import free_port
from test_serving import items, post, reward_dir, start_server  # noqa: F401  (reward_dir: a fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(reward_dir):  # noqa: F811  (the fixture of test_serving)
    url, process = start_server(reward_dir, "--max_length", "64", "--batch_timeout", "0.5")
    yield url
    process.kill()


def body(items: list) -> bytes:
    return json.dumps({"items": items}).encode()


def test_an_item_that_cannot_be_scored_fails_only_its_own_request(server):
    """Finding 14: ``"</s> " * 200`` under ``--max_length 64`` leaves no room for text; 7 innocent requests batched
    with it (``--batch_timeout 0.5``) used to get a 500."""
    innocent = [body(items(generate_preference_rows(1, seed=i))) for i in range(7)]
    alone = [s for b in innocent for s in post(f"{server}/score", b)[1]["scores"]]
    hostile = body([{"prompt": "hi", "response": "fine"}, {"prompt": "hi", "response": "</s> " * 200}])
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda b: post(f"{server}/score", b), [hostile, *innocent]))
    status, detail = answers[0]
    assert status == 400 and "items[1]: cannot be scored" in detail["detail"]
    assert "written in the text" in detail["detail"]
    assert [a[0] for a in answers[1:]] == [200] * 7
    assert [s for a in answers[1:] for s in a[1]["scores"]] == pytest.approx(alone, abs=1e-5)
    assert len(set(alone)) > 1


def test_oversized_items_are_refused_before_scoring_and_an_innocent_request_is_answered(server):
    """Finding 11: 400k one-word turns (14.6 MB) cost 24 s of worker CPU; three of them delayed an innocent request
    by 68 s. Turns and characters per item are limits now, checked before the request is queued."""
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": "w"} for i in range(400_001)]
    hostile = body([{"messages": turns}])
    hh = body([{"prompt": "\n\nHuman: a\n\nAssistant: b" * 30_000 + "\n\nHuman: q", "response": "x"}])
    long_text = body([{"prompt": "q", "response": "word " * 250_000}])
    innocent = body([{"prompt": "q", "response": "a"}])
    start = time.time()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda b: post(f"{server}/score", b), [hostile, hh, long_text, innocent]))
    assert time.time() - start < 20
    assert [a[0] for a in answers] == [413, 413, 413, 200]
    assert "400001 messages; at most 256" in answers[0][1]["detail"]
    assert "at most 256 per item" in answers[1][1]["detail"]
    assert "1250001 characters; at most 1000000" in answers[2][1]["detail"]


def test_deeply_nested_json_is_a_400_not_a_500(server):
    status, detail = post(f"{server}/score", b'{"items": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert status == 400 and "nested too deep" in detail["detail"]


def test_a_request_not_answered_within_the_timeout_gets_a_504():
    """``--timeout`` holds from a request's arrival to its answer, whatever the app behind does."""
    async def slow_app(scope, receive, send):
        await asyncio.sleep(5)

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": body([{"prompt": "q", "response": "a"}]), "more_body": False}

    guard = RequestGuard(slow_app, limits=Limits(), timeout=0.2)
    start = time.time()
    asyncio.run(guard({"type": "http", "path": "/score", "method": "POST", "headers": []}, receive, send))
    assert time.time() - start < 2
    assert sent[0]["status"] == 504 and b"serve --timeout" in sent[1]["body"]


def _group(pgid: int) -> list[str]:
    """Command lines of the live processes in process group ``pgid``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120])
        except (OSError, ValueError, IndexError):
            pass
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the guardian reads /proc (Linux)")
def test_a_sigkill_as_the_first_worker_starts_leaves_no_process(reward_dir):  # noqa: F811
    """Finding 13: a SIGKILL during start-up left a 369 MB orphan, a worker spawned between two of the guardian's
    polls. Killed the moment a spawned worker appears, the server leaves nothing behind."""
    process = subprocess.Popen([sys.executable, "-m", "bsr_lightning", "serve", "--model", reward_dir, "--port",
                                str(free_port()), "--accelerator", "cpu"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not any("multiprocessing.spawn" in c for c in _group(process.pid)):
        time.sleep(0.01)
    assert process.poll() is None, "the server stopped before it started a worker"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.time() + 30
    while time.time() < deadline and _group(process.pid):
        time.sleep(0.5)
    left = _group(process.pid)
    if left:
        os.killpg(process.pid, signal.SIGKILL)
    assert not left, left
