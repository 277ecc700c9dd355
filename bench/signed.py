"""The `signed` benchmark: manifest GETs of a signed image in a repository under an enforced
signature policy, against the same image in an unprotected repository of the same server
(issue 18: a signed pull costs at most 1.2x an unsigned one).

Both repositories hold the image and the same cosign signature, on both servers, so the figures
differ only by the policy check; Distribution, which has no policies, gives the noise floor.
The signature is made here with `cryptography`, in cosign's key-based format, so that the
benchmark depends on no Dockyard code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench import load
from bench.ops import MANIFEST_ACCEPT, OCI_MANIFEST, BenchError, Client, push_image, small_image
from bench.servers import Dockyard, Server

OPEN, GUARDED = "bench/signed-open", "bench/signed-guarded"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
ZERO_TIME = "0001-01-01T00:00:00Z"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def signature_image(
    key: ec.EllipticCurvePrivateKey, host: str, repo: str, digest: str
) -> tuple[bytes, bytes, bytes]:
    """(payload, config, manifest) of a cosign signature of `digest` in `host/repo`."""
    payload = _compact(
        {
            "critical": {
                "identity": {"docker-reference": f"{host}/{repo}"},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    )
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    config = _compact(
        {
            "architecture": "",
            "created": ZERO_TIME,
            "history": [{"created": ZERO_TIME}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [_sha256(payload)]},
            "config": {},
        }
    )
    manifest = _compact(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": _sha256(config)},
            "layers": [
                {
                    "mediaType": SIMPLESIGNING,
                    "size": len(payload),
                    "digest": _sha256(payload),
                    "annotations": {"dev.cosignproject.cosign/signature": signature},
                }
            ],
        }
    )
    return payload, config, manifest


def protect(server: Dockyard, repo: str, public_pem: bytes) -> None:
    """`dockyard policy signed REPO --key PUB` on the server's data folder while it serves."""
    with tempfile.TemporaryDirectory(prefix="bench-signed-") as tmp:
        key_file = Path(tmp) / "bench.pub"
        key_file.write_bytes(public_pem)
        result = subprocess.run(
            [sys.executable, "-m", "dockyard", "policy", "signed", repo, "--key", str(key_file)],
            env={**server.env(), "DOCKYARD_DATA_DIR": str(server.workdir / "data")},
            capture_output=True,
            text=True,
            timeout=120,
        )
    if result.returncode != 0:
        raise BenchError(f"setting the signature policy failed: {result.stderr}")


def prepare(server: Server) -> None:
    """The image and its signature in both repositories; on Dockyard, the policy on one."""
    key = ec.generate_private_key(ec.SECP256R1())
    image = small_image(label="signed")
    host = server.url.removeprefix("http://")
    digest = _sha256(image.manifest)
    with Client(server.url) as client:
        for repo in (OPEN, GUARDED):
            push_image(client, repo, "latest", image)
            payload, config, manifest = signature_image(key, host, repo, digest)
            client.push_small(repo, payload, _sha256(payload))
            client.push_small(repo, config, _sha256(config))
            client.put_manifest(repo, "sha256-" + digest.split(":")[1] + ".sig", manifest)
        if isinstance(server, Dockyard):
            public = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            protect(server, GUARDED, public)
            # The policy is on: an unsigned image there is refused, the signed one served.
            push_image(client, GUARDED, "unsigned", small_image(label="unsigned"))
            accept = {"Accept": MANIFEST_ACCEPT}
            refused = client.http.get(f"/v2/{GUARDED}/manifests/unsigned", headers=accept)
            served = client.http.get(f"/v2/{GUARDED}/manifests/latest", headers=accept)
            if refused.status_code != 403 or served.status_code != 200:
                raise BenchError(
                    f"the policy is not in force: unsigned {refused.status_code}, "
                    f"signed {served.status_code}"
                )


def manifest_get(
    server: Server, repo: str, connections: int, threads: int, seconds: float
) -> load.LoadResult:
    return load.run(
        f"{server.url}/v2/{repo}/manifests/latest",
        headers={"Accept": MANIFEST_ACCEPT},
        connections=connections,
        threads=threads,
        seconds=seconds,
    )
