"""Shared pieces of the accounts tests: an auth-enabled registry, admin commands on its data
folder, the token dance real clients do, and small pushes over plain HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from dockyard.auth.gate import ACCESS_VERSION_SECONDS
from dockyard.cli.main import app
from tests.support.server import RunningRegistry, register_secret

ADMIN_PASSWORD = "admin-Pa55word"
register_secret(ADMIN_PASSWORD)
SERVICE = "dockyard"
WINDOW = 21600
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

_runner = CliRunner()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a JWT, without verifying anything."""

    def part(text: str) -> dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))

    header, payload, _ = token.split(".")
    return part(header), part(payload)


def errors_of(response: httpx.Response) -> list[dict[str, Any]]:
    return response.json()["errors"]


def code_of(response: httpx.Response) -> str:
    return errors_of(response)[0]["code"]


@dataclass
class AuthRegistry:
    """A `dockyard serve --auth` process and its data folder."""

    server: RunningRegistry

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def challenge(self, scope: str | None = None, error: str | None = None) -> str:
        """The exact WWW-Authenticate value the registry should send."""
        text = f'Bearer realm="{self.realm}",service="{SERVICE}"'
        if scope:
            text += f',scope="{scope}"'
        if error:
            text += f',error="{error}"'
        return text

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kwargs)

    def admin(self, *args: str, input: str | None = None, ok: bool = True) -> Any:
        """An admin command (`dockyard user add ...`) on this registry's data folder, run
        in-process: the same code as `python -m dockyard ...`, without a new interpreter."""
        result = _runner.invoke(app, [*args, "--data-dir", str(self.data_dir)], input=input)
        if ok:
            assert result.exit_code == 0, (args, result.output)
        return result

    def admin_process(
        self, *args: str, input: str | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """The same as a separate `python -m dockyard ...` process."""
        result = subprocess.run(
            [sys.executable, "-m", "dockyard", *args, "--data-dir", str(self.data_dir)],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if ok:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def add_user(self, name: str, password: str, *extra: str) -> None:
        register_secret(password)
        self.admin("user", "add", name, "--password-stdin", *extra, input=password + "\n")

    def create_token(self, user: str, name: str, scope: str, *extra: str) -> str:
        out = self.admin(
            "token", "create", "--user", user, "--name", name, "--scope", scope, *extra
        ).stdout
        secret = out.strip().splitlines()[-1]
        assert secret.startswith("dyt_"), out
        register_secret(secret)
        return secret

    # -- the token dance -------------------------------------------------------------------
    def token_response(
        self, scopes: list[str] | str, auth: str | None = None, **params: str
    ) -> httpx.Response:
        """GET /token as docker does: Basic credentials (or none), service, scopes."""
        scope_list = [scopes] if isinstance(scopes, str) else scopes
        query: list[tuple[str, str]] = [("service", SERVICE)]
        query += [("scope", s) for s in scope_list]
        query += list(params.items())
        headers = {"Authorization": auth} if auth else {}
        return httpx.get(self.realm, params=query, headers=headers, timeout=30.0)

    def bearer(self, scopes: list[str] | str, auth: str | None = None) -> str:
        response = self.token_response(scopes, auth)
        assert response.status_code == 200, response.text
        register_secret(response.json()["token"])
        return "Bearer " + response.json()["token"]


def admin_auth() -> str:
    return basic("admin", ADMIN_PASSWORD)


def config_blob() -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex}).encode()


def manifest_for(config: bytes, **annotations: str) -> bytes:
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [],
    }
    if annotations:
        body["annotations"] = annotations
    return json.dumps(body).encode()


def upload_blob(client: httpx.Client, repo: str, data: bytes, auth: str | None) -> httpx.Response:
    headers = {"Authorization": auth} if auth else {}
    return client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, content=data, headers=headers
    )


def put_manifest(
    client: httpx.Client, repo: str, reference: str, body: bytes, auth: str | None
) -> httpx.Response:
    headers = {"Content-Type": OCI_MANIFEST, **({"Authorization": auth} if auth else {})}
    return client.put(f"/v2/{repo}/manifests/{reference}", content=body, headers=headers)


def push_image(
    client: httpx.Client, repo: str, tag: str, auth: str | None = None, **annotations: str
) -> tuple[str, bytes]:
    """Config blob + manifest under `tag` (as admin by default); (digest, manifest bytes)."""
    auth = auth or admin_auth()
    config = config_blob()
    response = upload_blob(client, repo, config, auth)
    assert response.status_code == 201, response.text
    body = manifest_for(config, **annotations)
    response = put_manifest(client, repo, tag, body, auth)
    assert response.status_code == 201, response.text
    return response.headers["Docker-Content-Digest"], body


def get_manifest(
    client: httpx.Client,
    repo: str,
    reference: str,
    auth: str | None = None,
    method: str = "GET",
    **headers: str,
) -> httpx.Response:
    all_headers = {"Accept": OCI_MANIFEST, **headers}
    if auth:
        all_headers["Authorization"] = auth
    return client.request(method, f"/v2/{repo}/manifests/{reference}", headers=all_headers)


def settle_access() -> None:
    """Every worker trusts what it remembers of sessions and tokens until it next reads the
    accounts' version, at most ACCESS_VERSION_SECONDS after its last read began (the README's
    "within a second"): after that long, the next request on any worker sees a change made
    before the wait."""
    time.sleep(ACCESS_VERSION_SECONDS + 0.1)
