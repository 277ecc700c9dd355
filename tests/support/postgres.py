"""A throwaway PostgreSQL cluster in a temp folder, on a free loopback port (Debian's server)."""

from __future__ import annotations

import glob
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.peers import require
from tests.support.server import free_port


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        require(f"postgresql-{name}")  # fails in CI, skips elsewhere
    return found[-1]


@dataclass
class PostgresCluster:
    """Lives in its own folder under /tmp: pytest's are private to root, and the server runs
    as the postgres user."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dockyard-pg-")))
    port: int = 0

    def start(self) -> PostgresCluster:
        self.port = self.port or free_port()
        shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        run_as_postgres = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [
                *run_as_postgres,
                pg_bin("initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *run_as_postgres,
                pg_bin("pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.root / "pg.log"),
                "-w",
                "-o",
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                "-c fsync=off -c synchronous_commit=off -c max_connections=200",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        return self

    def stop(self) -> None:
        data = self.root / "data"
        if data.exists():
            subprocess.run(
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    pg_bin("pg_ctl"),
                    "-D",
                    str(data),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
                capture_output=True,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, template: str | None = None) -> str:
        """A fresh database, empty or a copy of the database `template` names (which nobody may
        be connected to); returns its URL."""
        name = f"dy_{uuid.uuid4().hex[:12]}"
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                pg_bin("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-c",
                f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""),
            ],
            check=True,
            capture_output=True,
        )
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"
