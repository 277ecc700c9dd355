"""SIGHUP to `dockyard serve`: a renewed certificate is served to new connections and
settings from the config file take effect, while requests keep being answered; a broken
certificate or configuration is refused and the server goes on as it was."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import threading
import time
from pathlib import Path

import httpx
from cryptography import x509

from tests.support import certs
from tests.support.push import error_code, unique_repo
from tests.support.server import RunningRegistry, free_port


def trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def served_certificate(port: int) -> x509.Certificate:
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=5)
    return x509.load_pem_x509_certificate(pem.encode())


def install(pair: certs.Pair, cert: Path, key: Path) -> None:
    """Replace the files the server was configured with, each by an atomic rename (as
    certbot and cert-manager do), key first."""
    for source, target in ((pair.key, key), (pair.cert, cert)):
        staged = target.with_suffix(".new")
        shutil.copyfile(source, staged)
        os.replace(staged, target)


def rewrite(path: Path, text: str) -> None:
    """Replace the file at once, as an editor or a configuration tool does: a reload never
    reads it half written."""
    staged = path.with_suffix(".new")
    staged.write_text(text)
    os.replace(staged, path)


class Requests:
    """GET /v2/ in a loop over a keep-alive connection and over new ones, counting failures.

    A request sent on a kept connection just as the server closes it (an old worker letting go
    of its idle connections) meets a connection closed before any answer: HTTP/1.1's own race,
    which the registries' clients (Go's transport in docker, podman, containerd, crane) meet by
    sending an idempotent request again on a new connection. A new connection accepted by a
    worker being let go can also end in its TLS handshake (granian's handover; seen in CI under
    load). This loop sends such a request again, once, and counts it (`resent`); a failure
    after an answer began, or a second one, counts as a dropped request."""

    def __init__(self, url: str, ca: Path) -> None:
        self.url, self.ca = url, ca
        self.failures: list[str] = []
        self.answered = 0
        self.resent = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(keep_alive,)) for keep_alive in (True, False)
        ]

    def __enter__(self) -> Requests:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _get(self, client: httpx.Client) -> None:
        response = client.get(self.url + "/v2/")
        if response.status_code != 200:
            self.failures.append(f"{response.status_code} {response.text[:100]}")
        self.answered += 1

    def _run(self, keep_alive: bool) -> None:
        kept = httpx.Client(verify=trusting(self.ca), timeout=30)
        while not self._stop.is_set():
            client = kept if keep_alive else httpx.Client(verify=trusting(self.ca), timeout=30)
            try:
                self._get(client)
            except (httpx.RemoteProtocolError, httpx.ConnectError):
                # Closed before any answer: on a kept connection (the idle-close race), or, on
                # a new one, during the TLS handshake with a worker being let go (seen in CI
                # under load; the request never reached the application). Sent again once.
                self.resent += 1
                kept.close()
                kept = httpx.Client(verify=trusting(self.ca), timeout=30)
                try:
                    self._get(kept)
                except httpx.HTTPError as again:
                    self.failures.append(repr(again))
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))
            finally:
                if not keep_alive:
                    client.close()
            time.sleep(0.02)
        kept.close()


def wait_for_certificate(port: int, wanted: x509.Certificate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while served_certificate(port) != wanted:
        assert time.monotonic() < deadline, "the renewed certificate was never served"
        time.sleep(0.2)


def test_sighup_serves_a_renewed_certificate_and_new_settings_dropping_nothing(
    tmp_path: Path,
) -> None:
    ca = certs.certificate(tmp_path / "ca", "test CA", ca=True)
    first = certs.certificate(tmp_path / "first", "server", issuer=ca)
    renewed = certs.certificate(tmp_path / "renewed", "server", issuer=ca)
    cert, key = tmp_path / "tls.pem", tmp_path / "tls-key.pem"
    install(first, cert, key)
    config = tmp_path / "dockyard.yaml"
    config.write_text(f"tls_cert: {cert}\ntls_key: {key}\nworkers: 2\n")
    port = free_port()
    server = RunningRegistry(data_dir=tmp_path / "data", port=port, args=["--config", str(config)])
    url = f"https://127.0.0.1:{port}"
    # RunningRegistry.start waits on plain HTTP; this one speaks TLS only.
    server_start_tls(server, url, ca.cert)
    try:
        assert served_certificate(port) == first.certificate
        repo = unique_repo("reload")
        with httpx.Client(base_url=url, verify=trusting(ca.cert), timeout=30) as client:
            assert client.post(f"/v2/{repo}/blobs/uploads/").status_code == 202
        with Requests(url, ca.cert) as load:
            time.sleep(1)
            install(renewed, cert, key)
            rewrite(config, f"tls_cert: {cert}\ntls_key: {key}\nworkers: 2\nread_only: true\n")
            assert server.proc is not None
            os.kill(server.proc.pid, signal.SIGHUP)
            wait_for_certificate(port, renewed.certificate)
            # Both workers are replaced, one after the other: wait for the second.
            deadline = time.monotonic() + 60
            while "Stopped old worker-2" not in server.log():
                assert time.monotonic() < deadline, server.log()[-2000:]
                time.sleep(0.2)
            time.sleep(1)
        assert load.failures == [], load.failures
        assert load.answered > 20
        # At most one connection closed before its answer per old worker stopped, per loop.
        assert load.resent <= 4, load.resent
        for _ in range(10):  # whichever worker answers, it has the new certificate
            assert served_certificate(port) == renewed.certificate
        with httpx.Client(base_url=url, verify=trusting(ca.cert), timeout=30) as client:
            refused = client.post(f"/v2/{repo}/blobs/uploads/")
            assert refused.status_code == 405 and error_code(refused) == "UNSUPPORTED"
        assert server.proc.poll() is None
    finally:
        server.stop()


def test_sighup_refuses_a_broken_certificate_or_configuration(tmp_path: Path) -> None:
    ca = certs.certificate(tmp_path / "ca", "test CA", ca=True)
    first = certs.certificate(tmp_path / "first", "server", issuer=ca)
    other = certs.certificate(tmp_path / "other", "server", issuer=ca)
    cert, key = tmp_path / "tls.pem", tmp_path / "tls-key.pem"
    install(first, cert, key)
    config = tmp_path / "dockyard.yaml"
    config.write_text(f"tls_cert: {cert}\ntls_key: {key}\nworkers: 1\n")
    port = free_port()
    server = RunningRegistry(data_dir=tmp_path / "data", port=port, args=["--config", str(config)])
    url = f"https://127.0.0.1:{port}"
    server_start_tls(server, url, ca.cert)
    try:
        assert server.proc is not None
        # A certificate whose key is another's: refused, the loaded pair stays in use.
        shutil.copyfile(other.cert, cert)
        os.kill(server.proc.pid, signal.SIGHUP)
        wait_for_log(server, "nothing reloaded: tls_key")
        assert served_certificate(port) == first.certificate
        install(first, cert, key)
        # A configuration that does not validate: refused as a whole.
        rewrite(config, f"tls_cert: {cert}\ntls_key: {key}\nworkers: many\n")
        os.kill(server.proc.pid, signal.SIGHUP)
        wait_for_log(server, "the configuration is refused, nothing reloaded", count=2)
        assert "workers: Input should be a valid integer" in server.log()
        # Where the rate-limit counters live cannot change in place: kept, with a warning,
        # and the rest reloaded.
        rewrite(
            config,
            f"tls_cert: {cert}\ntls_key: {key}\nworkers: 1\nread_only: true\n"
            f"redis_url: redis://127.0.0.1:{free_port()}/0\n",
        )
        os.kill(server.proc.pid, signal.SIGHUP)
        wait_for_log(server, "SIGHUP: redis_url cannot change without a restart")
        wait_for_log(server, "Stopped old worker-1")
        with httpx.Client(base_url=url, verify=trusting(ca.cert), timeout=30) as client:
            refused = client.post(f"/v2/{unique_repo('reload')}/blobs/uploads/")
            assert refused.status_code == 405
        assert server.proc.poll() is None
        assert "Traceback" not in server.log()
    finally:
        server.stop()


def wait_for_log(server: RunningRegistry, text: str, count: int = 1, timeout: float = 60) -> None:
    """Until `text` was logged `count` times."""
    deadline = time.monotonic() + timeout
    while server.log().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{server.log()[-2000:]}"
        time.sleep(0.2)


def server_start_tls(server: RunningRegistry, url: str, ca: Path) -> None:
    """`RunningRegistry.start`, waiting for the registry over HTTPS."""
    import subprocess
    import sys

    server.data_dir.mkdir(parents=True, exist_ok=True)
    server.log_path = server.data_dir.parent / f"server-{server.port}.log"
    log = open(server.log_path, "ab")  # noqa: SIM115 - lives as long as the process
    server.proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dockyard",
            "serve",
            "--listen",
            server.host,
            "--data-dir",
            str(server.data_dir),
            *server.args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/v2/", verify=trusting(ca), timeout=2)
            return
        except httpx.HTTPError:
            assert server.proc.poll() is None, server.log()
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
