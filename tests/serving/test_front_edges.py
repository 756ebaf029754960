"""The endpoint front's header and body handling against a raw-socket backend that answers exactly the bytes a test
gives: hop-by-hop headers stay on their hop (both ways), a chunked answer (TorchServe streams some) is joined and sent
with a Content-Length, an answer with no length is read to the close."""

from __future__ import annotations

import socket
import socketserver
import threading

import pytest

from dogbreed.serving.front import HOP_BY_HOP, EndpointFront
from tests.serving.test_endpoint_front import exchange, free_port


def test_the_hop_by_hop_headers_are_pinned():
    # RFC 9110 section 7.6.1's connection options, plus the framing headers the front rewrites (Content-Length,
    # Transfer-Encoding, Host) and the proxy ones; anything else is end to end and passes through.
    assert HOP_BY_HOP == frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host",
                                    "upgrade", "te", "trailer", "proxy-connection", "proxy-authorization",
                                    "proxy-authenticate"})


class RawBackend(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.requests_seen: list[bytes] = []
        super().__init__(("127.0.0.1", 0), RawHandler)


class RawHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.request.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), b"0"))
        while len(body) < length:
            body += self.request.recv(65536)
        self.server.requests_seen.append(head)  # type: ignore[attr-defined]
        self.request.sendall(self.server.answer)  # type: ignore[attr-defined]
        self.request.shutdown(socket.SHUT_WR)


@pytest.fixture
def raw_front():
    started = []

    def start(answer: bytes) -> tuple[EndpointFront, RawBackend]:
        backend = RawBackend(answer)
        threading.Thread(target=backend.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        front = EndpointFront("127.0.0.1", free_port(), backend.server_address[1], max_body_bytes=1000,
                              backend_timeout=5.0, header_timeout=0.5, body_timeout=0.5).start()
        started.append((front, backend))
        return front, backend

    yield start
    for front, backend in started:
        front.stop()
        backend.shutdown()
        backend.server_close()


def split(response: bytes) -> tuple[list[str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), body


def test_a_chunked_answer_is_joined_and_sent_with_its_length(raw_front):
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\n[0.25\r\n7;ext=1\r\n, 0.75]\r\n0\r\n\r\n")
    front, _ = raw_front(answer)
    lines, body = split(exchange(front, b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n"))
    assert body == b"[0.25, 0.75]"
    assert lines == ["HTTP/1.1 200 OK", "Content-Type: application/json", "Content-Length: 12", "Connection: close"]


def test_an_answer_without_a_length_is_read_to_the_close(raw_front):
    front, _ = raw_front(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhealthy")
    lines, body = split(exchange(front, b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n"))
    assert (lines, body) == (["HTTP/1.1 200 OK", "Content-Type: text/plain", "Content-Length: 7",
                              "Connection: close"], b"healthy")


def test_hop_by_hop_headers_stay_on_their_hop_in_both_directions(raw_front):
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Model: dogbreed\r\nUpgrade: h2c\r\nTE: trailers\r\n"
              b"Trailer: Expires\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nContent-Length: 2\r\n\r\nok")
    front, backend = raw_front(answer)
    raw = (b"POST /invocations HTTP/1.1\r\nHost: example.com\r\nContent-Type: image/jpeg\r\nContent-Length: 3\r\n"
           b"X-Amzn-SageMaker-Custom-Attributes: top_k=2\r\nUpgrade: h2c\r\nTE: trailers\r\nTrailer: Expires\r\n"
           b"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n"
           b"Connection: close\r\n\r\nabc")
    lines, body = split(exchange(front, raw))
    assert (lines, body) == (["HTTP/1.1 200 OK", "Content-Type: text/plain", "X-Model: dogbreed",
                              "Content-Length: 2", "Connection: close"], b"ok")
    forwarded = backend.requests_seen[0].decode("latin-1").split("\r\n")
    assert forwarded == ["POST /invocations HTTP/1.1", f"Host: 127.0.0.1:{backend.server_address[1]}",
                         "Content-Type: image/jpeg", "X-Amzn-SageMaker-Custom-Attributes: top_k=2",
                         "Content-Length: 3", "Connection: close"]
