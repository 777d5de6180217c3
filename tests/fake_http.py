"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for tests (429s, 5xx, slow and broken replies)."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; str -> sent verbatim; None -> a default chat completion
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def ok(text: str = "hi", usage: dict | None = None, **extra: Any) -> Reply:
    body: dict[str, Any] = {"id": "x", "object": "chat.completion", "model": "served-name",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                         "finish_reason": "stop"}], **extra}
    if usage is not None:
        body["usage"] = usage
    return Reply(body=body)


class FakeServer:
    """ThreadingHTTPServer on a random free loopback port; replies come from `script`, then `default`."""

    def __init__(self, default: Reply | None = None, max_life_s: float = 30.0):
        self.script: list[Reply] = []
        self.default = default or ok(usage={"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13})
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.responder = None  # optional callable(request_dict) -> Reply | None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                self.send_response(404)
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                req = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "json": body}
                with server.lock:
                    server.requests.append(req)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    reply = server.script.pop(0) if server.script else None
                counted = True  # in flight until its reply is ready: the client may send its next
                try:             # request before this thread returns from writing the body
                    if reply is None and server.responder is not None:
                        reply = server.responder(req)
                    reply = reply or server.default
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    payload = reply.body
                    if payload is None:
                        payload = server.default.body
                    data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                    with server.lock:
                        server.in_flight -= 1
                    counted = False
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)
                finally:
                    if counted:
                        with server.lock:
                            server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        # a forgotten server stops itself
        self._killer = threading.Timer(max_life_s, self.stop)
        self._killer.daemon = True
        self._killer.start()

    def stop(self) -> None:
        self._killer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.requests)
