"""HTTPS served directly: a certificate made by the test, clients that verify it."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.images import write_oci_image
from tests.support.peers import containers_env
from tests.support.server import free_port


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextlib.contextmanager
def tls_server(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, ssl.SSLContext, Path]]:
    """`dockyard serve` over TLS with a fresh self-signed certificate, answering on `/v2/`:
    yields its https base URL, a context trusting the certificate, and the certificate.
    Stops the whole process group (the workers too), also when the start failed."""
    cert, key = self_signed(folder)
    port = free_port()
    log_path = folder / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "dockyard", "serve", "--listen", f"127.0.0.1:{port}"),
                *("--data-dir", str(folder / "data"), "--tls-cert", str(cert)),
                *("--tls-key", str(key), *args),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    base = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 60  # a loaded machine starts slowly
        while True:
            try:
                httpx.get(base + "/v2/", verify=trust, timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()
                time.sleep(0.1)
        yield base, trust, cert
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_https_with_verifying_clients(tmp_path: Path) -> None:
    with tls_server(tmp_path) as (base, trust, cert):
        port = int(base.rsplit(":", 1)[1])
        assert httpx.get(base + "/v2/", verify=trust).status_code == 200
        # A client that does not trust the certificate refuses the server.
        try:
            httpx.get(base + "/v2/")
            raise AssertionError("an untrusted certificate was accepted")
        except httpx.ConnectError:
            pass
        # skopeo, verifying against the certificate as a CA in its cert dir.
        image = write_oci_image(tmp_path / "img", "v1")
        certs = tmp_path / "certs"
        certs.mkdir()
        (certs / "ca.crt").write_bytes(cert.read_bytes())
        with containers_env(tmp_path / "ce") as ce:
            ce.skopeo(
                "copy",
                "--dest-cert-dir",
                str(certs),
                f"oci:{tmp_path / 'img'}:v1",
                f"docker://127.0.0.1:{port}/tls/app:v1",
            )
            raw = ce.skopeo(
                "inspect",
                "--raw",
                "--cert-dir",
                str(certs),
                f"docker://127.0.0.1:{port}/tls/app:v1",
                text=False,
            )
        assert raw.stdout == image.manifest_bytes
        # HTTP/2 is offered to clients that ask for it.
        with httpx.Client(http2=True, verify=trust) as client:
            assert client.get(base + "/v2/").http_version == "HTTP/2"
