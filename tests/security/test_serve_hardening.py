"""Issue 13, the serving process: secrets at rest (13), HSTS and a realm not taken from the Host
header (17), a second server refused on a taken address (18), slow clients cut off."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.auth.helpers import ADMIN_PASSWORD
from tests.http.test_tls import self_signed
from tests.support.push import push_image, unique_repo
from tests.support.server import RunningRegistry, free_port, wait_for_http


def dockyard(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30, input: str = ""
) -> subprocess.CompletedProcess:
    """Run the CLI; a server that did not exit is stopped with its workers, then the test
    fails."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard", *args],
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# -- 13: secrets at rest ---------------------------------------------------------------------


def private_mode(path: Path) -> int:
    """A path's permission bits; for a link (the metrics folder's, to a folder in memory), those
    of what it names: a link's own are always 0777 on Linux and guard nothing."""
    return stat.S_IMODE((path.stat() if path.is_symlink() else path.lstat()).st_mode)


def test_finding_13_data_folder_and_files_private_after_push(tmp_path: Path) -> None:
    old = os.umask(0o022)  # what a typical login shell hands the server
    try:
        data = tmp_path / "data"
        data.mkdir(mode=0o755)  # an existing folder, as an older version left it
        server = RunningRegistry(
            data_dir=data,
            port=free_port(),
            args=("--auth",),
            log_dir=tmp_path,
            env={"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
        ).start()
    finally:
        os.umask(old)
    try:
        with httpx.Client(
            base_url=server.url, timeout=30, auth=("admin", ADMIN_PASSWORD)
        ) as client:
            push_image(client, unique_repo(), "v1")
        loose = []
        for path in [data, *data.rglob("*")]:
            mode = private_mode(path)
            if mode & 0o077:
                loose.append(f"{path.relative_to(tmp_path)} {oct(mode)}")
        assert not loose, loose
        assert any(p.is_file() for p in (data / "blobs").rglob("*")), "no blob was written"
    finally:
        server.stop()


def test_finding_13_existing_files_tightened_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = RunningRegistry(data_dir=data, port=free_port(), log_dir=tmp_path).start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        push_image(client, unique_repo(), "v1")
    server.stop()
    for path in [data, *data.rglob("*")]:  # as a version without the fix left them
        path.chmod(0o755 if path.is_dir() else 0o644)
    server = RunningRegistry(data_dir=data, port=free_port(), log_dir=tmp_path).start()
    try:
        loose = [str(p) for p in [data, *data.rglob("*")] if private_mode(p) & 0o077]
        assert not loose, loose
    finally:
        server.stop()


def test_finding_13_admin_commands_keep_the_folder_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = os.umask(0o022)
    try:
        result = dockyard(
            "user",
            "add",
            "alice",
            "--password-stdin",
            "--init",
            "--data-dir",
            str(data),
            input="pw-12345678",
        )
        assert result.returncode == 0, result.stderr
        result = dockyard("db", "upgrade", "--init", "--data-dir", str(tmp_path / "other"))
        assert result.returncode == 0, result.stderr
    finally:
        os.umask(old)
    paths = [data, *data.rglob("*"), tmp_path / "other", *(tmp_path / "other").rglob("*")]
    loose = [str(p) for p in paths if private_mode(p) & 0o077]
    assert not loose, loose


def test_finding_13_config_show_redacts_every_secret(tmp_path: Path) -> None:
    config = tmp_path / "dockyard.yml"
    config.write_text(
        "proxies:\n"
        "  - name: docker.io\n"
        "    url: https://registry-1.docker.io\n"
        "    username: someone\n"
        "    password: upstream-SECRET-1\n"
        "s3_secret_key: s3-SECRET-2\n"
        "metadata: postgresql://dockyard:pg-SECRET-3@db.example:5432/dockyard\n"
        "redis_url: redis://:redis-SECRET-4@cache.example:6379/0\n"
    )
    result = dockyard("config", "show", "--config", str(config))
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    for secret in ("upstream-SECRET-1", "s3-SECRET-2", "pg-SECRET-3", "redis-SECRET-4"):
        assert secret not in out
    assert "username: someone" in out  # what is not secret is still shown
    assert "db.example:5432/dockyard" in out and "cache.example:6379/0" in out
    assert out.count("***") >= 4


def test_finding_13_broken_config_file_error_does_not_quote_it(tmp_path: Path) -> None:
    config = tmp_path / "dockyard.yml"
    config.write_text('proxies:\n  - name: docker.io\n    password: "upstream-SECRET-8\n')
    result = dockyard("config", "check", "--config", str(config))
    assert result.returncode == 2
    assert "not valid YAML" in result.stderr and "line 3" in result.stderr
    assert "upstream-SECRET-8" not in result.stdout + result.stderr


def test_finding_13_startup_error_does_not_show_database_password(tmp_path: Path) -> None:
    port = free_port()
    result = dockyard(
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(tmp_path / "data"),
        "--metadata",
        f"postgresql://dockyard:pg-SECRET-5@127.0.0.1:{free_port()}/nope",
        timeout=60,
    )
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "pg-SECRET-5" not in out
    assert "Traceback" not in out
    assert "cannot" in out


def test_finding_13_admin_password_never_logged(tmp_path: Path) -> None:
    password = "admin-SECRET-6-Pa55"
    server = RunningRegistry(
        data_dir=tmp_path / "data",
        port=free_port(),
        args=("--auth",),
        log_dir=tmp_path,
        env={"DOCKYARD_ADMIN_PASSWORD": password, "DOCKYARD_S3_SECRET_KEY": "s3-SECRET-7"},
    ).start()
    try:
        httpx.get(server.url + "/token", auth=("admin", password)).raise_for_status()
        httpx.get(server.url + "/token", auth=("admin", "wrong-" + password))
    finally:
        server.stop()
    assert password not in server.log() and "s3-SECRET-7" not in server.log()


# -- 17: HSTS and the token realm --------------------------------------------------------------


def test_finding_17_realm_not_taken_from_host_header(tmp_path: Path) -> None:
    server = RunningRegistry(
        data_dir=tmp_path / "data",
        port=free_port(),
        args=("--auth",),
        log_dir=tmp_path,
        env={"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
    ).start()
    try:
        resp = httpx.get(server.url + "/v2/", headers={"Host": "evil.example"})
        assert resp.status_code == 401
        challenge = resp.headers["WWW-Authenticate"]
        assert "evil.example" not in challenge
        assert f'realm="{server.url}/token"' in challenge
        resp = httpx.get(
            server.url + "/v2/x/manifests/latest", headers={"Host": "evil.example:443"}
        )
        assert "evil.example" not in resp.headers["WWW-Authenticate"]
    finally:
        server.stop()


def test_finding_17_realm_from_public_url(tmp_path: Path) -> None:
    server = RunningRegistry(
        data_dir=tmp_path / "data",
        port=free_port(),
        log_dir=tmp_path,
        args=("--auth", "--public-url", "https://registry.example.com/"),
        env={"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
    ).start()
    try:
        resp = httpx.get(server.url + "/v2/", headers={"Host": "evil.example"})
        assert 'realm="https://registry.example.com/token"' in resp.headers["WWW-Authenticate"]
    finally:
        server.stop()
    bad = dockyard("config", "check", env={"DOCKYARD_PUBLIC_URL": "ftp://x"})
    assert bad.returncode == 2 and "public_url" in bad.stderr
    assert "--public-url" in dockyard("serve", "--help").stdout


def test_finding_17_hsts_over_tls_only(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    log = open(tmp_path / "tls.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dockyard",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--auth",
            "--data-dir",
            str(tmp_path / "tls"),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    base = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                resp = httpx.get(
                    base + "/v2/", verify=trust, timeout=1, headers={"Host": "evil.example"}
                )
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert resp.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert f'realm="{base}/token"' in resp.headers["WWW-Authenticate"]
        token = httpx.get(base + "/token", verify=trust, auth=("admin", ADMIN_PASSWORD))
        assert token.status_code == 200
        assert token.headers["Strict-Transport-Security"] == "max-age=31536000"
        missing = httpx.get(base + "/v2/nothing/here", verify=trust)
        assert missing.headers["Strict-Transport-Security"] == "max-age=31536000"
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(15)
        log.close()
    plain = RunningRegistry(data_dir=tmp_path / "plain", port=free_port(), log_dir=tmp_path).start()
    try:
        assert "strict-transport-security" not in httpx.get(plain.url + "/v2/").headers
    finally:
        plain.stop()


# -- 18: an address already in use -------------------------------------------------------------


def test_finding_18_second_server_on_taken_port_refused(tmp_path: Path) -> None:
    first = RunningRegistry(
        data_dir=tmp_path / "a",
        port=free_port(),
        args=("--auth", "--workers", "2"),
        log_dir=tmp_path,
        env={"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
    ).start()
    try:
        for listen in (f"127.0.0.1:{first.port}", f"0.0.0.0:{first.port}"):
            result = dockyard(
                "serve",
                "--listen",
                listen,
                "--insecure-no-auth",
                "--data-dir",
                str(tmp_path / "b"),
                timeout=30,
            )
            assert result.returncode == 1, result.stderr
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert lines and "already in use" in lines[-1], result.stderr
            assert "Traceback" not in result.stderr
        # The first server is the only one answering, with its accounts on.
        for _ in range(20):
            assert httpx.get(first.url + "/v2/").status_code == 401
    finally:
        first.stop()


def test_finding_18_two_servers_started_at_once_one_refused(tmp_path: Path) -> None:
    port = free_port()
    procs = []
    for name in ("b", "c"):
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed below
        procs.append(
            (
                log,
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "dockyard",
                        "serve",
                        "--listen",
                        f"127.0.0.1:{port}",
                        "--data-dir",
                        str(tmp_path / name),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                ),
            )
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v2/")
        time.sleep(2)  # both have had the time to start their workers
        codes = [proc.poll() for _, proc in procs]
        assert sorted(codes, key=str) == [1, None], codes
        refused = next(i for i, (_, proc) in enumerate(procs) if proc.poll() == 1)
        assert "already in use" in (tmp_path / ("b", "c")[refused]).with_suffix(".log").read_text()
    finally:
        for log, proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(15)
            log.close()


def test_finding_18_workers_of_one_server_share_the_port(tmp_path: Path) -> None:
    server = RunningRegistry(
        data_dir=tmp_path / "a", port=free_port(), args=("--workers", "3"), log_dir=tmp_path
    ).start()
    try:
        for _ in range(30):
            assert httpx.get(server.url + "/v2/").status_code == 200
    finally:
        server.stop()
    # The port is free again once the server is gone: a restart is not refused.
    again = RunningRegistry(data_dir=tmp_path / "a", port=server.port, log_dir=tmp_path).start()
    again.stop()


# -- slow clients ------------------------------------------------------------------------------


def _connect(port: int, first: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if first:
        sock.sendall(first)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        sock.settimeout(0.05)
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_finding_slowloris_connections_closed_after_header_timeout(tmp_path: Path) -> None:
    server = RunningRegistry(
        data_dir=tmp_path / "data",
        port=free_port(),
        log_dir=tmp_path,
        args=("--workers", "1"),
        env={"DOCKYARD_HEADER_TIMEOUT_SECONDS": "2"},
    ).start()
    try:
        # 70 trickling a request line or headers a byte at a time, and 30 sending nothing.
        trickle = [_connect(server.port, b"G") for _ in range(35)]
        trickle += [
            _connect(server.port, b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-A") for _ in range(35)
        ]
        silent = [_connect(server.port, b"") for _ in range(30)]
        started = time.monotonic()
        open_ = trickle + silent
        while open_ and time.monotonic() - started < 8:
            # Meanwhile, normal clients are served.
            assert httpx.get(server.url + "/v2/", timeout=2).status_code == 200
            for sock in trickle:
                with contextlib.suppress(OSError):
                    sock.sendall(b"E")
            time.sleep(0.3)
            open_ = [s for s in open_ if not _closed_by_server(s)]
        assert not open_, f"{len(open_)} slow connections still open"
        assert time.monotonic() - started > 1.5  # closed by the timeout, not at once
        assert httpx.get(server.url + "/v2/", timeout=2).status_code == 200
        # A body slower than the header timeout is not cut off: only headers are timed.
        head = (
            f"POST /v2/slow/blobs/uploads/?digest=sha256:{'0' * 64} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: 8\r\n\r\n"
        ).encode()
        upload = _connect(server.port, head)
        for _ in range(8):
            time.sleep(0.4)
            upload.sendall(b"x")
        upload.settimeout(5)
        assert upload.recv(64).startswith(b"HTTP/1.1 400")  # answered: the digest is wrong
        upload.close()
        for sock in trickle + silent:
            sock.close()
    finally:
        server.stop()


def test_finding_slowloris_limits_are_settings_and_flags() -> None:
    help_text = dockyard("serve", "--help").stdout
    assert "--header-timeout" in help_text and "--max-requests-per-client" in help_text
    shown = dockyard("config", "show", env={"DOCKYARD_HEADER_TIMEOUT_SECONDS": "3"}).stdout
    assert "header_timeout_seconds: 3.0" in shown and "max_requests_per_client: 64" in shown
    bad = dockyard("config", "check", env={"DOCKYARD_HEADER_TIMEOUT_SECONDS": "0"})
    assert bad.returncode == 2 and "header_timeout_seconds" in bad.stderr


def test_finding_slowloris_requests_per_client_capped(tmp_path: Path) -> None:
    server = RunningRegistry(
        data_dir=tmp_path / "data",
        port=free_port(),
        log_dir=tmp_path,
        args=("--workers", "1"),
        env={"DOCKYARD_MAX_REQUESTS_PER_CLIENT": "4"},
    ).start()
    digest = "sha256:" + "0" * 64
    head = (
        f"POST /v2/slow/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\nx"
    ).encode()
    held = []
    try:
        # Four requests whose bodies trickle: each is in progress in the application.
        for _ in range(4):
            held.append(_connect(server.port, head))
        time.sleep(0.5)
        assert all(not _closed_by_server(s) for s in held)
        # The fifth from the same address is refused at once, in the spec's shape.
        resp = httpx.get(server.url + "/v2/", timeout=5)
        assert resp.status_code == 429
        assert resp.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        over = _connect(server.port, head)
        over.settimeout(5)
        assert over.recv(64).startswith(b"HTTP/1.1 429")
        over.close()
        for sock in held:
            sock.close()
        # Once they are gone, the address is served again.
        deadline = time.monotonic() + 5
        while httpx.get(server.url + "/v2/", timeout=2).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        for sock in held:
            sock.close()
        server.stop()
