"""A small threaded HTTPS server with routing, fault injection and a request log."""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ._tokens import AccessClaims

log = logging.getLogger("jupyter_amlflow.sandbox")


@dataclass
class Request:
    """One parsed request, as a route handler sees it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    # The query as sent (``query`` keeps only the last value of a repeated name); a proxy needs it.
    query_string: str = ""
    claims: AccessClaims | None = None
    endpoint: str = ""
    base_url: str = ""
    # Who the request acted for, for the log: set by authentication, or by the token endpoint
    # for the identity it issued a token to.
    identity: str | None = None
    identity_name: str | None = None
    token_id: str | None = None
    tenant: str | None = None
    # What the sandbox's evidence says about this call: "served", "refused" or "unverified"
    # (``fidelity``). The route sets a default; the MLflow dispatch decides per call.
    fidelity: str = ""

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON (``{}`` when empty); raises ``HttpError`` 400 when malformed."""
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HttpError(400, {"error": {"code": "InvalidRequestContent", "message": str(exc)}}) from exc

    def form(self) -> dict[str, str]:
        """The body as ``application/x-www-form-urlencoded`` fields."""
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}


@dataclass
class Response:
    """What a handler returns."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        """A JSON response."""
        return cls(status, json.dumps(value).encode(), {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        """An HTML page."""
        return cls(status, text.encode(), {"Content-Type": "text/html; charset=utf-8"})


class HttpError(Exception):
    """Raised by handlers to answer with an error body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.response = Response.json(body, status, headers)


Handler = Callable[[Request], Response]


@dataclass
class Route:
    """A method and path pattern bound to a handler, under an endpoint name used by faults and logs."""

    method: str
    pattern: re.Pattern[str]
    endpoint: str
    handler: Handler
    auth: bool = False
    fidelity: str = "served"
    key: bool = False  # needs the sandbox's access key (``_access``)


@dataclass
class Fault:
    """A fault injected on an endpoint; applies to the next ``times`` matching requests (all if None)."""

    endpoint: str
    latency: float = 0.0
    status: int | None = None
    retry_after: float | None = None
    drop: bool = False
    stall: float | None = None
    times: int | None = None
    identity: str | None = None
    hits: int = 0

    def matches(self, endpoint: str, identity: str | None) -> bool:
        """Whether this fault applies to a request (identity is checked after authentication)."""
        if self.times is not None and self.hits >= self.times:
            return False
        if self.endpoint not in ("*", endpoint):
            return False
        return self.identity is None or self.identity == identity


@dataclass(frozen=True)
class RequestRecord:
    """One line of the request log. Holds no secret: no query string, no body, no header value."""

    time: float
    method: str
    path: str
    endpoint: str
    status: int
    identity: str | None
    identity_name: str | None
    token_id: str | None
    tenant: str | None
    duration: float
    port: int = 0
    # "served" (Azure is known to answer so), "refused" (answered as Azure refuses it) or
    # "unverified" (forwarded without evidence); see ``fidelity``.
    fidelity: str = ""


class Faults:
    """The faults on a running sandbox."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        """Add a fault; returns it so the caller can read ``hits`` or remove it."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        """Remove one fault."""
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def take(self, endpoint: str, identity: str | None, *, pre_auth: bool) -> list[Fault]:
        """The faults that apply now, counting a hit on each."""
        taken = []
        with self._lock:
            for f in self._faults:
                if (f.identity is not None) == pre_auth:
                    continue
                if f.matches(endpoint, identity):
                    f.hits += 1
                    taken.append(f)
        return taken


class DroppedConnection(Exception):
    """Raised inside a handler to close the connection without answering."""


class SandboxHTTPServer(ThreadingHTTPServer):
    """One listener. Routes, faults and the request log are shared by the sandbox's listeners."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        routes: list[Route],
        faults: Faults,
        record: Callable[[RequestRecord], None],
        authenticate: Callable[[Request, Route], None],
        stopping: threading.Event,
        tls: ssl.SSLContext | None,
        port: int = 0,
    ) -> None:
        self.routes = routes
        self.faults = faults
        self.record = record
        self.authenticate = authenticate
        self.stopping = stopping
        self.tls = tls
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def port(self) -> int:
        """The port the listener is bound to."""
        return self.server_address[1]

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:PORT`` (or ``http://`` for a plain listener)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:
            # The handshake happens in the worker thread (do_handshake_on_connect), not here,
            # so one slow client cannot hold up the accept loop.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._open_lock:
            self._open.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        """Close every connection still open (keep-alive ones included)."""
        with self._open_lock:
            open_socks = list(self._open)
            self._open.clear()
        for sock in open_socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-request is normal here (timeouts, dropped-connection faults).
        log.debug("connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: SandboxHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "jupyter-amlflow-sandbox"
    sys_version = ""
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client's delayed ACK
    # stalls every answer by ~40 ms.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)
            try:
                self.request.do_handshake()
            except (OSError, ssl.SSLError):
                self.close_connection = True
                raise
            self.request.settimeout(None)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The stdlib logs the whole request line; its query string may carry a SAS signature.
        path = urlsplit(self.path).path if hasattr(self, "path") else "-"
        log.debug('%s "%s %s" %s', self.address_string(), getattr(self, "command", "-"), path, code)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        started = time.monotonic()
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        body = self._read_body()
        req = Request(
            method=self.command,
            path=split.path,
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            base_url=self.server.base_url,
            query_string=split.query,
        )
        route = self._route(req)
        req.endpoint = route.endpoint if route else "unknown"
        # A path the sandbox does not know may still exist on Azure.
        req.fidelity = route.fidelity if route else "unverified"
        recorded = False
        try:
            response = self._respond(req, route)
            # Logged before the client can read the answer, so whoever reads the log right after a
            # call sees that call.
            self._record(req, response.status, started)
            recorded = True
            self._send(response)
        except DroppedConnection:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        finally:
            if not recorded:
                self._record(req, 0, started)

    def _record(self, req: Request, status: int, started: float) -> None:
        self.server.record(
            RequestRecord(
                time=time.time(),
                method=req.method,
                path=req.path,
                endpoint=req.endpoint,
                status=status,
                identity=req.identity,
                identity_name=req.identity_name,
                token_id=req.token_id,
                tenant=req.tenant,
                duration=time.monotonic() - started,
                port=self.server.port,
                fidelity=req.fidelity,
            )
        )

    def _route(self, req: Request) -> Route | None:
        for route in self.server.routes:
            if route.method not in (req.method, "*"):
                continue
            match = route.pattern.fullmatch(req.path)
            if match:
                req.params.update({k: v for k, v in match.groupdict().items() if v is not None})
                return route
        return None

    def _apply_faults(self, faults: list[Fault]) -> Response | None:
        for fault in faults:
            if fault.latency:
                self.server.stopping.wait(fault.latency)
        for fault in faults:
            if fault.stall is not None:
                self.server.stopping.wait(fault.stall)
                raise DroppedConnection
            if fault.drop:
                raise DroppedConnection
            if fault.status is not None:
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = f"{fault.retry_after:g}"
                code = HTTPStatus(fault.status).phrase.replace(" ", "")
                return Response.json(
                    {"error": {"code": code, "message": f"Injected fault: {fault.status} {code}."}},
                    fault.status,
                    headers,
                )
        return None

    def _respond(self, req: Request, route: Route | None) -> Response:
        injected = self._apply_faults(self.server.faults.take(req.endpoint, None, pre_auth=True))
        if injected is not None:
            return injected
        if route is None:
            return Response.json(
                {"error": {"code": "NotFound", "message": f"The sandbox serves no {req.method} {req.path}."}},
                404,
            )
        try:
            self.server.authenticate(req, route)
            if req.identity is not None:
                injected = self._apply_faults(self.server.faults.take(req.endpoint, req.identity, pre_auth=False))
                if injected is not None:
                    return injected
            return route.handler(req)
        except HttpError as err:
            return err.response
        except DroppedConnection:
            raise
        except Exception:  # a bug in the sandbox must reach the client as a 500, and the log
            log.exception("sandbox handler %s failed", route.endpoint)
            return Response.json({"error": {"code": "InternalServerError", "message": "sandbox error"}}, 500)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        headers = {"Content-Length": str(len(response.body)), **response.headers}
        headers.setdefault("x-ms-request-id", f"{time.time_ns():x}")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)


def route(
    method: str,
    pattern: str,
    endpoint: str,
    handler: Handler,
    *,
    auth: bool = False,
    fidelity: str = "served",
    key: bool = False,
) -> Route:
    """Build a route; ``pattern`` is a regex matched against the whole path (case-insensitive).

    With ``auth``, the request must carry a valid bearer token before the handler runs; with
    ``key``, the sandbox's access key (``_access``). ``fidelity`` is what the request log says
    about its calls unless the handler decides.
    """
    return Route(method, re.compile(pattern, re.IGNORECASE), endpoint, handler, auth, fidelity, key)


def serve_in_thread(server: SandboxHTTPServer, name: str) -> threading.Thread:
    """Run ``serve_forever`` in a daemon thread."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True)
    thread.start()
    return thread


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a child server to take)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
