"""Issue 14, TLS: serving it, the client reaching it on any host, trusting a private CA."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import os
import re
import shlex
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.flaky_proxy import FlakyProxy
from tests.support.images import write_oci_image
from tests.support.peers import containers_env, require
from tests.support.server import RunningRegistry, free_port

ADMIN_PASSWORD = "tls-admin-password-1"
NETWORK_IP = "192.0.2.2"  # only ever formatted into text, never connected to
# A name the client takes for a network host (it is no loopback address as written) that the
# system's resolver still reads as 127.0.0.1: the test's "remote" server stays on loopback.
LOOKS_REMOTE = "127.1"


# -- certificates ------------------------------------------------------------------------------


@dataclass
class Issued:
    cert: Path
    key: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(
    folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Issued:
    folder.mkdir(parents=True, exist_ok=True)
    issued = Issued(folder / f"{stem}.pem", folder / f"{stem}-key.pem")
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    issued.key.write_bytes(_key_pem(key))
    return issued


def _builder(
    subject: str,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name | None = None,
    *,
    valid: tuple[dt.timedelta, dt.timedelta] = (dt.timedelta(minutes=-5), dt.timedelta(days=1)),
) -> x509.CertificateBuilder:
    """A certificate for `subject` valid from now+valid[0] to now+valid[1], issued by `issuer`
    (itself when None)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name if issuer is None else issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid[0])
        .not_valid_after(now + valid[1])
    )


def make_ca(folder: Path) -> tuple[Issued, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder("Dockyard test CA", key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _write(folder, "ca", cert, key), cert, key


def issue(
    folder: Path,
    stem: str,
    ca: tuple[Issued, x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    client: bool = False,
) -> Issued:
    """A leaf signed by `ca`, for 127.0.0.1, localhost and this machine's name."""
    _, ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(stem, key.public_key(), ca_cert.subject)
    if not client:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                    x509.DNSName(socket.gethostname()),
                ]
            ),
            critical=False,
        )
    return _write(folder, stem, builder.sign(ca_key, hashes.SHA256()), key)


def self_signed(folder: Path) -> Issued:
    """A lab certificate that is its own CA, for 127.0.0.1 and this machine's name."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder("lab registry", key.public_key())
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName(socket.gethostname()),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _write(folder, "lab", cert, key)


# -- servers and the CLI -----------------------------------------------------------------------


class TlsRegistry(RunningRegistry):
    """`dockyard serve --tls-cert --tls-key` on 127.0.0.1, waited for over HTTPS."""

    trust: Path

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    def start(self) -> TlsRegistry:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dockyard",
                "serve",
                "--listen",
                self.host,
                "--data-dir",
                str(self.data_dir),
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        context = ssl.create_default_context(cafile=str(self.trust))
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(self.url + "/v2/", verify=context, timeout=1)
                return self
            except httpx.HTTPError:
                assert self.proc.poll() is None and time.monotonic() < deadline, (
                    self.log_path.read_text()
                )
                time.sleep(0.1)


@contextmanager
def tls_registry(
    folder: Path, server: Issued, trust: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[TlsRegistry]:
    registry = TlsRegistry(
        folder / "data",
        free_port(),
        args=["--tls-cert", str(server.cert), "--tls-key", str(server.key), *args],
        env={"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env or {})},
    )
    registry.trust = trust
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


def dockyard(
    home: Path,
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """The real CLI as a user runs it, with `home` as $HOME (so ~/.docker is the test's)."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DOCKYARD_CA_CERT", "SSL_CERT_FILE", "DOCKER_CONFIG")
    }
    environment.update(HOME=str(home), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.fixture
def ca(tmp_path: Path) -> tuple[Issued, x509.Certificate, ec.EllipticCurvePrivateKey]:
    return make_ca(tmp_path / "pki")


# -- the client reaches a TLS registry on loopback ---------------------------------------------


def test_login_to_a_tls_registry_on_loopback(tmp_path: Path, home: Path, ca: tuple) -> None:
    server_cert = issue(tmp_path / "pki", "server", ca)
    with tls_registry(tmp_path, server_cert, ca[0].cert, "--auth") as registry:
        for name in (registry.host, f"localhost:{registry.port}", f"https://{registry.host}"):
            result = dockyard(
                home,
                "login",
                name,
                "-u",
                "admin",
                "--password-stdin",
                "--ca-cert",
                str(ca[0].cert),
                stdin=ADMIN_PASSWORD,
            )
            assert result.returncode == 0, result.stderr
            assert "answered over HTTPS" in result.stdout and "Login Succeeded" in result.stdout
        # The stored login works for the image commands, over HTTPS too.
        image = tmp_path / "img"
        write_oci_image(image, "v1")
        pushed = dockyard(
            home,
            "push",
            "-q",
            "--ca-cert",
            str(ca[0].cert),
            f"oci:{image}:v1",
            f"{registry.host}/tls/app:v1",
        )
        assert pushed.returncode == 0, pushed.stderr
        listed = dockyard(home, "tags", "--ca-cert", str(ca[0].cert), f"{registry.host}/tls/app")
        assert listed.stdout.split() == ["v1"], listed.stderr
        assert "plain HTTP" not in pushed.stderr + listed.stderr


def test_insecure_skips_the_certificate_check_but_keeps_tls(tmp_path: Path, home: Path) -> None:
    lab = self_signed(tmp_path / "pki")
    with tls_registry(tmp_path, lab, lab.cert, "--auth") as registry:
        refused = dockyard(
            home, "login", registry.host, "-u", "admin", "--password-stdin", stdin=ADMIN_PASSWORD
        )
        assert refused.returncode != 0 and "certificate verification failed" in refused.stderr
        assert "Traceback" not in refused.stderr
        result = dockyard(
            home,
            "login",
            "--insecure",
            registry.host,
            "-u",
            "admin",
            "--password-stdin",
            stdin=ADMIN_PASSWORD,
        )
        assert result.returncode == 0, result.stderr
        assert "answered over HTTPS" in result.stdout


def test_plain_http_on_loopback_still_works_and_says_so(tmp_path: Path, home: Path) -> None:
    registry = RunningRegistry(
        tmp_path / "data",
        free_port(),
        args=["--auth"],
        env={"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
    ).start()
    try:
        started = time.monotonic()
        result = dockyard(
            home, "login", registry.host, "-u", "admin", "--password-stdin", stdin=ADMIN_PASSWORD
        )
        assert result.returncode == 0, result.stderr
        assert "answered over plain HTTP" in result.stdout
        listed = dockyard(home, "catalog", registry.host)
        assert listed.returncode == 0, listed.stderr
        # The fallback costs one refused handshake, not a timeout.
        assert time.monotonic() - started < 20
    finally:
        registry.stop()


class Recorder(http.server.BaseHTTPRequestHandler):
    """A plain HTTP server that keeps every byte a client sent it and answers 401."""

    received: list[bytes] = []

    def handle(self) -> None:
        self.connection.settimeout(5)
        try:
            data = self.connection.recv(65536)
        except OSError:
            data = b""
        type(self).received.append(data)
        self.connection.sendall(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"
            b'WWW-Authenticate: Basic realm="r"\r\nConnection: close\r\n\r\n'
        )


def test_no_plain_http_to_a_network_host_unless_insecure(home: Path) -> None:
    Recorder.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = f"{LOOKS_REMOTE}:{server.server_address[1]}"
    try:
        refused = dockyard(
            home, "login", host, "-u", "admin", "--password-stdin", stdin=ADMIN_PASSWORD
        )
        assert refused.returncode != 0
        assert "does not speak TLS" in refused.stderr and "--insecure" in refused.stderr
        assert Recorder.received and all(data[:1] == b"\x16" for data in Recorder.received)
        assert not any(
            ADMIN_PASSWORD.encode() in data or b"Authorization" in data
            for data in Recorder.received
        )
        # Marked insecure, the host is reached over plain HTTP after the TLS attempt.
        Recorder.received = []
        tried = dockyard(
            home,
            "login",
            "--insecure",
            host,
            "-u",
            "admin",
            "--password-stdin",
            stdin=ADMIN_PASSWORD,
        )
        assert tried.returncode == 4, tried.stderr
        assert any(data.startswith(b"GET /v2/ HTTP/1.1") for data in Recorder.received)
        assert "answered over plain HTTP" not in tried.stdout
        # The image commands say so when a network host got plain HTTP.
        listed = dockyard(home, "catalog", "--insecure", host)
        assert listed.returncode == 4
        assert f"{host} does not speak TLS; used plain HTTP" in listed.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_fallback_is_quick_when_the_server_waits_for_a_request_line(
    tmp_path: Path, home: Path
) -> None:
    """A plain HTTP front that waits for a whole request head never answers a ClientHello:
    the TLS attempt gives up after a few seconds, not the 15 s connect timeout."""
    registry = RunningRegistry(tmp_path / "data", free_port()).start()
    try:
        with FlakyProxy(registry.port) as proxy:
            started = time.monotonic()
            listed = dockyard(home, "catalog", proxy.host)
            assert listed.returncode == 0, listed.stderr
            assert time.monotonic() - started < 10
            assert ("GET", "/v2/") in proxy.requests
    finally:
        registry.stop()


# -- trusting a private CA ---------------------------------------------------------------------


def test_every_place_a_private_ca_can_be_trusted(tmp_path: Path, home: Path, ca: tuple) -> None:
    server_cert = issue(tmp_path / "pki", "server", ca)
    with tls_registry(tmp_path, server_cert, ca[0].cert) as registry:
        image = tmp_path / "img"
        write_oci_image(image, "v1")
        untrusted = dockyard(home, "push", "-q", f"oci:{image}:v1", f"{registry.host}/ca/app:v1")
        assert untrusted.returncode == 1
        for place in (
            "--ca-cert",
            "DOCKYARD_CA_CERT",
            f"~/.docker/certs.d/{registry.host}/ca.crt",
            f"/etc/containers/certs.d/{registry.host}/ca.crt",
        ):
            assert place in untrusted.stderr, untrusted.stderr
        pushed = dockyard(
            home,
            "push",
            "-q",
            "--ca-cert",
            str(ca[0].cert),
            f"oci:{image}:v1",
            f"{registry.host}/ca/app:v1",
        )
        assert pushed.returncode == 0, pushed.stderr
        by_env = dockyard(
            home, "tags", f"{registry.host}/ca/app", env={"DOCKYARD_CA_CERT": str(ca[0].cert)}
        )
        assert by_env.stdout.split() == ["v1"], by_env.stderr
        docker_dir = home / ".docker" / "certs.d" / registry.host
        docker_dir.mkdir(parents=True)
        (docker_dir / "ca.crt").write_bytes(ca[0].cert.read_bytes())
        pulled = dockyard(
            home, "pull", "-q", f"{registry.host}/ca/app:v1", f"oci:{tmp_path / 'out'}:v1"
        )
        assert pulled.returncode == 0, pulled.stderr
        (docker_dir / "ca.crt").unlink()
        certs_d = Path("/etc/containers/certs.d")
        made_certs_d = not certs_d.exists()
        system_dir = certs_d / registry.host
        system_dir.mkdir(parents=True)
        try:
            (system_dir / "ca.crt").write_bytes(ca[0].cert.read_bytes())
            listed = dockyard(home, "catalog", registry.host)
            assert listed.stdout.split() == ["ca/app"], listed.stderr
        finally:
            (system_dir / "ca.crt").unlink()
            system_dir.rmdir()
            if made_certs_d:
                certs_d.rmdir()
        # A CA file that is not one says so, naming it.
        garbage = tmp_path / "not-a-ca.pem"
        garbage.write_text("hello\n")
        bad = dockyard(home, "catalog", "--ca-cert", str(garbage), registry.host)
        assert bad.returncode == 1 and str(garbage) in bad.stderr
        assert "Traceback" not in bad.stderr
        # skopeo trusting the same CA sees what dockyard pushed.
        require("skopeo")
        with containers_env(tmp_path / "ce") as ce:
            certs = tmp_path / "skopeo-certs"
            certs.mkdir()
            (certs / "ca.crt").write_bytes(ca[0].cert.read_bytes())
            raw = ce.skopeo(
                "inspect", "--raw", "--cert-dir", str(certs), f"docker://{registry.host}/ca/app:v1"
            )
            assert json.loads(raw.stdout)["schemaVersion"] == 2


class MutualTls(http.server.BaseHTTPRequestHandler):
    """A registry front that answers only clients presenting a certificate of the test CA."""

    def do_GET(self) -> None:
        body = b"{}" if self.path == "/v2/" else json.dumps({"repositories": ["mtls/ok"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_client_certificate_from_certs_d(tmp_path: Path, home: Path, ca: tuple) -> None:
    server_cert = issue(tmp_path / "pki", "server", ca)
    client_cert = issue(tmp_path / "pki", "client", ca, client=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca[0].cert))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(server_cert.cert), str(server_cert.key))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MutualTls)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        folder = home / ".docker" / "certs.d" / host
        folder.mkdir(parents=True)
        (folder / "ca.crt").write_bytes(ca[0].cert.read_bytes())
        without = dockyard(home, "catalog", host, timeout=60)
        assert without.returncode != 0 and "mtls/ok" not in without.stdout
        (folder / "client.cert").write_bytes(client_cert.cert.read_bytes())
        (folder / "client.key").write_bytes(client_cert.key.read_bytes())
        listed = dockyard(home, "catalog", host)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split() == ["mtls/ok"]
    finally:
        server.shutdown()
        server.server_close()


# -- the server's certificate and key, checked -------------------------------------------------


def test_a_bad_certificate_or_key_is_one_line(tmp_path: Path, home: Path, ca: tuple) -> None:
    one = issue(tmp_path / "pki", "one", ca)
    other = issue(tmp_path / "pki", "other", ca)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text(
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
    )
    locked = tmp_path / "locked-key.pem"
    key = serialization.load_pem_private_key(one.key.read_bytes(), password=None)
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    expired = expired_certificate(tmp_path / "old")
    cases = [
        (one.cert, other.key, [str(other.key), str(one.cert), "does not match"]),
        (garbage, one.key, [str(garbage), "not a PEM certificate"]),
        (one.cert, garbage, [str(garbage), "not a PEM private key"]),
        (one.cert, locked, [str(locked), "encrypted"]),
        (expired.cert, expired.key, [str(expired.cert), "expired"]),
    ]
    for cert, key, said in cases:
        port = free_port()
        served = dockyard(
            home,
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(tmp_path / "data"),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            timeout=30,
        )
        checked = dockyard(
            home,
            "config",
            "check",
            "--data-dir",
            str(tmp_path / "data"),
            env={"DOCKYARD_TLS_CERT": str(cert), "DOCKYARD_TLS_KEY": str(key)},
        )
        for result in (served, checked):
            assert result.returncode == 2, result.stdout + result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
            assert all(part in lines[0] for part in said), lines[0]
    # A full chain (the certificate, then its CA) is what a real certificate comes as.
    fullchain = tmp_path / "fullchain.pem"
    fullchain.write_bytes(one.cert.read_bytes() + ca[0].cert.read_bytes())
    fine = dockyard(
        home,
        "config",
        "check",
        "--data-dir",
        str(tmp_path / "data"),
        env={"DOCKYARD_TLS_CERT": str(fullchain), "DOCKYARD_TLS_KEY": str(one.key)},
    )
    assert fine.returncode == 0 and "configuration is valid" in fine.stdout


def expired_certificate(folder: Path) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _builder(
        "old", key.public_key(), valid=(dt.timedelta(days=-30), dt.timedelta(days=-1))
    ).sign(key, hashes.SHA256())
    return _write(folder, "old", cert, key)


# -- the first-start hint ----------------------------------------------------------------------


def _hinted_commands(log: str) -> list[str]:
    return re.findall(r"^\s+(dockyard login .+?)\s*$", log, re.MULTILINE)


@pytest.mark.parametrize("tls", [False, True])
def test_first_start_on_every_interface_prints_logins_that_work(
    tmp_path: Path, home: Path, tls: bool
) -> None:
    port = free_port()
    args = ["--listen", f"0.0.0.0:{port}", "--data-dir", str(tmp_path / "data")]
    scheme = "http"
    if tls:
        lab = self_signed(tmp_path / "pki")
        args += ["--tls-cert", str(lab.cert), "--tls-key", str(lab.key)]
        scheme = "https"
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        env = {k: v for k, v in os.environ.items() if k != "DOCKYARD_ADMIN_PASSWORD"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard", "serve", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{scheme}://127.0.0.1:{port}/v2/", verify=False, timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
        text = log_path.read_text()
        password = re.search(r"the password\s+(\S+)\s+It is shown only this once", text)[1]
        commands = _hinted_commands(text)
        assert commands, text
        assert not any("0.0.0.0" in command for command in commands), text
        for command in commands:
            argv = shlex.split(command)[1:]
            result = dockyard(home, *argv, "--password-stdin", stdin=password)
            assert result.returncode == 0, (command, result.stderr)
            assert ("answered over HTTPS" if tls else "Login Succeeded") in result.stdout
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=15)


# -- the README's recipe, with the peers it names ----------------------------------------------


def test_readme_lab_certificate_trusted_by_dockyard_crane_and_regctl(
    tmp_path: Path, home: Path
) -> None:
    """The openssl command of the README (for 127.0.0.1), served, trusted as it says."""
    pki = tmp_path / "pki"
    pki.mkdir()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "365",
            "-keyout",
            str(pki / "registry.key"),
            "-out",
            str(pki / "registry.crt"),
            "-subj",
            "/CN=registry.lan",
            "-addext",
            "subjectAltName=DNS:registry.lan,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    lab = Issued(pki / "registry.crt", pki / "registry.key")
    with tls_registry(tmp_path, lab, lab.cert) as registry:
        image = tmp_path / "img"
        write_oci_image(image, "v1")
        pushed = dockyard(
            home,
            "push",
            "-q",
            "--ca-cert",
            str(lab.cert),
            f"oci:{image}:v1",
            f"{registry.host}/lab/app:v1",
        )
        assert pushed.returncode == 0, pushed.stderr
        digest = pushed.stdout.strip()
        crane = require("crane")
        env = {**os.environ, "SSL_CERT_FILE": str(lab.cert), "HOME": str(home)}
        seen = subprocess.run(
            [crane, "digest", f"{registry.host}/lab/app:v1"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert seen.stdout.strip() == digest
        regctl = require("regctl")
        env = {**os.environ, "HOME": str(home)}
        subprocess.run(
            [regctl, "registry", "set", registry.host, "--cacert", lab.cert.read_text()],
            env=env,
            check=True,
            capture_output=True,
        )
        seen = subprocess.run(
            [regctl, "image", "digest", f"{registry.host}/lab/app:v1"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert seen.stdout.strip() == digest


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"listen": f"{NETWORK_IP}:5000"}, f"dockyard login --insecure {NETWORK_IP}:5000 -u admin"),
        ({"listen": "127.0.0.1:5000"}, "dockyard login 127.0.0.1:5000 -u admin"),
        (
            {"listen": "0.0.0.0:5000", "public_url": "https://registry.example.org"},
            "dockyard login registry.example.org -u admin",
        ),
        (
            {"listen": "[::]:5000", "public_url": "http://10.1.2.3:5000"},
            "dockyard login --insecure 10.1.2.3:5000 -u admin",
        ),
    ],
)
def test_first_start_hint_for_each_address(options: dict, expected: str) -> None:
    from dockyard.cli.serve import login_command
    from dockyard.config import load_settings

    assert login_command(load_settings(None, options)) == expected


def test_first_start_hint_with_a_ca_signed_certificate(tmp_path: Path, ca: tuple) -> None:
    """A certificate a CA signed needs no --ca-cert on the clients that trust that CA."""
    from dockyard.cli.serve import login_command
    from dockyard.config import load_settings

    server_cert = issue(tmp_path / "pki", "server", ca)
    settings = load_settings(
        None,
        {"listen": "127.0.0.1:5000", "tls_cert": server_cert.cert, "tls_key": server_cert.key},
    )
    assert login_command(settings) == "dockyard login 127.0.0.1:5000 -u admin"


def test_concurrent_first_requests_agree_on_the_scheme(tmp_path: Path, ca: tuple) -> None:
    """Many requests at once on a fresh client: one probe decides, every request uses it."""
    import asyncio

    from dockyard.client.registry import RegistryClient

    async def burst(host: str, **options: object) -> tuple[str | None, list[list[str]]]:
        async with RegistryClient(host, **options) as client:  # type: ignore[arg-type]
            answers = await asyncio.gather(*(client.catalog() for _ in range(16)))
            return client.scheme, list(answers)

    plain = RunningRegistry(tmp_path / "plain", free_port()).start()
    try:
        scheme, answers = asyncio.run(burst(plain.host))
        assert scheme == "http" and answers == [[]] * 16
    finally:
        plain.stop()
    server_cert = issue(tmp_path / "pki", "server", ca)
    with tls_registry(tmp_path, server_cert, ca[0].cert) as registry:
        scheme, answers = asyncio.run(burst(registry.host, ca_certs=[ca[0].cert]))
        assert scheme == "https" and answers == [[]] * 16


def test_a_pull_through_cache_takes_the_upstream_url_scheme_as_written(
    tmp_path: Path, home: Path, ca: tuple
) -> None:
    """An https:// upstream is reached over TLS, trusting a CA from certs.d, and never over
    plain HTTP even on loopback; an http:// upstream over plain HTTP."""
    server_cert = issue(tmp_path / "pki", "server", ca)
    image = tmp_path / "img"
    write_oci_image(image, "v1")
    plain = RunningRegistry(tmp_path / "plain", free_port()).start()
    try:
        with tls_registry(tmp_path / "up", server_cert, ca[0].cert) as upstream:
            for target in (upstream.host, plain.host):
                pushed = dockyard(
                    home, "push", "-q", "--ca-cert", str(ca[0].cert), f"oci:{image}:v1",
                    f"{target}/lib/app:v1",
                )  # fmt: skip
                assert pushed.returncode == 0, pushed.stderr
            folder = home / ".docker" / "certs.d" / upstream.host
            folder.mkdir(parents=True)
            (folder / "ca.crt").write_bytes(ca[0].cert.read_bytes())
            cache = RunningRegistry(
                tmp_path / "cache",
                free_port(),
                args=[
                    "--proxy", f"tls=https://{upstream.host}",
                    "--proxy", f"wrong=https://{plain.host}",
                    "--proxy", f"plain=http://{plain.host}",
                ],
                env={"HOME": str(home)},
            ).start()  # fmt: skip
            try:
                for name, works in (("tls", True), ("plain", True), ("wrong", False)):
                    pulled = dockyard(
                        home, "pull", "-q", f"{cache.host}/{name}/lib/app:v1",
                        f"oci:{tmp_path / name}:v1",
                    )  # fmt: skip
                    assert (pulled.returncode == 0) == works, (name, pulled.stderr)
            finally:
                cache.stop()
    finally:
        plain.stop()
