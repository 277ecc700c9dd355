"""Several tags in one manifest push (`PUT /v2/<name>/manifests/<digest>?tag=a&tag=b`), the
spec's end-7b: one `OCI-Tag` field per tag applied, 414 past the limit, all tags or none."""

from __future__ import annotations

import json
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.http.test_immutable_tags import policy
from tests.http.test_quotas import quota
from tests.support.push import (
    LAYER,
    OCI_CONFIG,
    OCI_MANIFEST,
    descriptor,
    error_code,
    image_manifest,
    push_blob,
    push_manifest,
    sha256,
    unique_repo,
)
from tests.support.server import RunningRegistry


def put_tags(client: httpx.Client, repo: str, body: bytes, tags: list[str]) -> httpx.Response:
    return client.put(
        f"/v2/{repo}/manifests/{sha256(body)}",
        params=[("tag", t) for t in tags],
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )


def listed(client: httpx.Client, repo: str) -> list[str]:
    got = client.get(f"/v2/{repo}/tags/list")
    return got.json()["tags"] if got.status_code == 200 else []


def resolves(client: httpx.Client, repo: str, tag: str) -> str | None:
    got = client.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
    return got.headers["Docker-Content-Digest"] if got.status_code == 200 else None


def test_twelve_tags_in_one_push_each_named_in_its_own_oci_tag_field(
    client: httpx.Client,
) -> None:
    repo = unique_repo()
    body = image_manifest(client, repo)
    tags = ["1.2.3", "1.2", "1", "latest", *(f"t{i}" for i in range(8))]
    got = put_tags(client, repo, body, [*tags, "1.2"])  # a repeated tag is applied once
    assert got.status_code == 201, got.text
    assert got.headers.get_list("OCI-Tag") == tags
    assert got.headers["Docker-Content-Digest"] == sha256(body)
    assert sorted(listed(client, repo)) == sorted(tags)
    assert {resolves(client, repo, t) for t in tags} == {sha256(body)}
    # Pushed again with other tags, the earlier ones stay; only the new ones are named.
    again = put_tags(client, repo, body, ["extra"])
    assert again.status_code == 201 and again.headers.get_list("OCI-Tag") == ["extra"]
    # A push by tag with no other tag names none (nothing beyond what the client asked).
    plain = push_manifest(client, repo, "plain", body)
    assert plain == sha256(body)


def test_past_the_limit_a_clear_414_and_no_tag(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    repo = unique_repo()
    body = image_manifest(client, repo)
    assert put_tags(client, repo, body, [f"ok{i}" for i in range(100)]).status_code == 201
    over = put_tags(client, repo, body, [f"no{i}" for i in range(101)])
    assert over.status_code == 414 and error_code(over) == "UNSUPPORTED", over.text
    assert over.json()["errors"][0]["detail"] == {"tags": 101, "max": 100}
    assert not [t for t in listed(client, repo) if t.startswith("no")]
    # A request line longer than the server reads at all (past httpx's own URL limit, so
    # sent by hand): still an answer, 414, not a dropped connection.
    query = "&".join(f"tag={i:0>120}" for i in range(600))
    line = f"PUT /v2/{repo}/manifests/{sha256(body)}?{query} HTTP/1.1"
    assert status_of_raw(registry, line) == 414
    assert not [t for t in listed(client, repo) if t.startswith("0")]


def status_of_raw(registry: RunningRegistry, request_line: str) -> int:
    with socket.create_connection(("127.0.0.1", registry.port), timeout=30) as sock:
        head = f"{request_line}\r\nHost: {registry.host}\r\nContent-Length: 0\r\n\r\n"
        sock.sendall(head.encode())
        answer = sock.recv(64)
    return int(answer.split(b" ", 2)[1])


def test_one_bad_tag_refuses_them_all(client: httpx.Client) -> None:
    repo = unique_repo()
    body = image_manifest(client, repo)
    bad = put_tags(client, repo, body, ["good", "also-good", "-bad", "fine"])
    assert bad.status_code == 400 and error_code(bad) == "MANIFEST_INVALID", bad.text
    too_long = put_tags(client, repo, body, ["good", "x" * 129])
    assert too_long.status_code == 400
    assert listed(client, repo) == []
    assert client.head(f"/v2/{repo}/manifests/{sha256(body)}").status_code == 404


def test_an_immutable_tag_among_them_refuses_them_all(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    ns = "many" + uuid.uuid4().hex[:10]
    repo = f"{ns}/app"
    first = push_manifest(client, repo, "v1", image_manifest(client, repo))
    assert policy(registry, "add", ns, "v*").returncode == 0
    other = image_manifest(client, repo)
    refused = put_tags(client, repo, other, ["a", "b", "v1", "c"])
    assert refused.status_code == 403 and error_code(refused) == "DENIED", refused.text
    assert refused.json()["errors"][0]["message"] == f"tag v1 is immutable (rule `v*` on {ns})"
    assert listed(client, repo) == ["v1"] and resolves(client, repo, "v1") == first
    # A new tag the rule holds is fine to create among others, and then held.
    assert put_tags(client, repo, other, ["a", "v2"]).status_code == 201
    assert resolves(client, repo, "v2") == sha256(other)
    assert policy(registry, "remove", ns, "v*").returncode == 0


def test_a_quota_refusing_the_manifest_applies_no_tag(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    ns = "many" + uuid.uuid4().hex[:10]
    repo = f"{ns}/app"
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer = uuid.uuid4().bytes * 64
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(LAYER, layer)],
        }
    ).encode()
    quota(registry, "set", ns, str(len(config) + len(layer) + len(body) - 1))
    refused = put_tags(client, repo, body, [f"t{i}" for i in range(12)])
    assert refused.status_code == 403 and error_code(refused) == "DENIED", refused.text
    assert listed(client, repo) == []
    quota(registry, "set", ns, "none")
    assert put_tags(client, repo, body, [f"t{i}" for i in range(12)]).status_code == 201
    assert len(listed(client, repo)) == 12


def test_concurrent_pushes_of_the_same_tags_never_mix(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    """Two manifests pushed at once under the same ten tags: afterwards every tag names the
    same one of them (each push's tags land in one transaction)."""
    repo = unique_repo()
    bodies = [image_manifest(client, repo) for _ in range(2)]
    tags = [f"c{i}" for i in range(10)]
    with httpx.Client(base_url=registry.url, timeout=60.0) as other:
        for _ in range(4):
            with ThreadPoolExecutor(2) as pool:
                answers = list(
                    pool.map(lambda pair: put_tags(pair[0], repo, pair[1], tags),
                             [(client, bodies[0]), (other, bodies[1])])
                )  # fmt: skip
            assert [a.status_code for a in answers] == [201, 201]
            assert len({resolves(client, repo, t) for t in tags}) == 1
