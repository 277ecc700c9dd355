"""A webhook receiver, run as its own process (`python -m tests.support.webhook_receiver PORT
LOG [FAILURES [REDIRECTS]]`): it appends every request it takes (headers and body) as a JSON
line to LOG, synced before it answers 200; it answers 503 to its first FAILURES requests, then
307 (to /elsewhere) to the next REDIRECTS, without keeping them. The tests read LOG;
`Receiver` starts and stops the process."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.server import OnLoopback, wait_for_http


def serve(port: int, log: Path, failures: int, redirects: int = 0) -> None:
    lock = threading.Lock()
    left = [failures]
    redirecting = [redirects]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # readiness probe
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                if left[0] > 0:
                    left[0] -= 1
                    status = 503
                elif redirecting[0] > 0 and self.path != "/elsewhere":
                    redirecting[0] -= 1
                    status = 307
                else:
                    status = 200
                    line = {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": base64.b64encode(body).decode(),
                    }
                    with open(log, "a") as f:
                        f.write(json.dumps(line) + "\n")
                        f.flush()
                        os.fsync(f.fileno())
            self.send_response(status)
            if status == 307:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


@dataclass
class Receiver(OnLoopback):
    port: int
    log: Path
    failures: int = 0
    redirects: int = 0
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Receiver:
        root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.webhook_receiver",
                str(self.port),
                str(self.log),
                str(self.failures),
                str(self.redirects),
            ],
            cwd=root,
            start_new_session=True,
        )
        wait_for_http(self.url + "/", proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        found = []
        for line in self.log.read_text().splitlines():
            entry = json.loads(line)
            entry["body"] = base64.b64decode(entry["body"])
            found.append(entry)
        return found


def signature_valid(secret: str, request: dict[str, Any]) -> bool:
    """What a receiver does: HMAC-SHA256 of `timestamp.body` under the secret, compared in
    constant time with the Dockyard-Signature header."""
    timestamp = request["headers"]["dockyard-timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + request["body"], hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest("sha256=" + expected, request["headers"]["dockyard-signature"])


if __name__ == "__main__":
    counts = [int(a) for a in sys.argv[3:5]]
    serve(int(sys.argv[1]), Path(sys.argv[2]), *counts)
