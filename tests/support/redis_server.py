"""A throwaway Redis (Debian's redis-server) on a free loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.peers import require
from tests.support.server import free_port


@dataclass
class RedisServer:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dockyard-redis-")))
    port: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.port = self.port or free_port()
        subprocess.run(
            [
                require("redis-server"),
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--pidfile",
                str(self.root / "redis.pid"),
            ],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        pidfile = self.root / "redis.pid"
        if pidfile.exists():
            subprocess.run(["kill", pidfile.read_text().strip()], check=False)
        shutil.rmtree(self.root, ignore_errors=True)
