"""A local HTTP server that speaks the Hugging Face Hub's file protocol, for tests and benchmarks.

It serves ``HEAD``/``GET /{org}/{name}/resolve/{revision}/{file}`` with the headers the
real client reads (``X-Repo-Commit``, ``ETag``, ``Content-Length``) and answers errors
the way the Hub does, with an ``X-Error-Code`` header: 401 ``GatedRepo`` without the
token, 404 ``RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound``. A repo can be
made slow, to exercise ``HF_HUB_ETAG_TIMEOUT``. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


@dataclass
class Repo:
    files: dict[str, bytes]
    """File name → content at the repo's one commit."""
    commit: str
    revisions: tuple[str, ...] = ("main",)
    gated_token: str | None = None
    """When set, the repo is gated: requests without ``Authorization: Bearer <token>`` get 401 GatedRepo."""
    delay_s: float = 0.0


def commit_of(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def add(self, repo_id: str, config: bytes, **options: object) -> Repo:
        repo = Repo(files={"config.json": config}, commit=commit_of(repo_id + config.decode()), **options)  # type: ignore[arg-type]
        self.repos[repo_id] = repo
        return repo


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
            body = message.encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        def _serve(self) -> None:
            hub.requests.append((self.command, self.path))
            parts = unquote(self.path.split("?", 1)[0]).strip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                self._error(404, "RepoNotFound", "Repository not found")
                return
            repo_id, revision, filename = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return
            if repo.delay_s:
                time.sleep(repo.delay_s)
            if repo.gated_token and self.headers.get("Authorization") != f"Bearer {repo.gated_token}":
                self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted. You must have access to it.")
                return
            if revision not in repo.revisions and revision != repo.commit:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return
            content = repo.files.get(filename)
            if content is None:
                self._error(404, "EntryNotFound", f"{filename} does not exist", commit=repo.commit)
                return
            self.send_response(200)
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("ETag", '"' + hashlib.sha1(content).hexdigest() + '"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(content)

        do_HEAD = _serve
        do_GET = _serve

    return Handler


@contextmanager
def serve(hub: FakeHub) -> Iterator[FakeHub]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
