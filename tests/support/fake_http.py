"""A real HTTP server on loopback for provider tests, with a route table and fault injection.

Tests describe a provider's API as handlers and drive runctl's real provider
module against it over TCP. Faults (status codes, delays, truncated bodies,
dropped connections, lost responses) are queued per route::

    server = FakeHttpServer()
    server.route("GET", "/v1/things/{id}", lambda req: Reply.json({"id": req.path_params["id"]}))
    server.fail("GET", "/v1/things/{id}", Fault.status(503))   # next matching request only
    with server:
        ... server.url ...

``Fault.lose_response()`` runs the handler (the side effect happens) and then
drops the connection without answering: the "created but the answer was lost" case.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import attrs


@attrs.define
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    path_params: dict[str, str] = attrs.field(factory=dict)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@attrs.define
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = attrs.field(factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def text(cls, text: str, status: int = 200) -> Reply:
        return cls(status, text.encode(), {"Content-Type": "text/plain"})


@attrs.define
class Fault:
    kind: str
    status: int = 0
    delay: float = 0.0
    headers: dict[str, str] = attrs.field(factory=dict)
    body: bytes = b""

    @classmethod
    def http(cls, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Fault:
        raw = json.dumps(body).encode() if body is not None else b""
        return cls("status", status=status, headers=headers or {}, body=raw)

    @classmethod
    def sleep(cls, seconds: float) -> Fault:
        """Answer normally, but only after ``seconds`` (a client timeout fires first)."""
        return cls("delay", delay=seconds)

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection before the handler runs (nothing happened server-side)."""
        return cls("reset")

    @classmethod
    def lose_response(cls) -> Fault:
        """Run the handler (side effects happen), then close without answering."""
        return cls("lose")

    @classmethod
    def truncate(cls) -> Fault:
        """Run the handler and send only half of its body."""
        return cls("truncate")


Handler = Callable[[Request], Reply]


class FakeHttpServer:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._faults: dict[tuple[str, str], deque[Fault]] = {}
        self._any_faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: how often the serving thread checks for stop() (``serve_forever``'s poll interval)
        self.poll_interval = 0.5

    # --- routing --------------------------------------------------------------------------------
    def route(self, method: str, template: str, handler: Handler) -> None:
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
        self._routes.append((method.upper(), re.compile(f"^{pattern}$"), handler))

    def fail(self, method: str, template: str, *faults: Fault) -> None:
        """Queue faults for the next requests matching ``method`` and ``template``."""
        with self._lock:
            self._faults.setdefault((method.upper(), template), deque()).extend(faults)

    def fail_next(self, *faults: Fault) -> None:
        """Queue faults for the next requests, whatever they are (before any route's faults)."""
        with self._lock:
            self._any_faults.extend(faults)

    def _next_fault(self, method: str, template: str | None) -> Fault | None:
        with self._lock:
            if self._any_faults:
                return self._any_faults.popleft()
            queue = self._faults.get((method, template)) if template else None
            return queue.popleft() if queue else None

    def _match(self, method: str, path: str) -> tuple[Handler, dict[str, str], str] | None:
        for m, pattern, handler in self._routes:
            if m == method:
                found = pattern.match(path)
                if found:
                    return handler, found.groupdict(), pattern.pattern
        return None

    def _template_of(self, method: str, path: str) -> str | None:
        for key in list(self._faults):
            if key[0] != method:
                continue
            pattern = re.sub(r"\{(\w+)\}", r"[^/]+", key[1])
            if re.match(f"^{pattern}$", path):
                return key[1]
        return None

    # --- lifecycle ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHttpServer:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle holds the
            # body until the client's delayed ACK (about 40 ms per keep-alive request).
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                fake._dispatch(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.serve_forever(self.poll_interval), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- dispatch -------------------------------------------------------------------------------
    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        request = Request(
            method=h.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in h.headers.items()},
            body=body,
        )
        with self._lock:
            self.requests.append(request)
        template = self._template_of(h.command, parts.path)
        fault = self._next_fault(h.command, template)
        if fault and fault.kind == "reset":
            h.close_connection = True
            h.connection.close()
            return
        if fault and fault.kind == "status":
            self._send(h, Reply(fault.status, fault.body, {"Content-Type": "application/json", **fault.headers}))
            return
        if fault and fault.kind == "delay":
            time.sleep(fault.delay)
        matched = self._match(h.command, parts.path)
        if matched is None:
            self._send(h, Reply.json({"error": f"no route {h.command} {parts.path}"}, 404))
            return
        handler, params, _ = matched
        request.path_params = params
        try:
            reply = handler(request)
        except Exception as e:  # a bug in a test handler: make it visible
            reply = Reply.json({"error": f"fake handler crashed: {e!r}"}, 599)
        if fault and fault.kind == "lose":
            h.close_connection = True
            h.connection.close()
            return
        if fault and fault.kind == "truncate":
            h.send_response(reply.status)
            for k, v in reply.headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(reply.body)))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(reply.body[: len(reply.body) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.close()
            return
        self._send(h, reply)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, reply: Reply) -> None:
        h.send_response(reply.status)
        for k, v in reply.headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(reply.body)))
        h.end_headers()
        if reply.body:
            h.wfile.write(reply.body)


_Fake = TypeVar("_Fake", bound="FakeApi")


class FakeApi:
    """Base for one provider's fake API: its routes on a :class:`FakeHttpServer`.

    A subclass registers its handlers with :meth:`route`; a test may replace one
    with :meth:`override`. Used as a context manager, it runs the server::

        with FakeRunPod() as fake:
            ... fake.url ...
    """

    #: The API's base path (``url`` ends with it; routes are registered with it).
    prefix = ""

    def __init__(self) -> None:
        self.server = FakeHttpServer()
        self._overrides: dict[tuple[str, str], Handler] = {}

    def route(self, method: str, template: str, handler: Handler) -> None:
        """Answer ``method`` on ``template`` (below ``prefix``) with ``handler``."""
        key = (method, self.prefix + template)

        def dispatch(request: Request) -> Reply:
            return self._overrides.get(key, handler)(request)

        self.server.route(method, self.prefix + template, dispatch)

    def override(self, method: str, template: str, handler: Handler) -> None:
        """Answer ``method template`` (the full path) with ``handler`` from now on."""
        self._overrides[(method, template)] = handler

    @property
    def url(self) -> str:
        """The API root to configure the provider with."""
        return self.server.url + self.prefix

    def __enter__(self: _Fake) -> _Fake:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
