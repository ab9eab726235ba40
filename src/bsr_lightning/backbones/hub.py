"""Upload an export to the Hugging Face hub with ``huggingface_hub`` (``create_repo`` then ``upload_folder``).

The token is huggingface_hub's own: ``HF_TOKEN`` or the cached ``hf auth login``; it is never printed or logged.
``HF_ENDPOINT`` selects another hub (the tests serve one on loopback).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bsr_lightning.errors import UserError
from bsr_lightning.files import MANIFEST, owned_files


def check_push(repo_id: str) -> None:
    """Before any work: ``repo_id`` must be a valid repo id, the hub reachable (no ``HF_HUB_OFFLINE``) and a token
    present; else a :class:`UserError` saying what to do."""
    from huggingface_hub import constants, get_token
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise UserError(f"--push_to_hub {repo_id!r}: not a hub repo id; use `user/name` or `org/name`.") from None
    if constants.HF_HUB_OFFLINE:
        raise UserError(f"--push_to_hub {repo_id}: HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it.")
    if get_token() is None:
        raise UserError(f"--push_to_hub {repo_id}: no hub token; set HF_TOKEN or run `hf auth login`.")


TIMEOUT_ENV = "BSR_LIGHTNING_HUB_TIMEOUT"  # seconds without a byte before a hub request gives up (default 60)
DEADLINE_ENV = "BSR_LIGHTNING_HUB_DEADLINE"  # seconds for the whole upload (default 600 + 1 s per MB)
ATTEMPTS = 3


def within(seconds: float, work: Callable):
    """``work()``'s result, or ``TimeoutError`` once ``seconds`` pass: a total deadline, which per-read timeouts are
    not (a server sending a byte every few seconds never trips them). The work goes on in a daemon thread that ends
    with the process."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as err:  # re-raised in the caller's thread
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True, name="hub-upload")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"not done within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def push_to_hub(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Create the model repo ``repo_id`` if needed and upload the export in ``folder`` to it; returns the commit URL.

    Exactly the files the export's manifest lists, unchanged since it wrote them, are sent: a user's notes or data
    beside them in the folder never leave the machine.

    Requests time out (10 s to connect, ``BSR_LIGHTNING_HUB_TIMEOUT`` or 60 s without a byte) and a connection or
    timeout failure is retried twice with a pause; then one message says what failed. The whole upload has a
    deadline too (``BSR_LIGHTNING_HUB_DEADLINE``, default 600 s plus one per MB sent). Re-uploading is safe: the
    hub skips files it already has.

    Args:
        folder: the export directory.
        repo_id: ``user/name`` or ``org/name``.
        private: create the repo private (an existing repo keeps its visibility).
    """
    from huggingface_hub import CommitOperationAdd

    check_push(repo_id)
    files = sorted(owned_files(folder, MANIFEST))
    if not files:
        raise UserError(f"--push_to_hub {repo_id}: {folder} holds no export this package wrote (no manifest, or its "
                        "files changed since); export it again first.")
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(Path(folder) / name)) for name in files]
    size = sum((Path(folder) / name).stat().st_size for name in files)
    deadline = float(os.environ.get(DEADLINE_ENV, 600 + size / 1e6))
    try:
        commit = within(deadline, lambda: _upload(folder, repo_id, private, operations))
    except TimeoutError:
        raise UserError(f"--push_to_hub {repo_id}: the upload was not done within {deadline:g} s ({DEADLINE_ENV}); "
                        f"the hub is stalled or slow. The export in {folder} is complete: upload it later with "
                        f"`hf upload {repo_id} {folder}`.") from None
    url = getattr(commit, "commit_url", None) or str(commit)
    print(f"Uploaded {folder} to {repo_id}: {url}")
    return url


def _upload(folder: str | Path, repo_id: str, private: bool, operations: list):
    """Create the repo and commit ``operations``, with per-request timeouts and retries."""
    import httpx2
    from huggingface_hub import HfApi, close_session, set_client_factory
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    from bsr_lightning.backbones.hub_compat import bounded_client_factory

    set_client_factory(bounded_client_factory(read=float(os.environ.get(TIMEOUT_ENV, 60))))
    close_session()  # the next request builds a client with the timeouts
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            api.create_repo(repo_id, private=private or None, exist_ok=True, repo_type="model")
            return api.create_commit(repo_id=repo_id, repo_type="model", operations=operations,
                                     commit_message="Upload a model exported by bsr_lightning")
        except (HfHubHTTPError, OfflineModeIsEnabled) as err:
            reason = str(err).splitlines()[0]
            raise UserError(f"--push_to_hub {repo_id}: the hub refused the upload ({reason}). Check the repo id and "
                            f"that HF_TOKEN (or `hf auth login`) has write access; the export in {folder} is "
                            "complete.") from None
        except httpx2.TransportError as err:  # refused, reset, timed out
            if attempt == ATTEMPTS:
                raise UserError(f"--push_to_hub {repo_id}: no answer from the hub after {ATTEMPTS} attempts "
                                f"({type(err).__name__}: {str(err)[:120] or 'no detail'}); the export in {folder} is "
                                f"complete: upload it later with `hf upload {repo_id} {folder}`.") from None
            time.sleep(2 * attempt)
