"""A stand-in for the Hugging Face hub on loopback: just the endpoints ``create_repo`` and ``upload_folder`` call.

It answers every file's pre-upload query with ``regular`` (content inline in the commit, no LFS or Xet storage) and
keeps each commit's files, so a test can check which files arrived and what they hold. Requests without a bearer
token (or with one not in ``accepted_tokens``) are refused with 401, as the hub does.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml


class FakeHub:
    """``with FakeHub() as hub:`` serves on ``hub.url``; ``hub.repos`` maps repo id -> {"private", "files"}."""

    def __init__(self, accepted_tokens: tuple[str, ...] = ()) -> None:
        self.accepted_tokens = set(accepted_tokens)  # empty: any token
        self.repos: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.tokens: set[str] = set()
        self.card_metadata: dict | None = None  # the front matter of the last validated model card
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                hub.requests.append(("GET", self.path))
                match = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/[^/?]+)?", self.path)
                if match and match.group(1) in hub.repos:
                    files = hub.repos[match.group(1)]["files"]
                    self._reply(200, {"id": match.group(1), "sha": "0" * 40, "private": False,
                                      "siblings": [{"rfilename": f} for f in files]})
                else:
                    self._reply(404, {"error": "Repository not found"})

            def _validate(self, card: str) -> None:
                try:
                    meta = yaml.safe_load(card.split("---\n")[1]) if card.startswith("---\n") else {}
                    assert isinstance(meta, dict)
                except (yaml.YAMLError, AssertionError, IndexError) as err:
                    return self._reply(400, {"errors": [{"message": f"invalid YAML front matter: {err}"}]})
                hub.card_metadata = meta
                return self._reply(200, {"errors": [], "warnings": []})

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.requests.append(("POST", self.path))
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                if not token or (hub.accepted_tokens and token not in hub.accepted_tokens):
                    return self._reply(401, {"error": "Invalid credentials in Authorization header"})
                hub.tokens.add(token)
                if self.path == "/api/validate-yaml":  # the model card's front matter must be YAML
                    return self._validate(json.loads(body)["content"])
                if self.path == "/api/repos/create":
                    request = json.loads(body)
                    repo_id = f"{request.get('organization') or 'user'}/{request['name']}"
                    private = bool(request.get("private")) or request.get("visibility") == "private"
                    hub.repos.setdefault(repo_id, {"private": private, "files": {}})
                    return self._reply(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})
                match = re.match(r"^/api/models/([^/]+/[^/]+)/(preupload|commit)/", self.path)
                if not match or match.group(1) not in hub.repos:
                    return self._reply(404, {"error": f"unknown endpoint {self.path}"})
                if match.group(2) == "preupload":
                    files = json.loads(body)["files"]
                    return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                        "shouldIgnore": False} for f in files]})
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        value = item["value"]
                        hub.repos[match.group(1)]["files"][value["path"]] = base64.b64decode(value["content"])
                oid = "1" * 40
                return self._reply(200, {"commitUrl": f"{hub.url}/{match.group(1)}/commit/{oid}", "commitOid": oid,
                                         "commitMessage": "upload", "success": True})

        return Handler
