"""Issue 13, red team on content addressing and isolation: attacks on the fixes, from outside,
against real `dockyard serve` processes. Each test is named after the attack it repeats; it
failed before the fix that follows it, or guards a bypass of an earlier fix."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from tests.auth.helpers import (
    ADMIN_PASSWORD,
    OCI_MANIFEST,
    AuthRegistry,
    basic,
    code_of,
    config_blob,
    manifest_for,
    put_manifest,
    sha256,
    upload_blob,
)
from tests.support.server import RunningRegistry, free_port

ALICE, BOB = ("alice", "alice-Pa55"), ("bob", "bob-Pa55")
QUIET = {
    "DOCKYARD_ANONYMOUS_PULL_LIMIT": "0",
    "DOCKYARD_AUTHENTICATED_PULL_LIMIT": "0",
    "DOCKYARD_LOGIN_FAILURE_LIMIT": "0",
}


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    """Accounts on (two workers): alice and bob, each owning their namespace."""
    tmp = tmp_path_factory.mktemp("redteam")
    server = RunningRegistry(
        data_dir=tmp / "data",
        port=free_port(),
        args=("--auth",),
        env={**QUIET, "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
        log_dir=tmp,
    ).start()
    reg = AuthRegistry(server)
    reg.add_user(*ALICE)
    reg.add_user(*BOB)
    yield reg
    server.stop()
    assert "Traceback" not in server.log()


def _image(http: httpx.Client, repo: str, auth: str) -> bytes:
    """A config blob pushed to `repo`; the manifest naming it (not pushed)."""
    config = config_blob() + os.urandom(8).hex().encode()
    assert upload_blob(http, repo, config, auth).status_code == 201
    return manifest_for(config)


# -- names and tags: the grammar is the whole string -------------------------------------------


def test_attack_trailing_newline_in_tag(reg: AuthRegistry) -> None:
    """`$` also matches before a final newline: a tag `v1\\n` was stored (then listed, and
    logged as two lines), and as an extra `?tag=` it ended in a 500 after the manifest was
    stored (the newline went into the OCI-Tag header)."""
    alice = basic(*ALICE)
    with reg.client() as http:
        body = _image(http, "alice/tags", alice)
        for reference, params in (("v1%0A", {}), (sha256(body), {"tag": ["a\n", "b"]})):
            response = http.put(
                f"/v2/alice/tags/manifests/{reference}",
                params=params,
                content=body,
                headers={"Authorization": alice, "Content-Type": OCI_MANIFEST},
            )
            assert response.status_code == 400, response.text
            assert code_of(response) == "MANIFEST_INVALID"
        assert put_manifest(http, "alice/tags", "v1", body, alice).status_code == 201
        listed = http.get("/v2/alice/tags/tags/list", headers={"Authorization": alice})
        assert listed.json()["tags"] == ["v1"]
        # A name of the same shape is no name either (the mount source is a query parameter).
        mount = http.post(
            "/v2/alice/tags/blobs/uploads/",
            params={"mount": sha256(b"x"), "from": "alice/tags\n"},
            headers={"Authorization": alice},
        )
        assert mount.status_code == 400 and code_of(mount) == "NAME_INVALID", mount.text
