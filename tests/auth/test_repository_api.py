"""`DELETE /api/v1/repositories/NAME` and `GET /api/v1/usage` with accounts on: who may delete a
repository or read usage (owners and administrators, with a password), what a deletion leaves
(nothing of the repository; shared blobs still pull elsewhere), and a push racing a deletion."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.auth.helpers import (
    LAYER,
    OCI_CONFIG,
    OCI_MANIFEST,
    AuthRegistry,
    admin_auth,
    basic,
    code_of,
    put_manifest,
    sha256,
    upload_blob,
)

ALICE = ("repo-alice", "pw-repo-alice")
BOB = ("repo-bob", "pw-repo-bob")


@pytest.fixture(scope="module")
def reg(start_auth_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    registry = start_auth_registry()
    registry.add_user(*ALICE)
    registry.add_user(*BOB)
    return registry


def auth_of(user: tuple[str, str]) -> dict[str, str]:
    return {"Authorization": basic(*user)}


def image(layers: list[bytes]) -> tuple[bytes, bytes]:
    """A config and a manifest naming it and `layers`."""
    config = json.dumps({"os": "linux", "nonce": uuid.uuid4().hex}).encode()
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [
            {"mediaType": LAYER, "digest": sha256(layer), "size": len(layer)} for layer in layers
        ],
    }
    return config, json.dumps(manifest).encode()


def push(
    c: httpx.Client, repo: str, tag: str, layers: list[bytes], auth: str
) -> tuple[int, str | None]:
    """Blobs then manifest; (status of the last request that failed or of the PUT, digest)."""
    config, manifest = image(layers)
    for blob in [*layers, config]:
        response = upload_blob(c, repo, blob, auth)
        if response.status_code != 201:
            return response.status_code, None
    response = put_manifest(c, repo, tag, manifest, auth)
    return response.status_code, response.headers.get("Docker-Content-Digest")


def pulls_completely(c: httpx.Client, repo: str, reference: str, auth: str) -> bool:
    headers = {"Authorization": auth, "Accept": OCI_MANIFEST}
    response = c.get(f"/v2/{repo}/manifests/{reference}", headers=headers)
    if response.status_code != 200:
        return False
    manifest = response.json()
    for descriptor in [manifest["config"], *manifest["layers"]]:
        blob = c.get(f"/v2/{repo}/blobs/{descriptor['digest']}", headers={"Authorization": auth})
        if blob.status_code != 200 or sha256(blob.content) != descriptor["digest"]:
            return False
    return True


def test_owner_deletes_a_repository_and_shared_blobs_still_pull_elsewhere(
    reg: AuthRegistry,
) -> None:
    alice = basic(*ALICE)
    base = uuid.uuid4().bytes * 100
    with reg.client() as c:
        assert push(c, "repo-alice/app", "v1", [base, b"app-layer"], alice)[0] == 201
        assert push(c, "repo-alice/app", "v2", [base], alice)[0] == 201
        assert push(c, "repo-alice/base", "v1", [base], alice)[0] == 201
        digest = c.get(
            "/v2/repo-alice/app/manifests/v1",
            headers={"Authorization": alice, "Accept": OCI_MANIFEST},
        ).headers["Docker-Content-Digest"]
        started = c.post("/v2/repo-alice/app/blobs/uploads/", headers={"Authorization": alice})
        assert started.status_code == 202
        sent = c.patch(
            started.headers["Location"],
            content=b"half a layer",
            headers={"Authorization": alice, "Content-Type": "application/octet-stream"},
        )
        assert sent.status_code == 202
        upload_file = reg.data_dir / "uploads" / started.headers["Docker-Upload-UUID"]
        assert upload_file.exists()

        deleted = c.delete("/api/v1/repositories/repo-alice/app", headers=auth_of(ALICE))
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {
            "repository": "repo-alice/app",
            "tags": 2,
            "manifests": 2,
            "blob_links": 4,
            "uploads": 1,
        }

        tags = c.get("/v2/repo-alice/app/tags/list", headers={"Authorization": alice})
        assert tags.status_code == 404 and code_of(tags) == "NAME_UNKNOWN"
        catalog = c.get("/v2/_catalog", headers={"Authorization": admin_auth()}).json()
        assert "repo-alice/app" not in catalog["repositories"]
        assert "repo-alice/base" in catalog["repositories"]
        for reference in ("v1", digest):
            assert not pulls_completely(c, "repo-alice/app", reference, alice)
        gone = c.get(f"/v2/repo-alice/app/blobs/{sha256(base)}", headers={"Authorization": alice})
        assert gone.status_code == 404 and code_of(gone) == "BLOB_UNKNOWN"
        upload = c.get(started.headers["Location"], headers={"Authorization": alice})
        assert upload.status_code == 404 and code_of(upload) == "BLOB_UPLOAD_UNKNOWN"
        assert not upload_file.exists(), "the bytes of an upload in progress go at once"
        # The layers' bytes stay for garbage collection: another repository still serves one.
        assert (reg.data_dir / "blobs" / "sha256" / sha256(base)[7:9] / sha256(base)[7:]).exists()
        assert pulls_completely(c, "repo-alice/base", "v1", alice)

        again = c.delete("/api/v1/repositories/repo-alice/app", headers=auth_of(ALICE))
        assert again.status_code == 404 and code_of(again) == "NOT_FOUND"
        # Pushing again makes a new, ordinary repository of that name.
        assert push(c, "repo-alice/app", "v3", [base], alice)[0] == 201
        listed = c.get("/v2/repo-alice/app/tags/list", headers={"Authorization": alice})
        assert listed.json()["tags"] == ["v3"]


def test_only_owners_and_administrators_delete_with_their_password(reg: AuthRegistry) -> None:
    alice = basic(*ALICE)
    with reg.client() as c:
        assert push(c, "repo-alice/guarded", "v1", [b"guarded"], alice)[0] == 201
        read_token = reg.create_token(ALICE[0], "read-only", "read")
        delete_token = reg.create_token(ALICE[0], "deleter", "delete")
        path = "/api/v1/repositories/repo-alice/guarded"
        for headers in (
            auth_of(BOB),  # another account
            {"Authorization": basic(ALICE[0], read_token)},  # a narrow token
            {"Authorization": basic(ALICE[0], delete_token)},  # tokens are for images only
        ):
            refused = c.delete(path, headers=headers)
            assert refused.status_code == 403 and code_of(refused) == "DENIED", headers
        anonymous = c.delete(path)
        assert anonymous.status_code == 401 and code_of(anonymous) == "UNAUTHORIZED"
        foreign = c.delete(path, headers={**auth_of(ALICE), "Origin": "https://evil.example"})
        assert foreign.status_code == 403
        # Names that climb out of a namespace or hide a slash: refused before anything else.
        for sneaky in (
            "/api/v1/repositories/repo-bob/..%2Frepo-alice%2Fguarded",
            "/api/v1/repositories/repo-bob%2F..%2Frepo-alice/guarded",
            "/api/v1/repositories/repo-bob/../repo-alice/guarded",
        ):
            response = c.delete(sneaky, headers=auth_of(BOB))
            assert response.status_code in (400, 403, 404), sneaky
            assert code_of(response) in ("NAME_INVALID", "DENIED", "NOT_FOUND"), sneaky
        encoded = c.delete("/api/v1/repositories/repo-alice%2Fguarded", headers=auth_of(BOB))
        assert encoded.status_code == 403
        # Bob's missing repository is a 404 for him; alice's stays a 403 whatever exists.
        missing = c.delete("/api/v1/repositories/repo-bob/nothing", headers=auth_of(BOB))
        assert missing.status_code == 404 and code_of(missing) == "NOT_FOUND"
        assert (
            c.delete("/api/v1/repositories/repo-alice/none", headers=auth_of(BOB)).status_code
            == 403
        )
        tags = c.get("/v2/repo-alice/guarded/tags/list", headers={"Authorization": alice})
        assert tags.json()["tags"] == ["v1"], "nothing was deleted by the refused requests"
        by_admin = c.delete(path, headers={"Authorization": admin_auth()})
        assert by_admin.status_code == 200


def test_a_new_repository_of_a_deleted_name_has_the_default_visibility(reg: AuthRegistry) -> None:
    alice = basic(*ALICE)
    with reg.client() as c:
        assert push(c, "repo-alice/shown", "v1", [b"shown"], alice)[0] == 201
        made_public = c.put(
            "/api/v1/repositories/repo-alice/shown/visibility",
            json={"visibility": "public"},
            headers=auth_of(ALICE),
        )
        assert made_public.status_code == 200
        assert c.get("/v2/repo-alice/shown/tags/list").status_code == 200
        assert (
            c.delete("/api/v1/repositories/repo-alice/shown", headers=auth_of(ALICE)).status_code
            == 200
        )
        assert push(c, "repo-alice/shown", "v2", [b"shown"], alice)[0] == 201
        assert c.get("/v2/repo-alice/shown/tags/list").status_code == 401, "private again"


def test_usage_for_administrators_and_owners(reg: AuthRegistry) -> None:
    bob = basic(*BOB)
    shared = uuid.uuid4().bytes * 50
    with reg.client() as c:
        assert push(c, "repo-bob/one", "v1", [shared, b"one-only"], bob)[0] == 201
        assert push(c, "repo-bob/two", "v1", [shared], bob)[0] == 201
        mine = c.get("/api/v1/usage", headers=auth_of(BOB))
        assert mine.status_code == 200, mine.text
        body = mine.json()
        assert [ns["name"] for ns in body["namespaces"]] == ["repo-bob"]
        assert "total" not in body and "storage" not in body
        (ns,) = body["namespaces"]
        repos = {r["name"]: r for r in body["repositories"]}
        assert set(repos) == {"repo-bob/one", "repo-bob/two"}
        # The shared layer is counted once for the namespace.
        assert ns["bytes"] < repos["repo-bob/one"]["bytes"] + repos["repo-bob/two"]["bytes"]
        assert ns["bytes"] == repos["repo-bob/one"]["bytes"] + repos["repo-bob/two"]["bytes"] - len(
            shared
        )
        assert ns["repositories"] == 2
        assert (
            c.get("/api/v1/usage", params={"namespace": "repo-bob"}, headers=auth_of(BOB)).json()
            == body
        )

        other = c.get("/api/v1/usage", params={"namespace": "repo-alice"}, headers=auth_of(BOB))
        assert other.status_code == 403 and code_of(other) == "DENIED"
        token = reg.create_token(BOB[0], "usage-reader", "read")
        with_token = c.get("/api/v1/usage", headers={"Authorization": basic(BOB[0], token)})
        assert with_token.status_code == 403
        assert c.get("/api/v1/usage").status_code == 401
        slashed = c.get("/api/v1/usage", params={"namespace": "repo-bob/one"}, headers=auth_of(BOB))
        assert slashed.status_code == 400

        everything = c.get("/api/v1/usage", headers={"Authorization": admin_auth()}).json()
        names = [n["name"] for n in everything["namespaces"]]
        assert "repo-bob" in names and "repo-alice" in names
        assert everything["total"]["bytes"] >= sum(
            n["bytes"] for n in everything["namespaces"]
        ) - sum(n["shared_bytes"] for n in everything["namespaces"])
        assert everything["storage"]["kind"] == "filesystem"
        assert everything["storage"]["used_bytes"] > 0


def test_a_push_racing_a_deletion_fails_or_lands_whole(reg: AuthRegistry) -> None:
    """Pushers keep pushing into a repository while it is deleted again and again. Every tag
    left afterwards pulls completely: no manifest outlives its blob links."""
    alice = basic(*ALICE)
    base = uuid.uuid4().bytes * 200
    stop = threading.Event()
    outcomes: list[int] = []
    deletions: list[int] = []

    def pusher(n: int) -> None:
        with reg.client() as c:
            i = 0
            while not stop.is_set():
                status, _ = push(
                    c, "repo-alice/race", f"p{n}-{i}", [base, f"{n}-{i}".encode()], alice
                )
                outcomes.append(status)
                i += 1

    def deleter() -> None:
        with reg.client() as c:
            for _ in range(30):
                response = c.delete("/api/v1/repositories/repo-alice/race", headers=auth_of(ALICE))
                deletions.append(response.status_code)
                stop.wait(0.03)
        stop.set()

    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=deleter))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert 200 in deletions and set(deletions) <= {200, 404}
    assert 201 in outcomes, "some pushes landed"
    assert set(outcomes) - {201} <= {400, 404}, "a push fails with a client error, never a 500"
    with reg.client() as c:
        tags = c.get("/v2/repo-alice/race/tags/list", headers={"Authorization": alice})
        left = tags.json()["tags"] if tags.status_code == 200 else []
        for tag in left:
            assert pulls_completely(c, "repo-alice/race", tag, alice), tag
        # And one more deletion empties it whole.
        if tags.status_code == 200:
            assert (
                c.delete("/api/v1/repositories/repo-alice/race", headers=auth_of(ALICE)).status_code
                == 200
            )
        gone = c.get("/v2/repo-alice/race/tags/list", headers={"Authorization": alice})
        assert gone.status_code == 404


def test_repo_delete_and_usage_commands_on_the_data_folder_while_serving(
    reg: AuthRegistry,
) -> None:
    alice = basic(*ALICE)
    with reg.client() as c:
        assert push(c, "repo-alice/cli", "v1", [b"cli-layer"], alice)[0] == 201
        assert push(c, "repo-alice/cli-kept", "v1", [b"cli-layer"], alice)[0] == 201

        usage = json.loads(reg.admin("usage", "repo-alice", "--json").stdout)
        assert "repo-alice/cli" in [r["name"] for r in usage["repositories"]]
        assert "total" not in usage
        whole = json.loads(reg.admin("usage", "--json").stdout)
        assert whole["storage"]["kind"] == "filesystem" and whole["total"]["blobs"] > 0
        text = reg.admin("usage", "repo-alice").stdout
        assert "repo-alice/" in text and "repo-alice/cli " in text.replace("  ", " ")

        declined = reg.admin("repo", "delete", "repo-alice/cli", input="n\n", ok=False)
        assert declined.exit_code != 0
        assert c.get("/v2/repo-alice/cli/tags/list", headers={"Authorization": alice}).json()[
            "tags"
        ] == ["v1"]

        done = reg.admin("repo", "delete", "repo-alice/cli", "--yes")
        assert "deleted repo-alice/cli: 1 tags, 1 manifests, 2 blob links" in done.stdout
        assert "reclaimed by garbage collection" in done.stdout
        tags = c.get("/v2/repo-alice/cli/tags/list", headers={"Authorization": alice})
        assert tags.status_code == 404 and code_of(tags) == "NAME_UNKNOWN"
        assert pulls_completely(c, "repo-alice/cli-kept", "v1", alice)

        missing = reg.admin("repo", "delete", "repo-alice/cli", "--yes", ok=False)
        assert missing.exit_code != 0 and "no such repository" in missing.output
        invalid = reg.admin("repo", "delete", "repo-alice/../x", "--yes", ok=False)
        assert invalid.exit_code != 0
        assert reg.admin("usage", "repo-alice/cli", ok=False).exit_code != 0
        assert "garbage collection" in reg.admin("repo", "delete", "--help").stdout
