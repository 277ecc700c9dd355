"""SIGHUP to `dockyard serve`: settings from the config file take effect in the running
workers, and a renewed certificate is served by new ones, while requests run on kept and new
connections, none of them failing or sent twice; a broken certificate or configuration is
refused and the server goes on as it was."""

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

# How long a reload may take on a loaded machine: each new worker's start (20 s and more on a
# loaded 2-core machine) and up to the header timeout (10 s) for the old one's connections,
# or each worker's new application started in place.
REPLACED = 300.0


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
    """GET /v2/ in `loops` pairs of loops, one over a keep-alive connection and one over new
    connections each time, counting answers and failures.

    With `resend`, a request whose connection closed before any answer is sent again, once,
    on a new connection, and counted (`resent`): HTTP/1.1's own race when a server closes a
    kept connection as the client sends on it, which the registries' clients (Go's transport
    in docker, podman, containerd, crane) meet the same way, and a new connection whose TLS
    handshake a worker being stopped drops. Without it, every error is a failure."""

    def __init__(self, url: str, ca: Path, *, loops: int = 2, resend: bool = False) -> None:
        self.url, self.ca, self.resend = url, ca, resend
        self.failures: list[str] = []
        self.answered = 0
        self.resent = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(keep_alive,))
            for _ in range(loops)
            for keep_alive in (True, False)
        ]

    def __enter__(self) -> Requests:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def wait_for_answers(self, count: int, timeout: float = 120) -> None:
        """Until `count` more requests were answered than now."""
        target = self.answered + count
        deadline = time.monotonic() + timeout
        while self.answered < target:
            assert time.monotonic() < deadline, f"{self.answered} answered, {self.failures}"
            time.sleep(0.05)

    def _get(self, client: httpx.Client) -> None:
        response = client.get(self.url + "/v2/")
        if response.status_code != 200:
            self.failures.append(f"{response.status_code} {response.text[:100]}")
        self.answered += 1

    def _run(self, keep_alive: bool) -> None:
        kept = httpx.Client(verify=trusting(self.ca), timeout=60)
        while not self._stop.is_set():
            client = kept if keep_alive else httpx.Client(verify=trusting(self.ca), timeout=60)
            try:
                self._get(client)
            except (httpx.RemoteProtocolError, httpx.ConnectError) as exc:
                if not self.resend:
                    self.failures.append(repr(exc))
                    continue
                # Closed before any answer: sent again once, on a new connection.
                self.resent += 1
                kept.close()
                kept = httpx.Client(verify=trusting(self.ca), timeout=60)
                try:
                    self._get(kept)
                except httpx.HTTPError as again:
                    self.failures.append(repr(again))
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))
            finally:
                if not keep_alive:
                    client.close()
            time.sleep(0.01)
        kept.close()


def worker_pids(server: RunningRegistry) -> set[int]:
    """The pids of the serving process's children (its workers)."""
    assert server.proc is not None
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == server.proc.pid:
            pids.add(int(stat.parent.name))
    return pids


def test_sighup_reloads_settings_in_place_dropping_nothing(tmp_path: Path) -> None:
    """Settings without a new certificate: the workers take them in place, twice over, while
    requests run on kept and new connections; not one fails or needs sending again."""
    ca = certs.certificate(tmp_path / "ca", "test CA", ca=True)
    first = certs.certificate(tmp_path / "first", "server", issuer=ca)
    cert, key = tmp_path / "tls.pem", tmp_path / "tls-key.pem"
    install(first, cert, key)
    config = tmp_path / "dockyard.yaml"
    config.write_text(f"tls_cert: {cert}\ntls_key: {key}\nworkers: 2\n")
    port = free_port()
    server = RunningRegistry(data_dir=tmp_path / "data", port=port, args=["--config", str(config)])
    url = f"https://127.0.0.1:{port}"
    server_start_tls(server, url, ca.cert)
    try:
        assert server.proc is not None
        wait_for_log(server, "Started worker-2")
        workers = worker_pids(server)
        assert len(workers) == 2, workers
        repo = unique_repo("reload")
        with Requests(url, ca.cert, loops=2) as load:
            load.wait_for_answers(40)
            rewrite(config, f"tls_cert: {cert}\ntls_key: {key}\nworkers: 2\nread_only: true\n")
            os.kill(server.proc.pid, signal.SIGHUP)
            wait_for_log(server, "reloaded its settings in place", count=2, timeout=REPLACED)
            load.wait_for_answers(40)
            with httpx.Client(base_url=url, verify=trusting(ca.cert), timeout=60) as client:
                for _ in range(6):  # whichever worker answers, on new connections
                    refused = client.post(f"/v2/{repo}/blobs/uploads/")
                    assert refused.status_code == 405 and error_code(refused) == "UNSUPPORTED"
                    client.cookies.clear()
            # And back: the application replaced first is gone, the new one takes writes.
            rewrite(config, f"tls_cert: {cert}\ntls_key: {key}\nworkers: 2\n")
            os.kill(server.proc.pid, signal.SIGHUP)
            wait_for_log(server, "reloaded its settings in place", count=4, timeout=REPLACED)
            load.wait_for_answers(40)
        assert load.failures == [], load.failures
        assert load.resent == 0
        for _ in range(6):
            with httpx.Client(base_url=url, verify=trusting(ca.cert), timeout=60) as client:
                assert client.post(f"/v2/{repo}/blobs/uploads/").status_code == 202
        assert worker_pids(server) == workers
        log = server.log()
        assert "Respawning" not in log and "Stopping old worker" not in log
        assert log.count("the workers take them in place") == 2
        assert "Traceback" not in log
        assert server.proc.poll() is None
    finally:
        server.stop()


def test_sighup_serves_a_renewed_certificate_and_new_settings_dropping_nothing(
    tmp_path: Path,
) -> None:
    """A new certificate needs new workers (granian loads it when a worker starts), twice
    over: new connections are moved to each new worker before the old one stops, and its
    kept ones end after an answer that says so (`dockyard.cli.handover`); not one request
    fails or needs sending again."""
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
        assert server.proc is not None
        assert served_certificate(port) == first.certificate
        repo = unique_repo("reload")
        with httpx.Client(base_url=url, verify=trusting(ca.cert), timeout=60) as client:
            assert client.post(f"/v2/{repo}/blobs/uploads/").status_code == 202
        with Requests(url, ca.cert, loops=2) as load:
            load.wait_for_answers(40)
            install(renewed, cert, key)
            rewrite(config, f"tls_cert: {cert}\ntls_key: {key}\nworkers: 2\nread_only: true\n")
            os.kill(server.proc.pid, signal.SIGHUP)
            # Both workers are replaced, one after the other, each started and its
            # predecessor's connections ended first: a loaded machine takes its time.
            wait_for_log(server, "Stopped old worker-2", timeout=REPLACED)
            for _ in range(6):  # whichever worker answers, it has the renewed certificate
                assert served_certificate(port) == renewed.certificate
            load.wait_for_answers(40)
            install(first, cert, key)
            os.kill(server.proc.pid, signal.SIGHUP)
            wait_for_log(server, "Stopped old worker-2", count=2, timeout=REPLACED)
            load.wait_for_answers(40)
        assert load.failures == [], load.failures
        assert load.resent == 0
        for _ in range(10):  # whichever worker answers, it has the certificate installed
            assert served_certificate(port) == first.certificate
        with httpx.Client(base_url=url, verify=trusting(ca.cert), timeout=60) as client:
            refused = client.post(f"/v2/{repo}/blobs/uploads/")
            assert refused.status_code == 405 and error_code(refused) == "UNSUPPORTED"
        log = server.log()
        assert log.count("replacing the workers for the new certificate") == 2
        assert "new connections still reach" not in log and "Killing" not in log
        assert "Traceback" not in log
        assert len(worker_pids(server)) == 2
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
        wait_for_log(server, "reloaded its settings in place", timeout=REPLACED)
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
