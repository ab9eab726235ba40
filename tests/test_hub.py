"""``export --push_to_hub`` against a hub served on loopback by the test (``HF_ENDPOINT``): the hub itself cannot be
reached from CI. The command runs in a fresh process, as a user runs it, with the token in ``HF_TOKEN``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.files import MANIFEST
from hub_server import FakeHub
from test_cli import checkpoint_of, fit_args

TOKEN = "hf_test_token_never_printed"


def run_export(ckpt: str, out: str, hub_url: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": hub_url, "HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "0",
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    return subprocess.run([sys.executable, "-m", "bsr_lightning", "export", "--ckpt_path", ckpt, "--output_dir", out,
                           *extra], env=env, cwd=Path(out).parent, capture_output=True, text=True, timeout=300)


def test_export_uploads_the_export_and_never_prints_the_token(tiny_bert, synthetic_jsonl, tmp_path):
    from bsr_lightning.cli import cli_main

    cli_main(fit_args(tiny_bert, synthetic_jsonl, tmp_path))
    out = tmp_path / "export"
    with FakeHub() as hub:
        done = run_export(str(checkpoint_of(tmp_path)), str(out), hub.url, "--push_to_hub", "me/my-rm",
                          "--private", "true")
        assert done.returncode == 0, done.stderr[-2000:]
        repo = hub.repos["me/my-rm"]
    local = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert sorted(repo["files"]) == sorted(set(local) - {MANIFEST})  # everything but the local manifest
    assert repo["files"]["README.md"] == (out / "README.md").read_bytes()
    assert repo["files"]["model.safetensors"] == (out / "model.safetensors").read_bytes()
    usage = repo["files"]["README.md"].decode().split("## Usage")[1]
    assert "'me/my-rm'" in usage  # the usage snippet names the repo it was pushed to
    assert repo["private"] and hub.tokens == {TOKEN}
    assert hub.card_metadata["library_name"] == "transformers" and "reward-model" in hub.card_metadata["tags"]
    assert TOKEN not in done.stdout + done.stderr and "me/my-rm" in done.stdout


@pytest.fixture(scope="module")
def checkpoint(tiny_bert, tmp_path_factory) -> str:
    import lightning as L

    ckpt = tmp_path_factory.mktemp("ckpt") / "m.ckpt"
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, max_steps=0)
    trainer.strategy.connect(RewardModel(Backbone(tiny_bert)))
    trainer.save_checkpoint(ckpt)
    return str(ckpt)


def test_a_refused_upload_is_one_message_and_the_export_stays(checkpoint, tmp_path):
    with FakeHub(accepted_tokens=("another_token",)) as hub:
        done = run_export(checkpoint, str(tmp_path / "export"), hub.url, "--push_to_hub", "me/rm")
    assert done.returncode == 2 and "Traceback" not in done.stderr and TOKEN not in done.stderr
    assert "--push_to_hub me/rm: the hub refused the upload" in done.stderr and "401" in done.stderr
    assert (tmp_path / "export" / "README.md").is_file()


def test_a_bad_repo_id_stops_before_the_export(checkpoint, tmp_path):
    done = run_export(checkpoint, str(tmp_path / "export"), "http://127.0.0.1:9", "--push_to_hub", "not/a/repo/id")
    assert done.returncode == 2 and "not a hub repo id" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "export").exists()


def test_a_hub_that_never_answers_or_refuses_is_one_message_in_bounded_time(checkpoint, tmp_path, monkeypatch):
    import socket
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (the backlog) and never answers
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused_port = closed.getsockname()[1]
    closed.close()  # nothing listens: connections are refused
    monkeypatch.setenv("BSR_LIGHTNING_HUB_TIMEOUT", "1")
    for name, url in (("silent", f"http://127.0.0.1:{silent.getsockname()[1]}"),
                      ("refused", f"http://127.0.0.1:{refused_port}")):
        started = time.monotonic()
        done = run_export(checkpoint, str(tmp_path / name), url, "--push_to_hub", "me/rm")
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert "no answer from the hub after 3 attempts" in done.stderr and (tmp_path / name / "README.md").is_file()
        assert time.monotonic() - started < 120  # it waited 320 s and more before
    silent.close()


def test_the_hub_compat_client_keeps_the_default_hooks_and_adds_timeouts():
    from huggingface_hub.utils import _http

    from bsr_lightning.backbones.hub_compat import bounded_client_factory

    client, default = bounded_client_factory(connect=3, read=7)(), _http.default_client_factory()
    assert (client.timeout.connect, client.timeout.read) == (3, 7) and default.timeout.read is None
    assert client.event_hooks == default.event_hooks and client.follow_redirects == default.follow_redirects


def test_a_hub_that_trickles_a_byte_at_a_time_meets_the_total_deadline(checkpoint, tmp_path, monkeypatch):
    """Issue 32, finding 10: a server sending one byte every few seconds never trips a per-read timeout; it kept an
    upload waiting past 200 s. The whole upload has a deadline now."""
    import socket
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        while not stop.is_set():
            try:
                conn.send(b"H")
            except OSError:  # the client gave up
                return
            time.sleep(0.3)

    def accept() -> None:
        while not stop.is_set():
            try:
                threading.Thread(target=drip, args=(server.accept()[0],), daemon=True).start()
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setenv("BSR_LIGHTNING_HUB_TIMEOUT", "2")
    monkeypatch.setenv("BSR_LIGHTNING_HUB_DEADLINE", "4")
    started = time.monotonic()
    done = run_export(checkpoint, str(tmp_path / "out"), f"http://127.0.0.1:{server.getsockname()[1]}",
                      "--push_to_hub", "me/rm")
    stop.set()
    server.close()
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "not done within 4 s (BSR_LIGHTNING_HUB_DEADLINE)" in done.stderr
    assert time.monotonic() - started < 60
