"""Shared fixtures: real `dockyard serve` processes on free ports, and an HTTP client for them."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, settings

from tests.support.machine_lock import (  # noqa: F401 (hooks: the `alone` tests under xdist)
    pytest_configure_node,
    pytest_runtest_protocol,
    pytest_unconfigure,
)
from tests.support.postgres import PostgresCluster
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedS3
from tests.support.server import RunningRegistry, free_port, leaked_secrets, native_crashes

# The order in which `make test`'s xdist workers are handed the test files: longest first.
pytest_plugins = ["tests.support.file_order"]

BACKENDS = ["filesystem+sqlite", "s3+postgresql"]

# Timings never decide a test: hypothesis's per-example deadline and its "input generation is
# slow" check are both clocks, and on a loaded 2-core machine they failed tests whose code was
# right. Every property test still runs all its examples.
settings.register_profile("dockyard", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("dockyard")

# Markers (registered in pyproject.toml) are given here by folder, fixture and import, so that no
# test is decorated one by one. `make test-fast` runs `-m unit`; `make test` runs everything.
# unit: in-process tests of modules and stores (tests/unit, tests/stores) that start no server.
UNIT_FOLDERS = {"unit", "stores"}
SERVER_FIXTURES = {
    "registry",
    "start_registry",
    "client",
    "registry_on_every_backend",
    "start_auth_registry",
    "mclient",
}
# peers: needs a real peer program (SeaweedFS, PostgreSQL, Redis, Distribution, skopeo, podman ...).
PEER_FOLDERS = {"interop", "scaleout", "bench", "proxy", "web"}
PEER_FIXTURES = {
    "s3_server",
    "pg_cluster",
    "seaweed",
    "postgres",
    "redis_server",
    "shared_backends",
    "ce",
    "up",
    "shared",
}
PEER_PARAMS = {"s3", "postgresql"}
PEER_HELPERS = {"tests.support.peers", "tests.support.auth_peers"}
NOT_PEER_HELPERS = {"unique_repo", "in_ci", "write_htpasswd", "PeerCommandError"}


def _drives_peers(module: object) -> bool:
    """Whether a test module imports a tests/support helper that runs a peer program."""
    return any(
        (getattr(value, "__module__", None) in PEER_HELPERS and name not in NOT_PEER_HELPERS)
        or getattr(value, "__name__", None) in PEER_HELPERS
        for name, value in vars(module).items()
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        folder = item.path.relative_to(root).parts[0]
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        param_parts = set(callspec.id.replace("+", "-").split("-")) if callspec else set()
        module = getattr(item, "module", None)
        peers = (
            folder in PEER_FOLDERS
            or bool(fixtures & PEER_FIXTURES)
            or bool(param_parts & PEER_PARAMS)
            or (module is not None and _drives_peers(module))
        )
        slow = folder not in UNIT_FOLDERS or bool(fixtures & SERVER_FIXTURES)
        if peers:
            item.add_marker(pytest.mark.peers)
        if slow:
            item.add_marker(pytest.mark.slow)
        if not peers and not slow:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """One registry shared by the whole session; tests use their own repository names."""
    base = tmp_path_factory.mktemp("registry")
    server = RunningRegistry(data_dir=base / "data", port=free_port(), any_port=True).start()
    yield server
    server.stop()


@pytest.fixture
def start_registry(tmp_path: Path) -> Iterator[Callable[..., RunningRegistry]]:
    """Start a private registry with extra `serve` arguments; stopped at test end."""
    started: list[RunningRegistry] = []

    def start(
        *args: str,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> RunningRegistry:
        server = RunningRegistry(
            data_dir=data_dir or tmp_path / f"data{len(started)}",
            port=port or free_port(),
            args=args,
            env=env or {},
            log_dir=tmp_path,
            any_port=port is None,
        ).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def client(registry: RunningRegistry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=60.0) as c:
        yield c


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedS3]:
    """A real S3 server (SeaweedFS), started the first time a test needs one."""
    server = SeaweedS3(Path(tempfile.mkdtemp(prefix="dockyard-s3-"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


def s3_postgres_env(s3: SeaweedS3, pg: PostgresCluster, *, redirect: bool) -> dict[str, str]:
    """Settings (as DOCKYARD_* variables) for a fresh bucket and database."""
    return {
        "DOCKYARD_STORAGE": f"s3://{s3.create_bucket()}/registry",
        "DOCKYARD_S3_ENDPOINT": s3.endpoint,
        "DOCKYARD_S3_PATH_STYLE": "true",
        "DOCKYARD_S3_REDIRECT_SECONDS": "600" if redirect else "0",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "DOCKYARD_METADATA": pg.create_database(),
    }


def backend_env(request: pytest.FixtureRequest, backend: str) -> dict[str, str]:
    """Settings for a server of a test's own on `backend` (one of BACKENDS): none for the
    default filesystem + SQLite, a fresh bucket and database for S3 + PostgreSQL."""
    if backend != "s3+postgresql":
        return {}
    return s3_postgres_env(
        request.getfixturevalue("s3_server"), request.getfixturevalue("pg_cluster"), redirect=False
    )


@pytest.fixture(scope="session")
def _registry_on_filesystem_sqlite(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningRegistry]:
    """This process's registry on filesystem + SQLite (see `registry_on_every_backend`)."""
    base = tmp_path_factory.mktemp("registry-filesystem-sqlite")
    server = RunningRegistry(data_dir=base / "data", port=free_port(), any_port=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _registry_on_s3_postgresql(
    tmp_path_factory: pytest.TempPathFactory, s3_server: SeaweedS3, pg_cluster: PostgresCluster
) -> Iterator[RunningRegistry]:
    """This process's registry on S3 + PostgreSQL, stopped before both peers are."""
    base = tmp_path_factory.mktemp("registry-s3-postgresql")
    env = s3_postgres_env(s3_server, pg_cluster, redirect=False)
    server = RunningRegistry(
        data_dir=base / "data", port=free_port(), env=env, any_port=True
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def registry_on_every_backend(request: pytest.FixtureRequest) -> RunningRegistry:
    """The session registry once per backend pair; directories whose suites must hold on every
    backend (tests/http, tests/conformance) use it as their `registry`. Tests use their own
    repository names; one that needs a registry of its own uses `start_registry`.

    pytest keeps one value of a parametrised fixture at a time: under `--dist loadfile` each
    file runs its tests of one backend, then the other, so this fixture is set up again at
    every file. The servers are therefore fixtures of their own, not parametrised, started the
    first time a test asks for them and stopped at the end of the process's session."""
    return request.getfixturevalue("_registry_on_" + request.param.replace("+", "_"))


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ~/.docker/config.json for client tests; podman's auth files hidden."""
    folder = tmp_path / "docker"
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return folder / "config.json"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No server this process started logged a password or token a test registered
    (`tests.support.server.register_secret`), and none died of a native crash (its
    faulthandler's report in its log): either fails the run, whichever test it came in."""
    lines = [
        f"SECRET IN SERVER LOG {path}: {len(hits)} registered secret(s), e.g. {hits[0][:4]}…"
        for path, hits in leaked_secrets().items()
    ]
    lines += [f"NATIVE CRASH IN SERVER LOG {path}: {what}" for path, what in native_crashes()]
    if not lines:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for line in lines:
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(line, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
