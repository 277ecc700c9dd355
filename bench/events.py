"""The `events` benchmark: manifest GET throughput with events on against off (issue 20: on
must keep at least 0.9 of off).

"On" is a Dockyard of its own started with `event_pulls` (every GET counted in a pull event,
since pulls are what a GET does) and one webhook to a receiver here that acknowledges
everything; "on, pulls off" is a second one with the webhook but without pull events (a GET
then writes nothing).
"Off" is the runner's Dockyard, which has no webhook. Each round times the three in turn
(order alternating). Distribution has no events: the same GET timed three times on it gives
the noise floor of such a ratio.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.ops import BenchError
from bench.servers import Dockyard, Server, free_port


@dataclass
class Sink:
    """A webhook receiver on a thread of the benchmark: answers 204, counts events."""

    events: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                count = len(json.loads(body).get("events", []))
                with sink.lock:
                    sink.events += count
                    sink.requests += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/events"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def new_dockyard(template: Server, workdir: Path, title: str, pulls: bool) -> Dockyard:
    """A Dockyard like the runner's, with events on (and pull events if `pulls`)."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    extra_args: tuple[str, ...] = ()
    extra_env: dict[str, str] = {}
    if isinstance(template, Dockyard):
        extra_args, extra_env = template.extra_args, dict(template.extra_env)
    return Dockyard(
        template.key,
        f"{template.title} ({title})",
        workdir,
        extra_args=extra_args,
        extra_env={
            **extra_env,
            "DOCKYARD_EVENT_PULLS": "true" if pulls else "false",
            "DOCKYARD_WEBHOOK_ALLOW_LOOPBACK": "true",
        },
    )


def add_webhook(server: Dockyard, url: str) -> None:
    """`dockyard webhook add URL` on the server's data folder while it serves."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard",
            "webhook",
            "add",
            url,
            "--data-dir",
            str(server.workdir / "data"),
        ],
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise BenchError(f"adding the webhook failed: {result.stderr}")
