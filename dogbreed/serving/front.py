"""The local endpoint's front door: a small HTTP/1.1 server on ``--port`` in front of TorchServe.

TorchServe's inference port answers more than a SageMaker endpoint should (``/predictions/<model>``, the OpenAPI
description, ``OPTIONS``), hangs on ``HEAD /invocations`` and a negative ``Content-Length``, keeps slow sockets
open forever and ignores ``Connection: close``; its configuration cannot change that. The front answers exactly the
SageMaker routes and forwards them to TorchServe on a loopback port; everything else gets a JSON 4xx and the
connection is closed:

- ``GET /ping``, ``POST /invocations`` and ``GET /execution-parameters`` are forwarded; another path is 404,
  another method on a known path 405 (``HEAD`` and ``OPTIONS`` included); an ``/invocations`` Content-Type the
  handlers do not take is their 415 at once (TorchServe would parse a form body itself and answer a 500);
- a request needs a ``Content-Length`` (0 to ``max_body_bytes``) or none at all for ``GET``: a negative or
  non-numeric one is 400, a chunked body 411, a larger one 413, all before reading the body;
- the request line and headers must arrive within ``header_timeout`` seconds and the body within
  ``body_timeout`` (a 408, then the socket is closed), so slow clients cannot hold sockets;
- ``Connection: close`` (or HTTP/1.0 without keep-alive) is honoured: the answer carries ``Connection: close``
  and the socket is closed after it, so a client reading to EOF returns. Error answers always close.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass

from dogbreed.serving.requests import RequestError, check_content_type

ROUTES = {"/ping": "GET", "/invocations": "POST", "/execution-parameters": "GET"}
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade", "te",
                        "trailer", "proxy-connection", "proxy-authorization", "proxy-authenticate"})
MAX_HEADER_BYTES = 16 * 1024
MAX_CONNECTIONS = 256
# After a refusal, what the client still sends is read and dropped for up to this long / this much.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024 * 1024
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           411: "Length Required", 413: "Payload Too Large", 431: "Request Header Fields Too Large",
           502: "Bad Gateway", 503: "Service Unavailable"}


class Refusal(Exception):
    """A request the front answers itself with ``status`` and a one-line ``message``, then closes."""

    def __init__(self, status: int, message: str, allow: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.allow = status, message, allow


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name), None)

    @property
    def keep_alive(self) -> bool:
        connection = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


async def read_head(reader: asyncio.StreamReader) -> Request | None:
    """Request line and headers; None when the client closed before sending one."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise Refusal(400, "the request ended inside its headers") from exc
    except asyncio.LimitOverrunError as exc:
        raise Refusal(431, f"request headers over {MAX_HEADER_BYTES} bytes") from exc
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise Refusal(400, "malformed request line: send an HTTP/1.1 request")
    headers = []
    for line in filter(None, lines[1:]):
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or name != name.strip():
            raise Refusal(400, "malformed header line")
        headers.append((name, value.strip()))
    return Request(parts[0], parts[1], parts[2], headers)


def check_route(request: Request) -> None:
    path = request.target.split("?", 1)[0]
    if path not in ROUTES:
        raise Refusal(404, f"no route {path[:80]!r}: this endpoint answers GET /ping and POST /invocations")
    if request.method != ROUTES[path]:
        raise Refusal(405, f"{request.method[:16]} {path} is not allowed: use {ROUTES[path]} {path}",
                      allow=ROUTES[path])
    if path == "/invocations":  # before TorchServe's Java front end parses a form body (its 500)
        try:
            check_content_type(request.header("content-type"))
        except RequestError as exc:
            raise Refusal(exc.status_code, exc.message) from exc


def body_length(request: Request, max_body_bytes: int) -> int:
    """The body's length from Content-Length, checked before any of it is read."""
    if request.header("transfer-encoding") is not None:
        raise Refusal(411, "chunked request bodies are not accepted: send a Content-Length")
    values = {value for key, value in request.headers if key.lower() == "content-length"}
    if not values:
        return 0
    if len(values) > 1 or not next(iter(values)).isdigit():
        raise Refusal(400, f"invalid Content-Length {sorted(values)[0][:20]!r}: send the body's size in bytes")
    length = int(next(iter(values)))
    if length > max_body_bytes:
        raise Refusal(413, f"payload of {length} bytes is over the {max_body_bytes} byte limit: send a smaller "
                           "(re-encoded or resized) image, or fewer images per request")
    return length


def render(status: int, headers: list[tuple[str, str]], body: bytes, keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    lines += [f"{key}: {value}" for key, value in headers if key.lower() not in HOP_BY_HOP]
    lines += [f"Content-Length: {len(body)}", f"Connection: {'keep-alive' if keep_alive else 'close'}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def refusal_bytes(refusal: Refusal) -> bytes:
    body = json.dumps({"code": refusal.status, "message": refusal.message}).encode()
    headers = [("Content-Type", "application/json")] + ([("Allow", refusal.allow)] if refusal.allow else [])
    return render(refusal.status, headers, body, keep_alive=False)


class EndpointFront:
    """Serve ``host:port``, forwarding the SageMaker routes to ``backend_host:backend_port``, in a thread."""

    def __init__(self, host: str, port: int, backend_port: int, *, max_body_bytes: int, backend_timeout: float,
                 header_timeout: float = 10.0, body_timeout: float = 30.0) -> None:
        self.host, self.port, self.backend_port = host, port, backend_port
        self.max_body_bytes, self.backend_timeout = max_body_bytes, backend_timeout
        self.header_timeout, self.body_timeout = header_timeout, body_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._connections = 0

    def start(self) -> "EndpointFront":
        """Bind and serve in a daemon thread; returns once listening (a bind error is raised here)."""
        ready: list[BaseException | None] = []
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(asyncio.start_server(
                    self._handle, self.host, self.port, limit=MAX_HEADER_BYTES))
                ready.append(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller of start()
                ready.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="endpoint-front", daemon=True)
        self._thread.start()
        started.wait()
        if ready[0] is not None:
            raise ready[0]
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None or self._thread is None:
            return

        async def shutdown() -> None:
            server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(10)
        self._loop = self._server = self._thread = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        try:
            if self._connections > MAX_CONNECTIONS:
                raise Refusal(503, f"over {MAX_CONNECTIONS} open connections: retry later")
            while await self._one_request(reader, writer):
                pass
        except Refusal as refusal:
            writer.write(refusal_bytes(refusal))
            await _linger(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # stop() while the client keeps the connection open: close it quietly
            pass
        finally:
            self._connections -= 1
            try:
                await asyncio.wait_for(writer.drain(), 5)
            except (ConnectionError, asyncio.TimeoutError, asyncio.CancelledError):  # stop() while closing: done
                pass
            writer.close()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection should close."""
        try:
            request = await asyncio.wait_for(read_head(reader), self.header_timeout)
        except asyncio.TimeoutError:
            raise Refusal(408, f"request headers did not arrive within {self.header_timeout:g} s") from None
        if request is None:
            return False
        check_route(request)
        length = body_length(request, self.max_body_bytes)
        try:
            body = await asyncio.wait_for(reader.readexactly(length), self.body_timeout) if length else b""
        except asyncio.TimeoutError:
            raise Refusal(408, f"the {length} byte body did not arrive within {self.body_timeout:g} s") from None
        status, headers, answer = await self._forward(request, body)
        writer.write(render(status, headers, answer, request.keep_alive))
        await writer.drain()
        return request.keep_alive

    async def _forward(self, request: Request, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            return await asyncio.wait_for(self._exchange(request, body), self.backend_timeout)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            raise Refusal(502, f"the model server did not answer ({type(exc).__name__}): see the endpoint log") \
                from exc

    async def _exchange(self, request: Request, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        try:
            headers = [(k, v) for k, v in request.headers if k.lower() not in HOP_BY_HOP]
            head = [f"{request.method} {request.target} HTTP/1.1", f"Host: 127.0.0.1:{self.backend_port}",
                    *(f"{k}: {v}" for k, v in headers), f"Content-Length: {len(body)}", "Connection: close"]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            status_line = (await reader.readuntil(b"\r\n")).decode("latin-1")
            status = int(status_line.split(" ", 2)[1])
            answer_headers = []
            while (line := (await reader.readuntil(b"\r\n")).decode("latin-1").strip()):
                name, _, value = line.partition(":")
                answer_headers.append((name.strip(), value.strip()))
            return status, answer_headers, await _read_body(reader, answer_headers)
        finally:
            writer.close()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After a refusal: send it, stop writing, and discard what the client still sends (a body the refusal did not
    read) for a moment, so closing does not reset the connection before the client has read the answer."""

    async def discard() -> None:
        discarded = 0
        while discarded < LINGER_BYTES and (chunk := await reader.read(65536)):
            discarded += len(chunk)

    try:
        await asyncio.wait_for(writer.drain(), LINGER_SECONDS)
        if writer.can_write_eof():
            writer.write_eof()
        await asyncio.wait_for(discard(), LINGER_SECONDS)
    except (ConnectionError, asyncio.TimeoutError):
        pass


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]]) -> bytes:
    fields = {key.lower(): value for key, value in headers}
    if "content-length" in fields:
        return await reader.readexactly(int(fields["content-length"]))
    if "chunked" in fields.get("transfer-encoding", "").lower():
        chunks = []
        while (size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)):
            chunks.append(await reader.readexactly(size))
            await reader.readuntil(b"\r\n")
        return b"".join(chunks)
    return await reader.read()
