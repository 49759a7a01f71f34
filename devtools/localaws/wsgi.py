"""The emulator's HTTP/1.1 request handler: moto's WSGI app behind werkzeug's server, with keep-alive.

werkzeug's development handler closes every connection (`Connection: close`), so every AWS call of
every Lambda paid a TCP connect, an accept and a new server thread, and it formats an access-log
line per request even when nothing logs it. Measured on this project's load that was over half of
the server's CPU per request (py-spy: log_request 24 %, thread start and accept ~17 % of a HeadObject).

This handler keeps connections open when both sides can frame the next request: the request body
has a Content-Length (a chunked request body closes the connection after its response) and the
response is buffered, so it always has a Content-Length. What is left of a request body the app did
not read is discarded before the next request line is read. Everything else (request parsing, the
environ moto expects, header names with underscores) is MotoRequestHandler's.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from moto.moto_server.werkzeug_app import MotoRequestHandler

log = logging.getLogger("werkzeug")

MAX_DRAIN = 64 * 1024 * 1024  # unread request body we discard to keep a connection; more closes it
_NO_BODY = {204, 304}


class _Body:
    """wsgi.input for a request with a Content-Length: never reads past the body, and knows how much
    of it is left (so a kept-alive connection starts the next request at its request line)."""

    def __init__(self, rfile: Any, length: int) -> None:
        self._rfile = rfile
        self.left = length

    def read(self, size: int | None = -1) -> bytes:
        return self._take(self._rfile.read, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._take(self._rfile.readline, size)

    def _take(self, reader: Any, size: int | None) -> bytes:
        if self.left <= 0:
            return b""
        data = reader(self.left if size is None or size < 0 else min(size, self.left))
        self.left = self.left - len(data) if data else 0
        return bytes(data)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


class KeepAliveHandler(MotoRequestHandler):
    # A response (or a 100 Continue) must not wait for the ACK of the previous one: with keep-alive,
    # Nagle's algorithm plus the client's delayed ACK cost 40 ms per request with a body.
    disable_nagle_algorithm = True
    _date: tuple[int, str] = (0, "")

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.environ = self.make_environ()
        body: _Body | None = None
        if not environ.get("wsgi.input_terminated"):  # werkzeug dechunks a chunked body itself
            try:
                length = max(0, int(environ.get("CONTENT_LENGTH") or 0))
            except ValueError:
                length = -1
            if length >= 0:
                body = environ["wsgi.input"] = _Body(self.rfile, length)
        status: list[Any] = []

        def start_response(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if exc_info and status:
                raise exc_info[1].with_traceback(exc_info[2])
            status[:] = [code, headers]
            return lambda data: chunks.append(data)

        chunks: list[bytes] = []
        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except (TimeoutError, ConnectionError):
            self.close_connection = True
            return
        except Exception:
            log.exception("Error on request %s %s", self.command, self.path)
            status[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]]
            chunks = [b"Internal Server Error"]
            body = None  # we cannot know where the next request starts
        code_text, headers = status
        code_str, _, reason = code_text.partition(" ")
        code = int(code_str)
        payload = b"".join(chunks)
        names = {k.lower() for k, _ in headers}
        if "content-length" not in names and self.command != "HEAD" and code not in _NO_BODY and code >= 200:
            headers = [*headers, ("Content-Length", str(len(payload)))]
        keep = body is not None and not self.close_connection
        self.send_response(code, reason)
        for k, v in headers:
            self.send_header(k, v)
        if not keep:
            self.send_header("Connection", "close")  # sets close_connection
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD" and code not in _NO_BODY:
            self._headers_buffer.append(payload)
        try:
            self.flush_headers()  # status line, headers and body in one write
        except (TimeoutError, ConnectionError):
            self.close_connection = True
            return
        if keep and body is not None and body.left:
            if body.left > MAX_DRAIN:
                self.close_connection = True
            else:
                while body.read(1024 * 1024):
                    pass

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if log.isEnabledFor(logging.INFO):  # formatting the line costs more than most requests
            super().log_request(code, size)

    def date_time_string(self, timestamp: float | None = None) -> str:
        if timestamp is not None:
            return super().date_time_string(timestamp)
        now = int(time.time())
        cached = KeepAliveHandler._date
        if cached[0] != now:
            cached = KeepAliveHandler._date = (now, super().date_time_string(now))
        return cached[1]


def dispatcher(create_app: Any) -> Any:
    """moto's DomainDispatcherApplication, remembering which backend serves which host: moto matches
    every request's host against ~200 URL patterns and lists its own package directory (a stat per
    service) twice per request, for an answer that never changes."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    class Dispatcher(DomainDispatcherApplication):
        _backends: dict[str | None, Any]

        def get_backend_for_host(self, host: str | None) -> Any:
            try:
                return self._backends[host]
            except KeyError:
                backend = self._backends[host] = super().get_backend_for_host(host)
                return backend

    app = Dispatcher(create_app)
    app._backends = {}
    return app
