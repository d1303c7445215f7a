"""A local HTTP server that answers the Hub's file routes for a few repos.

It serves HEAD and GET on /{owner}/{repo}/resolve/{revision}/{file} with the headers
huggingface-hub reads (ETag, X-Repo-Commit, Content-Length), honours Range requests, and can
be told to cut a download half way, so the real download code runs against it through
HF_ENDPOINT.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.servers import QuietHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
# a model repo, or a dataset repo under /datasets/ (held in `repos` as "datasets/OWNER/REPO")
_ROUTE = re.compile(r"^/(?P<repo>(?:datasets/)?[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


@dataclass
class HubState:
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    gated: set[str] = field(default_factory=set)
    cut_next_get_at: int | None = None  # cut the next full GET after this many bytes
    fail_range_gets: bool = False  # answer 503 to Range GETs (the "server went away" case)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)


def _handler(state: HubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            return

        def _error(self, status: int, code: str) -> None:
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _lookup(self) -> bytes | None:
            match = _ROUTE.match(self.path.split("?", 1)[0])
            if not match:
                self._error(404, "RepoNotFound")
                return None
            repo, name = match.group("repo"), match.group("file")
            if repo in state.gated:
                self._error(401, "GatedRepo")
                return None
            if repo not in state.repos:
                self._error(404, "RepoNotFound")
                return None
            if name not in state.repos[repo]:
                self._error(404, "EntryNotFound")
                return None
            return state.repos[repo][name]

        def _headers(self, data: bytes, length: int, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")

        def do_HEAD(self) -> None:
            state.requests.append(("HEAD", self.path, None))
            data = self._lookup()
            if data is None:
                return
            self._headers(data, len(data))
            self.end_headers()

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            state.requests.append(("GET", self.path, rng))
            data = self._lookup()
            if data is None:
                return
            start = 0
            if rng:
                if state.fail_range_gets:
                    self._error(503, "Unavailable")
                    return
                start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                self._headers(data, len(data) - start, status=206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self._headers(data, len(data))
            self.end_headers()
            body = data[start:]
            cut = state.cut_next_get_at
            if cut is not None and not rng:
                state.cut_next_get_at = None
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

    return Handler


class FakeHub:
    def __init__(self) -> None:
        self.state = HubState()
        self.server = QuietHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeHub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
