"""Running `dockyard` as a user would for the signing tests, and keys written to files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import httpx

from dockyard.core import cosign, keys
from tests.support.images import write_oci_image

PASSWORD = "key-password-1"


def dockyard(
    *args: str,
    home: Path,
    check: bool = True,
    input: str | None = None,
    env: dict[str, str | None] | None = None,
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "HOME": str(home),
        "DOCKER_CONFIG": str(home / ".docker"),
        "COLUMNS": "200",
        "DOCKYARD_KEY_PASSWORD": PASSWORD,
        **{name: value for name, value in (env or {}).items() if value is not None},
    }
    full_env.pop("REGISTRY_AUTH_FILE", None)
    for name, value in (env or {}).items():
        if value is None:
            full_env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=180,
        cwd=home,
        input=input,
    )
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def key_pair(home: Path, name: str) -> tuple[Path, Path]:
    """NAME.key (encrypted with PASSWORD) and NAME.pub in `home`, made by the library."""
    private = keys.generate_private_key()
    private_path, public_path = home / f"{name}.key", home / f"{name}.pub"
    private_path.write_bytes(keys.private_key_pem(private, PASSWORD.encode()))
    public_path.write_bytes(keys.public_key_pem(private))
    return private_path, public_path


def push_image(home: Path, host: str, repo: str, tag: str = "1.0", seed: str = "") -> str:
    layout = home / f"layout-{repo.replace('/', '-')}-{tag}"
    image = write_oci_image(layout, tag, seed=seed or f"{repo}:{tag}", layers=1)
    dockyard("push", f"oci:{layout}:{tag}", f"{host}/{repo}:{tag}", "--quiet", home=home)
    return image.manifest_digest


def get_manifest(url: str, repo: str, reference: str) -> tuple[bytes, httpx.Response]:
    with httpx.Client(base_url=url) as http:
        response = http.get(
            f"/v2/{repo}/manifests/{reference}",
            headers={
                "Accept": "application/vnd.oci.image.manifest.v1+json, "
                "application/vnd.oci.image.index.v1+json"
            },
        )
    return response.content, response


def get_blob(url: str, repo: str, digest: str) -> bytes:
    with httpx.Client(base_url=url, follow_redirects=True) as http:
        response = http.get(f"/v2/{repo}/blobs/{digest}")
        assert response.status_code == 200, response.text
        return response.content


def push_signature_image(
    url: str, repo: str, digest: str, payload: bytes, annotations: dict[str, str]
) -> None:
    """A hand-made signature image under `digest`'s .sig tag: the payload as its one layer."""
    entry = {
        "mediaType": cosign.SIMPLESIGNING,
        "size": len(payload),
        "digest": "sha256:" + hashlib.sha256(payload).hexdigest(),
        "annotations": annotations,
    }
    body, config = cosign.signature_manifest([entry])
    with httpx.Client(base_url=url) as http:
        for blob in (payload, config):
            blob_digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            start = http.post(f"/v2/{repo}/blobs/uploads/")
            assert start.status_code == 202
            done = http.put(start.headers["Location"], params={"digest": blob_digest}, content=blob)
            assert done.status_code == 201, done.text
        put = http.put(
            f"/v2/{repo}/manifests/{'sha256-' + digest.split(':')[1] + '.sig'}",
            content=body,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert put.status_code == 201, put.text
