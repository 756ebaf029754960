"""serve prints one line per request, read from TorchServe's access log (no server needed here)."""

from __future__ import annotations

from dogbreed.serving.local_endpoint import RequestLog, request_line

POLL = '2026-01-01T00:00:00,002 [INFO ] epollEventLoopGroup-3-4 ACCESS_LOG - /127.0.0.1:1 "GET /ping HTTP/1.1" 200 0\n'
REQUEST = ('2026-01-01T00:00:01,500 [INFO ] W-9000-model_1.0 ACCESS_LOG - /127.0.0.1:54321 '
           '"POST /invocations HTTP/1.1" 415 12\n')


def test_an_access_log_line_becomes_method_path_status_and_time():
    assert request_line(REQUEST) == "POST /invocations 415 12 ms"
    assert request_line("2026-01-01T00:00:01 [INFO ] W-9000 MODEL_LOG - loading") is None


def test_only_requests_after_the_announcement_are_printed_each_once(tmp_path):
    log_path = tmp_path / "serve.log"
    log_path.write_text(POLL + "model loaded\n")  # the readiness polls before serving
    requests = RequestLog(log_path)
    assert requests.new_lines() == []
    with open(log_path, "a") as log:
        log.write(REQUEST + REQUEST.replace("415 12", "200 31")[:40])  # the second line is half written
    assert requests.new_lines() == ["POST /invocations 415 12 ms"]
    with open(log_path, "a") as log:
        log.write(REQUEST.replace("415 12", "200 31")[40:])
    assert requests.new_lines() == ["POST /invocations 200 31 ms"]
    assert requests.new_lines() == []
    assert RequestLog(tmp_path / "not yet").new_lines() == []
