"""Replicas sharing one database, bucket and Redis: a session begun on one is good on every
other (the key is the database's), and signing out on one ends it on all (through Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import s3_postgres_env
from tests.support.postgres import PostgresCluster
from tests.support.redis_server import RedisServer
from tests.support.seaweedfs import SeaweedS3
from tests.support.server import RunningRegistry, free_port
from tests.web.conftest import QUIET
from tests.web.test_sign_in import csrf_of

ADMIN = "admin-Pa55word"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def two_replicas(
    s3_server: SeaweedS3, pg_cluster: PostgresCluster, redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[RunningRegistry, RunningRegistry]]:
    env = {
        **s3_postgres_env(s3_server, pg_cluster, redirect=False),
        **QUIET,
        "DOCKYARD_REDIS_URL": redis_server.url,
        "DOCKYARD_ADMIN_PASSWORD": ADMIN,
    }
    started = []
    for n in range(2):
        started.append(
            RunningRegistry(
                data_dir=tmp_path / f"replica{n}",
                port=free_port(),
                args=("--auth",),
                env=env,
                log_dir=tmp_path,
            ).start()
        )
    yield started[0], started[1]
    for server in started:
        server.stop()


def test_a_session_holds_on_every_replica_until_signed_out(
    two_replicas: tuple[RunningRegistry, RunningRegistry],
) -> None:
    a, b = two_replicas
    with httpx.Client(base_url=a.url, timeout=30) as on_a:
        form = on_a.get("/sign-in")
        signed = on_a.post(
            "/sign-in",
            data={"csrf": csrf_of(form.text), "username": "admin", "password": ADMIN},
        )
        assert signed.status_code == 303
        cookie = on_a.cookies["dockyard_session"]
        with httpx.Client(base_url=b.url, timeout=30) as on_b:
            on_b.cookies.set("dockyard_session", cookie)
            page = on_b.get("/")
            assert "Sign out" in page.text
            # A form of the session posts on the other replica too.
            assert on_b.get("/account/tokens").status_code == 200
            home = on_a.get("/")
            assert on_a.post("/sign-out", data={"csrf": csrf_of(home.text)}).status_code == 303
            assert "Sign out" not in on_b.get("/").text
