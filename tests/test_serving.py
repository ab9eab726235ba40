"""``serve`` on loopback: scores equal ``evaluate``'s, concurrent clients get their own, bad requests get 4xx and the
server keeps serving, SIGTERM stops it; ``HTTPReward`` retries and fails clearly; RLOO through it matches in-process."""

import csv
import http.server
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import lightning as L
import pytest
import torch

from bsr_lightning import Backbone, Optimization, RewardModel, RLOOPolicy, Sampling, SyntheticPromptDataModule
from bsr_lightning.backbones.export import export_module
from bsr_lightning.cli import cli_main
from bsr_lightning.rloo.rewards import FunctionReward, HTTPReward, ModelReward, RewardServerError, WeightedRewards
from bsr_lightning.synthetic_task import generate_preference_rows
from conftest import free_port, wait_until_healthy, write_jsonl


def post(url: str, body: bytes, timeout: float = 60.0) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def items(rows: list[dict]) -> list[dict]:
    return [{"prompt": r["prompt"], "response": r[side]} for r in rows for side in ("chosen", "rejected")]


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory) -> str:
    torch.manual_seed(0)
    return str(export_module(RewardModel(Backbone("tiny:synthetic"), score_init="normal"),
                             tmp_path_factory.mktemp("rm") / "export"))


def start_server(model: str, *options: str) -> tuple[str, subprocess.Popen]:
    """``serve --model model`` on a free loopback port with ``options``, once healthy: its URL and process."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bsr_lightning", "serve", "--model", model, "--port", str(port),
                                "--accelerator", "cpu", *options],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(url, process)
    return url, process


@pytest.fixture(scope="module")
def server(reward_dir):
    url, process = start_server(reward_dir, "--max_items", "64", "--batch_size", "8")
    yield url, process
    if process.poll() is None:
        process.kill()


def test_scores_equal_evaluate_on_the_same_file(server, reward_dir, tmp_path):
    url, _ = server
    rows = generate_preference_rows(10, seed=4)
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    cli_main(["evaluate", "--model", reward_dir, "--data", data, "--output_dir", str(tmp_path / "eval"),
              "--max_length", "1024", "--overlong", "truncate_left"])
    expected = [s for line in open(tmp_path / "eval" / "scores.jsonl") for s in
                (json.loads(line)["chosen"], json.loads(line)["rejected"])]
    status, body = post(f"{url}/score", json.dumps({"items": items(rows)}).encode())
    assert status == 200 and body["scores"] == pytest.approx(expected, abs=1e-5)


def test_concurrent_clients_get_their_own_scores_in_order(server):
    url, _ = server
    requests = [items(generate_preference_rows(3, seed=s)) for s in range(16)]
    alone = [post(f"{url}/score", json.dumps({"items": r}).encode())[1]["scores"] for r in requests]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda r: post(f"{url}/score", json.dumps({"items": r}).encode())[1]["scores"],
                                 requests))
    assert all(a == pytest.approx(t, abs=1e-5) for a, t in zip(alone, together, strict=True))


def test_bad_requests_get_4xx_and_the_server_keeps_serving(server):
    url, _ = server
    assert post(f"{url}/score", b"not json")[0] == 400
    status, body = post(f"{url}/score", json.dumps({"items": [{"prompt": "x"}]}).encode())
    assert status == 400 and "needs 'prompt' and 'response'" in body["detail"]
    status, body = post(f"{url}/score", json.dumps({"items": [{"prompt": "a", "response": "b"}] * 65}).encode())
    assert status == 413 and "at most 64" in body["detail"]
    wrong_order = [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "q"},
                   {"role": "assistant", "content": "a"}]
    status, body = post(f"{url}/score", json.dumps({"items": [{"messages": wrong_order}]}).encode())
    assert status == 400 and "turns must alternate user -> assistant" in body["detail"]  # as evaluate and fit
    assert post(f"{url}/score", json.dumps({"items": [{"prompt": "a", "response": "b"}]}).encode())[0] == 200


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Fails the first ``failures`` POSTs with 503, then scores every item 1.5."""

    failures, calls = 2, 0

    def do_POST(self):  # noqa: N802
        type(self).calls += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ok = type(self).calls > type(self).failures
        payload = json.dumps({"scores": [1.5] * len(body["items"])} if ok else {"detail": "busy"}).encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_http_reward_retries_then_stops_with_a_clear_error(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/score"
    monkeypatch.setenv("RM_TOKEN", "secret-token")
    reward = HTTPReward(url, max_retries=3, backoff=0.01, token_env="RM_TOKEN")
    prompts = [[{"role": "user", "content": "hi"}]] * 2
    assert reward(prompts, ["a", "b"]).tolist() == [1.5, 1.5] and FlakyHandler.calls == 3
    assert "secret-token" not in repr(reward)
    server.shutdown()
    server.server_close()
    down = HTTPReward(url, max_retries=2, backoff=0.01)
    with pytest.raises(RewardServerError, match=rf"reward server {url} failed 3 times; last error: .*Connection"):
        down(prompts, ["a", "b"])


def test_weighted_rewards_sum_and_expose_their_parts():
    combined = WeightedRewards([FunctionReward("reward_fns:length_words"),
                                FunctionReward("reward_fns:count_practice_batch", batched=True)], [0.5, 2.0],
                               ["length", "practice"])
    prompts = [[{"role": "user", "content": "q"}]] * 2
    total = combined(prompts, ["Practice Practice now", "no"])
    assert total.tolist() == [0.5 * 3 + 2.0 * 2, 0.5 * 1 + 0.0]
    assert {k: v.tolist() for k, v in combined.components().items()} == {"length": [3.0, 1.0], "practice": [2.0, 0.0]}


def rloo_rewards(tmp_path, reward) -> list[float]:
    L.seed_everything(0)
    module = RLOOPolicy(Backbone("tiny:synthetic"), reward, sampling=Sampling(k=2, max_new_tokens=8),
                        optimization=Optimization(lr=3e-3, schedule="constant", max_grad_norm=1.0),
                        samples_every_n_steps=0)
    trainer = L.Trainer(max_steps=3, default_root_dir=tmp_path, logger=L.pytorch.loggers.CSVLogger(tmp_path),
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=1, limit_val_batches=0)
    trainer.fit(module, SyntheticPromptDataModule(batch_size=4, num_val_prompts=4))
    path = next(tmp_path.glob("lightning_logs/version_*/metrics.csv"))
    return [float(r["train/proxy_reward"]) for r in csv.DictReader(open(path)) if r.get("train/proxy_reward")]


def test_rloo_through_the_server_matches_in_process_scoring(server, reward_dir, tmp_path):
    url, _ = server
    remote = rloo_rewards(tmp_path / "http", HTTPReward(f"{url}/score"))
    local = rloo_rewards(tmp_path / "local", ModelReward(reward_dir, batch_size=64, max_length=1024))
    assert len(remote) == 3 and remote == pytest.approx(local, abs=1e-4)


def test_sigterm_stops_the_server_and_its_workers(server):
    url, process = server
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    output = process.stdout.read()  # returns only once every worker holding the pipe has exited too
    assert "on http://127.0.0.1:" in output and "Server stopped." in output  # loopback unless asked otherwise
    assert "Traceback" not in output and "KeyboardInterrupt" not in output and "leaked semaphore" not in output, output
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/health", timeout=2)


def test_killing_the_server_outright_ends_its_workers_and_frees_the_port(reward_dir):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bsr_lightning", "serve", "--model", reward_dir, "--port",
                                str(port), "--accelerator", "cpu"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/health"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    time.sleep(1.5)  # the guardian has seen every worker
    process.kill()  # SIGKILL: no handler of the server runs
    process.wait(timeout=30)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            time.sleep(0.5)
        except OSError:
            break
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)  # nothing answers: the orphaned workers are gone


def test_free_ports_are_distinct_and_bindable():
    ports = [free_port() for _ in range(3)]
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
