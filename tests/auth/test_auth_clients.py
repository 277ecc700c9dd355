"""Real clients against a registry with accounts on: skopeo, podman, oras-py and Dockyard's own
`dockyard login` + registry client. Each logs in (password or access token), pushes to its
user's namespace and pulls back; anonymous clients pull public repositories and are refused
private ones exactly as missing ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import types
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dockyard.cli.main import app
from dockyard.client.credentials import CredentialStore
from dockyard.client.errors import Unauthorized
from dockyard.client.image import Manifest
from dockyard.client.registry import RegistryClient
from dockyard.core import mediatypes as mt
from dockyard.core.manifest import Descriptor
from tests.auth.helpers import LAYER, AuthRegistry, admin_auth, basic, get_manifest
from tests.support import images
from tests.support.peers import ContainersEnv, containers_env, require, require_module

SAM = ("sam", "sam-Pa55")
TLS = "--tls-verify=false"


@pytest.fixture(scope="module")
def reg(start_auth_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    reg = start_auth_registry()
    reg.add_user(*SAM)
    reg.add_user("eve", "eve-pass")
    return reg


@pytest.fixture
def ce(tmp_path: Path) -> Iterator[ContainersEnv]:
    require("skopeo")
    with containers_env(tmp_path / "containers") as env:
        yield env


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[ContainersEnv]:
    """A second environment: empty storage, no credentials."""
    with containers_env(tmp_path / "fresh") as env:
        yield env


def anonymous_status(reg: AuthRegistry, repo: str, reference: str = "v1") -> int:
    with reg.client() as http:
        return get_manifest(http, repo, reference).status_code


def skopeo_login(ce: ContainersEnv, reg: AuthRegistry, user: str, password: str) -> None:
    result = ce.skopeo("login", TLS, "-u", user, "--password-stdin", reg.host, input=password)
    assert "Login Succeeded" in result.stdout
    assert reg.host in json.loads(ce.auth_file.read_text())["auths"]


# -- skopeo -------------------------------------------------------------------------------


def test_skopeo_login_and_copy_both_ways(
    reg: AuthRegistry, ce: ContainersEnv, tmp_path: Path
) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="auth-skopeo", layers=2)
    skopeo_login(ce, reg, *SAM)
    ref = f"docker://{reg.host}/sam/skopeo-app:v1"
    ce.skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1", ref)

    assert ce.inspect_raw(ref) == img.manifest_bytes
    ce.skopeo("copy", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'out'}:v1")
    assert images.read_layout_ref(tmp_path / "out", "v1")["digest"] == img.manifest_digest
    for digest in [img.manifest_digest, *img.blob_digests]:
        assert images.read_layout_blob(tmp_path / "out", digest) == images.read_layout_blob(
            tmp_path / "src", digest
        )
    # Private by default: nobody else sees it.
    assert anonymous_status(reg, "sam/skopeo-app") == 401

    ce.skopeo("logout", reg.host)
    refused = ce.skopeo("inspect", TLS, "--raw", ref, check=False)
    assert refused.returncode != 0


def test_skopeo_anonymous_pull_of_public_and_private(
    reg: AuthRegistry, ce: ContainersEnv, fresh: ContainersEnv, tmp_path: Path
) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="auth-skopeo-anon", layers=2)
    skopeo_login(ce, reg, *SAM)
    for repo in ("sam/open-app", "sam/closed-app"):
        ce.skopeo(
            "copy",
            "--dest-tls-verify=false",
            f"oci:{tmp_path / 'src'}:v1",
            f"docker://{reg.host}/{repo}:v1",
        )
    reg.admin("repo", "visibility", "sam/open-app", "public")

    public = f"docker://{reg.host}/sam/open-app:v1"
    assert fresh.inspect_raw(public, "--no-creds") == img.manifest_bytes
    fresh.skopeo(
        "copy", "--src-tls-verify=false", "--src-no-creds", public, f"oci:{tmp_path / 'anon'}:v1"
    )
    assert images.read_layout_ref(tmp_path / "anon", "v1")["digest"] == img.manifest_digest

    def refusal(repo: str) -> str:
        result = fresh.skopeo(
            "inspect", TLS, "--no-creds", "--raw", f"docker://{reg.host}/{repo}:v1", check=False
        )
        assert result.returncode != 0
        # Without skopeo's timestamps: two refusals a second apart read the same otherwise.
        return re.sub(r'time="[^"]*" ', "", result.stderr)

    private, missing = refusal("sam/closed-app"), refusal("sam/absent-app")
    assert "authentication required" in private.lower() or "unauthorized" in private.lower()
    # The client can tell nothing apart from a repository that does not exist.
    assert private.replace("closed-app", "absent-app") == missing
    assert (
        fresh.skopeo(
            "copy",
            "--src-tls-verify=false",
            "--src-no-creds",
            f"docker://{reg.host}/sam/closed-app:v1",
            f"oci:{tmp_path / 'nope'}:v1",
            check=False,
        ).returncode
        != 0
    )


def test_skopeo_with_an_access_token_and_a_foreign_namespace(
    reg: AuthRegistry, ce: ContainersEnv, tmp_path: Path
) -> None:
    """A read token pulls but cannot push; nobody pushes into someone else's namespace."""
    images.write_oci_image(tmp_path / "src", "v1", seed="auth-skopeo-token", layers=1)
    read_token = reg.create_token("sam", "skopeo-read", "read")
    skopeo_login(ce, reg, "sam", read_token)
    pushed = ce.skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{tmp_path / 'src'}:v1",
        f"docker://{reg.host}/sam/token-app:v1",
        check=False,
    )
    assert pushed.returncode != 0
    assert "denied" in pushed.stderr, pushed.stderr  # 403 DENIED: sam may see the namespace
    skopeo_login(ce, reg, "eve", "eve-pass")
    foreign = ce.skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{tmp_path / 'src'}:v1",
        f"docker://{reg.host}/sam/eve-was-here:v1",
        check=False,
    )
    assert foreign.returncode != 0
    assert "401" in foreign.stderr, foreign.stderr  # eve may not even see sam's repository
    with reg.client() as http:
        catalog = http.get("/v2/_catalog", headers={"Authorization": basic(*SAM)}).json()
    assert "sam/token-app" not in catalog["repositories"]
    assert "sam/eve-was-here" not in catalog["repositories"]


# -- podman --------------------------------------------------------------------------------


def test_podman_login_push_pull(
    reg: AuthRegistry, ce: ContainersEnv, fresh: ContainersEnv, tmp_path: Path
) -> None:
    require("podman")
    img = images.write_oci_image(tmp_path / "src", "v1", seed="auth-podman", layers=2)
    # Into local storage without any registry, then pushed by podman.
    ce.skopeo("copy", f"oci:{tmp_path / 'src'}:v1", "containers-storage:localhost/podapp:v1")
    result = ce.podman("login", TLS, "-u", SAM[0], "--password-stdin", reg.host, input=SAM[1])
    assert "Login Succeeded" in result.stdout
    digest_file = tmp_path / "digest"
    ce.podman(
        "push",
        TLS,
        "--digestfile",
        str(digest_file),
        "localhost/podapp:v1",
        f"docker://{reg.host}/sam/podman-app:v1",
    )
    pushed = digest_file.read_text().strip()
    assert anonymous_status(reg, "sam/podman-app") == 401

    anonymous = fresh.podman("pull", TLS, f"{reg.host}/sam/podman-app:v1", check=False)
    assert anonymous.returncode != 0
    fresh.podman("login", TLS, "-u", SAM[0], "--password-stdin", reg.host, input=SAM[1])
    fresh.podman("pull", TLS, f"{reg.host}/sam/podman-app:v1")
    pulled = json.loads(fresh.podman("image", "inspect", f"{reg.host}/sam/podman-app:v1").stdout)[0]
    assert pulled["Digest"] == pushed
    assert f"sha256:{pulled['Id']}" == img.config_digest
    fresh.podman("logout", reg.host)


# -- oras-py -------------------------------------------------------------------------------


@pytest.fixture
def oras(reg: AuthRegistry) -> Callable[[], object]:
    oras_client = require_module("oras.client")

    def make() -> object:
        client = oras_client.OrasClient(hostname=reg.host, insecure=True)
        # oras-py retries failed requests for minutes; call the undecorated method so a
        # refusal fails the test at once (as tests/interop/test_oras.py does).
        undecorated = getattr(type(client).do_request, "__wrapped__", None)
        if undecorated is not None:
            client.do_request = types.MethodType(undecorated, client)
        return client

    return make


def test_oras_login_push_pull(
    reg: AuthRegistry, oras: Callable[[], object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # oras-py pushes only files below the working directory
    write_token = reg.create_token("sam", "oras-ci", "write")
    rng = random.Random("auth-oras")
    files = {"notes.txt": rng.randbytes(500), "data.bin": rng.randbytes(40_000)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    target = f"{reg.host}/sam/oras-artifact:v1"

    client: object = oras()
    client.login(
        username="sam",
        password=write_token,
        hostname=reg.host,  # type: ignore
        tls_verify=False,
        config_path=str(tmp_path / "oras-config.json"),
    )
    response = client.push(target=target, files=list(files), quiet=True)  # type: ignore
    assert response.status_code == 201
    digest = response.headers["Docker-Content-Digest"]
    assert anonymous_status(reg, "sam/oras-artifact") == 401

    puller: object = oras()
    puller.auth.set_basic_auth("sam", SAM[1])  # type: ignore[attr-defined]
    out = tmp_path / "out"
    pulled = puller.pull(target=target, outdir=str(out))  # type: ignore[attr-defined]
    assert sorted(Path(p).name for p in pulled) == sorted(files)
    for name, data in files.items():
        assert (out / name).read_bytes() == data
    with reg.client() as http:
        served = get_manifest(http, "sam/oras-artifact", "v1", admin_auth())
    assert images.sha256_digest(served.content) == digest


def test_oras_anonymous_push_is_refused(
    reg: AuthRegistry, oras: Callable[[], object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.txt").write_bytes(b"x")
    client: object = oras()
    with pytest.raises(Exception) as raised:  # oras-py raises plain ValueErrors
        client.push(
            target=f"{reg.host}/sam/anon-push:v1",
            files=["x.txt"],  # type: ignore
            quiet=True,
        )
    assert "UNAUTHORIZED" in str(raised.value)
    with reg.client() as http:
        catalog = http.get("/v2/_catalog", headers={"Authorization": basic(*SAM)}).json()
    assert "sam/anon-push" not in catalog["repositories"]


# -- dockyard login + the registry client ----------------------------------------------------

runner = CliRunner()


def opener_for(data: bytes) -> Callable[[int], AsyncIterator[bytes]]:
    def opener(offset: int) -> AsyncIterator[bytes]:
        async def stream() -> AsyncIterator[bytes]:
            yield data[offset:]

        return stream()

    return opener


def test_dockyard_login_push_pull(reg: AuthRegistry, docker_config: Path) -> None:
    wrong = runner.invoke(
        app, ["login", reg.host, "-u", "sam", "--password-stdin"], input="not-the-password\n"
    )
    assert wrong.exit_code == 4, wrong.output
    assert not docker_config.exists()

    result = runner.invoke(
        app, ["login", reg.host, "-u", "sam", "--password-stdin"], input=SAM[1] + "\n"
    )
    assert result.exit_code == 0, result.output
    assert "Login Succeeded" in result.output
    entry = json.loads(docker_config.read_text())["auths"][reg.host]
    assert set(entry) == {"identitytoken"}  # a refresh token, not the password
    assert SAM[1] not in docker_config.read_text()

    layer = os.urandom(3000)
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer_desc = Descriptor(LAYER, "sha256:" + hashlib.sha256(layer).hexdigest(), len(layer))
    config_desc = Descriptor(
        mt.OCI_CONFIG, "sha256:" + hashlib.sha256(config).hexdigest(), len(config)
    )
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": config_desc.media_type,
                "digest": config_desc.digest,
                "size": config_desc.size,
            },
            "layers": [
                {
                    "mediaType": layer_desc.media_type,
                    "digest": layer_desc.digest,
                    "size": layer_desc.size,
                }
            ],
        }
    ).encode()
    manifest = Manifest(body, mt.OCI_MANIFEST, "sha256:" + hashlib.sha256(body).hexdigest())

    async def push_and_pull() -> None:
        async with RegistryClient(reg.host, store=CredentialStore()) as client:
            for desc, data in ((layer_desc, layer), (config_desc, config)):
                assert (
                    await client.upload_blob("sam/dy-client", desc, opener_for(data)) == desc.digest
                )
            assert await client.put_manifest("sam/dy-client", "v1", manifest) == manifest.digest
        async with RegistryClient(reg.host, store=CredentialStore()) as client:
            got = await client.get_manifest("sam/dy-client", "v1")
            assert got.body == body
            pieces = [p async for p in client.open_blob("sam/dy-client", layer_desc.digest)]
            assert b"".join(pieces) == layer
            assert "sam/dy-client" in await client.catalog()

    asyncio.run(push_and_pull())
    assert anonymous_status(reg, "sam/dy-client") == 401

    out = runner.invoke(app, ["logout", reg.host])
    assert out.exit_code == 0 and "Removing login credentials" in out.output

    async def anonymous() -> None:
        async with RegistryClient(reg.host, store=CredentialStore()) as client:
            with pytest.raises(Unauthorized) as raised:
                await client.get_manifest("sam/dy-client", "v1")
            assert "requires authentication" in str(raised.value)

    asyncio.run(anonymous())
