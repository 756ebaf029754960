"""The endpoint's surface: the front in front of TorchServe answers only the SageMaker routes, refuses odd methods,
lengths and slow clients with a clean 4xx and closes, and honours Connection: close. Driven over real sockets
against a stand-in backend (a stdlib HTTP server that would answer every path, as TorchServe does)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dogbreed.serving.front import EndpointFront


class Backend(BaseHTTPRequestHandler):
    """Answers anything with 200 and what it saw (TorchServe would answer /predictions/model too)."""

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = json.dumps({"method": self.command, "path": self.path, "body": body.decode("latin-1"),
                             "content_type": self.headers.get("Content-Type")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_HEAD = do_OPTIONS = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def front():
    backend = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    threading.Thread(target=backend.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    server = EndpointFront("127.0.0.1", free_port(), backend.server_address[1], max_body_bytes=1000,
                           backend_timeout=5.0, header_timeout=0.5, body_timeout=0.5).start()
    yield server
    server.stop()
    backend.shutdown()
    backend.server_close()


def exchange(front: EndpointFront, raw: bytes, *, wait_close: bool = True, pause: float = 0.0) -> bytes:
    """Send ``raw`` (after ``pause`` seconds), read until the server closes (or 3 s pass)."""
    with socket.create_connection(("127.0.0.1", front.port), timeout=3) as sock:
        time.sleep(pause)
        sock.sendall(raw)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if not wait_close:
                    break
        except socket.timeout:
            chunks.append(b"<still open>")
    return b"".join(chunks)


def status_and_body(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def test_ping_and_invocations_are_forwarded(front):
    status, seen = status_and_body(exchange(front, b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n"))
    assert (status, seen["method"], seen["path"]) == (200, "GET", "/ping")
    raw = (b"POST /invocations HTTP/1.1\r\nContent-Type: image/jpeg\r\nContent-Length: 5\r\n"
           b"Connection: close\r\n\r\nhello")
    status, seen = status_and_body(exchange(front, raw))
    assert (status, seen) == (200, {"method": "POST", "path": "/invocations", "body": "hello",
                                    "content_type": "image/jpeg"})


def test_a_query_string_does_not_change_the_route(front):
    """The route is the path before "?" (the query goes to the backend as sent); a query never opens another
    path."""
    status, seen = status_and_body(exchange(front, b"GET /ping?probe=1 HTTP/1.1\r\nConnection: close\r\n\r\n"))
    assert (status, seen["method"], seen["path"]) == (200, "GET", "/ping?probe=1")
    status, body = status_and_body(exchange(front, b"GET /predictions/model?x=/ping HTTP/1.1\r\n\r\n"))
    assert (status, body["message"]) == (404, "no route '/predictions/model': this endpoint answers GET /ping and "
                                              "POST /invocations")


@pytest.mark.parametrize("request_line, status, fragment", [
    (b"GET /predictions/model HTTP/1.1", 404, "no route '/predictions/model'"),
    (b"POST /predictions/model HTTP/1.1", 404, "no route"),
    (b"GET /api-description HTTP/1.1", 404, "no route '/api-description'"),
    (b"OPTIONS / HTTP/1.1", 404, "no route '/'"),
    (b"HEAD /invocations HTTP/1.1", 405, "HEAD /invocations is not allowed: use POST /invocations"),
    (b"OPTIONS /invocations HTTP/1.1", 405, "OPTIONS /invocations is not allowed"),
    (b"GET /invocations HTTP/1.1", 405, "use POST /invocations"),
    (b"POST /ping HTTP/1.1", 405, "use GET /ping"),
    (b"garbage", 400, "malformed request line"),
    (b"POST /invocations HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded", 415,
     "Content-Type 'application/x-www-form-urlencoded' is not supported: use one of image/jpeg"),
    (b"POST /invocations HTTP/1.1", 415, "Content-Type missing is not supported"),
])
def test_other_routes_and_methods_get_a_clean_4xx_and_the_socket_closes(front, request_line, status, fragment):
    response = exchange(front, request_line + b"\r\nContent-Length: 0\r\n\r\n")
    assert not response.endswith(b"<still open>"), response  # closed right after the answer
    got, body = status_and_body(response)
    assert (got, body["code"]) == (status, status) and fragment in body["message"], body
    assert b"Connection: close" in response


@pytest.mark.parametrize("length_header, status, fragment", [
    (b"Content-Length: -5", 400, "invalid Content-Length '-5'"),
    (b"Content-Length: 12abc", 400, "invalid Content-Length"),
    (b"Content-Length: 3\r\nContent-Length: 4", 400, "invalid Content-Length"),
    (b"Transfer-Encoding: chunked", 411, "send a Content-Length"),
    (b"Content-Length: 1001", 413, "payload of 1001 bytes is over the 1000 byte limit"),
])
def test_bad_lengths_are_refused_before_the_body_is_read(front, length_header, status, fragment):
    head = b"POST /invocations HTTP/1.1\r\nContent-Type: image/jpeg\r\n"
    response = exchange(front, head + length_header + b"\r\n\r\n")
    got, body = status_and_body(response)
    assert got == status and fragment in body["message"], body


def test_slow_headers_and_slow_body_are_timed_out(front):
    started = time.monotonic()
    got, body = status_and_body(exchange(front, b"GET /ping HTTP/1.1\r\n"))  # never ends its headers
    assert got == 408 and body["message"] == "request headers did not arrive within 0.5 s"
    raw = b"POST /invocations HTTP/1.1\r\nContent-Type: image/png\r\nContent-Length: 10\r\n\r\nabc"
    got, body = status_and_body(exchange(front, raw))
    assert got == 408 and body["message"] == "the 10 byte body did not arrive within 0.5 s"
    assert time.monotonic() - started < 2.9  # both closed by the server, not by the 3 s client timeout


def test_keep_alive_answers_several_requests_and_connection_close_ends_it(front):
    with socket.create_connection(("127.0.0.1", front.port), timeout=3) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200") and b"Connection: keep-alive" in first
        sock.sendall(b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n")
        rest = b""
        while chunk := sock.recv(65536):  # returns at EOF: the server closed after the answer
            rest += chunk
    assert rest.startswith(b"HTTP/1.1 200") and b"Connection: close" in rest


def test_http_1_0_without_keep_alive_is_closed_after_the_answer(front):
    response = exchange(front, b"GET /ping HTTP/1.0\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200") and not response.endswith(b"<still open>")
    # closed because of the answer, not by the header timeout's 408 after it
    assert response.count(b"HTTP/1.1 ") == 1 and b"\r\nConnection: close\r\n" in response


@pytest.mark.parametrize("version, connection, keep_alive", [
    ("HTTP/1.0", None, False), ("HTTP/1.0", "keep-alive", True), ("HTTP/1.0", "Keep-Alive", True),
    ("HTTP/1.1", None, True), ("HTTP/1.1", "close", False), ("HTTP/1.1", "Close", False),
    ("HTTP/1.1", "keep-alive", True),
])
def test_which_requests_keep_the_connection(version, connection, keep_alive):
    from dogbreed.serving.front import Request

    headers = [("Connection", connection)] if connection else []
    assert Request("GET", "/ping", version, headers).keep_alive is keep_alive


def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_a_413():
    from dogbreed.serving.front import Refusal, Request, body_length

    def length(value: str) -> int:
        return body_length(Request("POST", "/invocations", "HTTP/1.1", [("content-length", value)]), 1000)

    assert (length("1000"), length("0")) == (1000, 0)
    assert body_length(Request("GET", "/ping", "HTTP/1.1", []), 1000) == 0  # no Content-Length: no body
    with pytest.raises(Refusal) as refused:
        length("1001")
    assert (refused.value.status, refused.value.message) == (
        413, "payload of 1001 bytes is over the 1000 byte limit: send a smaller (re-encoded or resized) image, or "
             "fewer images per request")


def test_a_backend_that_is_down_is_a_502(front):
    front.backend_port = free_port()
    got, body = status_and_body(exchange(front, b"GET /ping HTTP/1.1\r\n\r\n"))
    assert got == 502 and "the model server did not answer" in body["message"]


def test_a_client_that_sends_an_oversize_body_anyway_reads_the_413(front):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", front.port, timeout=5)
    connection.request("POST", "/invocations", body=b"x" * 300_000, headers={"Content-Type": "image/jpeg"})
    response = connection.getresponse()  # no connection reset: the refused body was read and dropped
    assert response.status == 413 and b"over the 1000 byte limit" in response.read()
    connection.close()


def test_stopping_with_a_keep_alive_connection_open_closes_it_without_a_traceback(caplog):
    """The endpoint stops while a client keeps its connection open for the next request: the connection is closed
    and nothing is logged (a cancelled handler used to reach asyncio's 'Exception in callback' traceback)."""
    backend = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    threading.Thread(target=backend.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    server = EndpointFront("127.0.0.1", free_port(), backend.server_address[1], max_body_bytes=1000,
                           backend_timeout=5.0, header_timeout=30.0, body_timeout=30.0).start()
    try:
        with caplog.at_level("DEBUG", logger="asyncio"), \
                socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            server.stop()
            assert sock.recv(65536) == b""  # closed by the server, not left hanging
        assert [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "WARNING")] == []
    finally:
        backend.shutdown()
        backend.server_close()


def test_a_handler_already_closing_when_the_endpoint_stops_ends_quietly():
    """stop() cancels every task at once: a handler whose client just left (it is draining in its ``finally``) and
    the drain itself are both cancelled; the handler still closes the socket and ends without an exception (it
    used to end cancelled, which asyncio logs as 'Exception in callback ... CancelledError')."""
    import asyncio

    class Reader:
        async def readuntil(self, *args: object) -> bytes:
            raise ConnectionResetError("client left")

    class Writer:
        closed = False

        async def drain(self) -> None:
            await asyncio.Event().wait()  # the peer's window is full: never drains

        def write(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            self.closed = True

    async def scenario() -> tuple[Writer, BaseException | None, int]:
        front = EndpointFront("127.0.0.1", 1, 2, max_body_bytes=1000, backend_timeout=5.0, header_timeout=5.0,
                              body_timeout=5.0)
        writer = Writer()
        handler = asyncio.ensure_future(front._handle(Reader(), writer))  # type: ignore[arg-type]
        for _ in range(5):  # into the finally's drain
            await asyncio.sleep(0)
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        assert len(tasks) == 2  # the handler and its drain, as stop() finds them
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return writer, None if handler.cancelled() else handler.exception(), front._connections

    writer, error, connections = asyncio.run(scenario())
    assert writer.closed and error is None and connections == 0
