"""What the distribution-spec's `main` branch added since v1.1.1 for uploads and reads:
`?digest-algorithm=`, cancel's 204, a 416 on the final PUT, and the headers every manifest and
blob GET and HEAD must carry."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime

import httpx

from tests.support.push import (
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    error_code,
    image_manifest,
    push_image,
    push_manifest,
    sha256,
    unique_repo,
)
from tests.support.server import RunningRegistry


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def start(client: httpx.Client, repo: str, **params: str) -> httpx.Response:
    return client.post(f"/v2/{repo}/blobs/uploads/", params=params)


def patch(client: httpx.Client, location: str, chunk: bytes, offset: int) -> httpx.Response:
    return client.patch(
        location,
        content=chunk,
        headers={
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
            "Content-Type": "application/octet-stream",
        },
    )


def test_a_chunked_sha512_upload_chosen_before_the_data(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    repo = unique_repo()
    data = os.urandom(9000)
    started = start(client, repo, **{"digest-algorithm": "sha512"})
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    # Chunks on fresh connections land on any worker: the result must not depend on which.
    for offset in range(0, 6000, 3000):
        with httpx.Client(base_url=registry.url, timeout=60.0) as fresh:
            answer = patch(fresh, location, data[offset : offset + 3000], offset)
            assert answer.status_code == 202, answer.text
            location = answer.headers["Location"]
    wrong = client.put(location, params={"digest": sha512(b"other")}, content=data[6000:])
    assert wrong.status_code == 400 and error_code(wrong) == "DIGEST_INVALID"
    # The refused PUT dropped the upload; again, in one go this time.
    started = start(client, repo, **{"digest-algorithm": "sha512"})
    location = started.headers["Location"]
    assert patch(client, location, data[:6000], 0).status_code == 202
    done = client.put(location, params={"digest": sha512(data)}, content=data[6000:])
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == sha512(data)
    got = client.get(f"/v2/{repo}/blobs/{sha512(data)}")
    assert got.status_code == 200 and got.content == data
    assert got.headers["Docker-Content-Digest"] == sha512(data)
    # sha256 has no blob under that name: the registry kept the algorithm asked for.
    assert client.head(f"/v2/{repo}/blobs/{sha256(data)}").status_code == 404


def test_the_final_digest_decides_even_against_the_algorithm_chosen(
    client: httpx.Client,
) -> None:
    """A client that chose sha512 but closes with a sha256 digest still gets what it names,
    checked against the bytes; and the default (nothing chosen) takes sha512 at the end."""
    repo = unique_repo()
    data = os.urandom(2000)
    location = start(client, repo, **{"digest-algorithm": "sha512"}).headers["Location"]
    location = patch(client, location, data, 0).headers["Location"]
    done = client.put(location, params={"digest": sha256(data)})
    assert done.status_code == 201 and done.headers["Docker-Content-Digest"] == sha256(data)
    location = start(client, repo).headers["Location"]
    location = patch(client, location, data, 0).headers["Location"]
    assert client.put(location, params={"digest": sha512(data)}).status_code == 201
    explicit = start(client, repo, **{"digest-algorithm": "sha256"})
    assert explicit.status_code == 202


def test_an_unsupported_digest_algorithm_is_refused_before_any_data(
    client: httpx.Client,
) -> None:
    repo = unique_repo()
    for name in ("md5", "sha384", "SHA512", "blake3", "", "sha512 ", "x" * 5000):
        refused = start(client, repo, **{"digest-algorithm": name})
        assert refused.status_code == 400, name
        assert error_code(refused) == "DIGEST_INVALID"
        assert "Location" not in refused.headers
    # Also with a whole blob in the POST: refused, nothing stored.
    monolithic = client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": sha256(b"abc"), "digest-algorithm": "md5"},
        content=b"abc",
    )
    assert monolithic.status_code == 400 and error_code(monolithic) == "DIGEST_INVALID"
    assert client.head(f"/v2/{repo}/blobs/{sha256(b'abc')}").status_code == 404


def test_cancel_answers_204_and_a_final_put_out_of_order_416(client: httpx.Client) -> None:
    repo = unique_repo()
    data = os.urandom(4000)
    location = start(client, repo).headers["Location"]
    location = patch(client, location, data[:2000], 0).headers["Location"]
    # The last chunk, sent in the PUT, does not continue the upload: 416 with where it is.
    gap = client.put(
        location,
        params={"digest": sha256(data)},
        content=data[3000:],
        headers={"Content-Range": "3000-3999"},
    )
    assert gap.status_code == 416 and error_code(gap) == "BLOB_UPLOAD_INVALID", gap.text
    assert gap.headers["Range"] == "0-1999"
    assert client.get(location).headers["Range"] == "0-1999"
    # The upload survives the refusal: finished properly afterwards.
    done = client.put(
        location,
        params={"digest": sha256(data)},
        content=data[2000:],
        headers={"Content-Range": "2000-3999"},
    )
    assert done.status_code == 201, done.text
    cancelled = start(client, repo).headers["Location"]
    patch(client, cancelled, b"partial", 0)
    gone = client.delete(cancelled, headers={"Content-Length": "0"})
    assert gone.status_code == 204 and gone.content == b""
    assert client.get(cancelled).status_code == 404


def test_every_manifest_and_blob_get_and_head_carries_digest_and_length(
    client: httpx.Client,
) -> None:
    repo = unique_repo()
    digest, body = push_image(client, repo, "v1")
    accept = {"Accept": OCI_MANIFEST}
    for reference in ("v1", digest):
        for method in ("GET", "HEAD"):
            answer = client.request(method, f"/v2/{repo}/manifests/{reference}", headers=accept)
            assert answer.status_code == 200, (method, reference)
            assert answer.headers["Docker-Content-Digest"] == digest, (method, reference)
            assert answer.headers["Content-Length"] == str(len(body)), (method, reference)
    manifest = client.get(f"/v2/{repo}/manifests/v1", headers=accept).json()
    for layer in (manifest["config"], *manifest["layers"]):
        for method in ("GET", "HEAD"):
            answer = client.request(method, f"/v2/{repo}/blobs/{layer['digest']}")
            assert answer.status_code == 200
            assert answer.headers["Docker-Content-Digest"] == layer["digest"]
            assert answer.headers["Content-Length"] == str(layer["size"])
        part = client.get(f"/v2/{repo}/blobs/{layer['digest']}", headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.headers["Docker-Content-Digest"] == layer["digest"]
        assert part.headers["Content-Length"] == "10"


def test_the_chunk_minimum_is_advertised_on_s3_and_small_chunks_still_taken(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    """Unset, S3 advertises its part size and filesystem nothing; neither refuses a small
    chunk, as clients written before the header send them."""
    on_s3 = registry.env.get("DOCKYARD_STORAGE", "").startswith("s3://")
    repo = unique_repo()
    started = start(client, repo)
    assert started.headers.get("OCI-Chunk-Min-Length") == (str(5 * 1024 * 1024) if on_s3 else None)
    data = os.urandom(300)
    location = started.headers["Location"]
    for offset in (0, 100):
        location = patch(client, location, data[offset : offset + 100], offset).headers["Location"]
    done = client.put(
        location,
        params={"digest": sha256(data)},
        content=data[200:],
        headers={"Content-Range": "200-299"},
    )
    assert done.status_code == 201, done.text


def test_a_configured_chunk_minimum_is_advertised_and_enforced(
    registry: RunningRegistry, start_registry
) -> None:
    # A second server on the same stores (a replica), with a minimum of 1000 bytes.
    strict = start_registry(env={**registry.env, "DOCKYARD_CHUNK_MIN_LENGTH": "1000"})
    repo = unique_repo()
    data = os.urandom(2600)
    with httpx.Client(base_url=strict.url, timeout=60.0) as client:
        started = start(client, repo)
        assert started.headers["OCI-Chunk-Min-Length"] == "1000"
        # Chunks of the minimum, then a short last one closed by an empty PUT: fine.
        location = started.headers["Location"]
        for offset, end in ((0, 1000), (1000, 2000), (2000, 2600)):
            answer = patch(client, location, data[offset:end], offset)
            assert answer.status_code == 202, answer.text
            location = answer.headers["Location"]
        assert client.put(location, params={"digest": sha256(data)}).status_code == 201
        # A short chunk followed by another: the second is refused with the minimum, as is a
        # last chunk in the PUT after a short one; the upload keeps what it had.
        location = start(client, repo).headers["Location"]
        location = patch(client, location, data[:999], 0).headers["Location"]
        refused = patch(client, location, data[999:2000], 999)
        assert refused.status_code == 416 and error_code(refused) == "BLOB_UPLOAD_INVALID"
        assert refused.headers["OCI-Chunk-Min-Length"] == "1000"
        assert refused.headers["Range"] == "0-998"
        assert refused.json()["errors"][0]["detail"] == {"min": 1000, "previous": 999}
        last = client.put(
            location,
            params={"digest": sha256(data[:2000])},
            content=data[999:2000],
            headers={"Content-Range": "999-1999"},
        )
        assert last.status_code == 416 and last.headers["OCI-Chunk-Min-Length"] == "1000"
        assert client.get(location).headers["Range"] == "0-998"
        # Closed as it stands (the short chunk was the last after all): accepted.
        assert client.put(location, params={"digest": sha256(data[:999])}).status_code == 201
        # A whole blob in one request is no chunk at all.
        whole = client.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(b"tiny")}, content=b"tiny"
        )
        assert whole.status_code == 201


def test_a_sha512_subjects_referrers_tag_is_cut_to_64_characters(client: httpx.Client) -> None:
    repo = unique_repo()
    subject = image_manifest(client, repo)
    pushed = client.put(
        f"/v2/{repo}/manifests/{sha512(subject)}",
        content=subject,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert pushed.status_code == 201, pushed.text
    referrer_digest, referrer = push_image(client, repo, "sig")
    fallback = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{**descriptor(OCI_MANIFEST, referrer), "artifactType": "application/x.sig"}],
    }
    hex_part = sha512(subject).partition(":")[2]
    # The tag the spec used to name (all 128 hex digits, cut at 128 characters) is not it.
    push_manifest(
        client, repo, f"sha512-{hex_part}"[:128], json.dumps(fallback).encode(), OCI_INDEX
    )
    assert client.get(f"/v2/{repo}/referrers/{sha512(subject)}").json()["manifests"] == []
    push_manifest(client, repo, f"sha512-{hex_part[:64]}", json.dumps(fallback).encode(), OCI_INDEX)
    listed = client.get(f"/v2/{repo}/referrers/{sha512(subject)}").json()["manifests"]
    assert [(m["digest"], m["artifactType"]) for m in listed] == [
        (referrer_digest, "application/x.sig")
    ]


def test_tags_are_listed_in_byte_order_the_same_on_every_page(client: httpx.Client) -> None:
    """The spec allows lexical or "ASCIIbetical" (Go's sort.Strings) order; Dockyard lists by
    bytes, on SQLite and PostgreSQL alike (a locale's collation would put `a` next to `A`)."""
    repo = unique_repo()
    _, body = push_image(client, repo, "Z")
    names = ["Z", "a", "A", "_", "0", "9", "B.1", "B-1", "B_1", "b", "a.b", "a-b", "a_b", "ab"]
    names += ["v1.10", "v1.9", "v10", "V2", "latest", "LATEST", "x" * 128]
    for name in names[1:]:
        push_manifest(client, repo, name, body)
    expected = sorted(names)  # Python compares str by code point: bytes, for ASCII
    assert expected[:4] == ["0", "9", "A", "B-1"]
    whole = client.get(f"/v2/{repo}/tags/list").json()["tags"]
    assert whole == expected
    for n in (1, 2, 5):
        paged: list[str] = []
        params: dict[str, str | int] = {"n": n}
        while True:
            page = client.get(f"/v2/{repo}/tags/list", params=params)
            paged += page.json()["tags"]
            if "Link" not in page.headers:
                break
            params = {"n": n, "last": paged[-1]}
        assert paged == expected, n
    # `last` need not be a tag: the listing goes on after where it would sort.
    after = client.get(f"/v2/{repo}/tags/list", params={"last": "B0"}).json()["tags"]
    assert after == [name for name in expected if name > "B0"]


def test_the_tag_details_extension_lists_digests_and_push_times(client: httpx.Client) -> None:
    """`GET /v2/<name>/_dockyard/tags` (a Dockyard extension): what `/tags/list` lists, in the
    same order and pages, each tag with its manifest's digest, type, size and push time."""
    repo = unique_repo()
    before = datetime.now(UTC).replace(microsecond=0)
    first, first_body = push_image(client, repo, "b")
    second, second_body = push_image(client, repo, "A")
    for tag in ("c", "a", "B"):
        push_manifest(client, repo, tag, first_body)
    push_manifest(client, repo, "c", second_body)  # moved: now the second image
    listed = client.get(f"/v2/{repo}/_dockyard/tags")
    assert listed.status_code == 200 and "Link" not in listed.headers
    entries = listed.json()["tags"]
    assert listed.json()["name"] == repo
    assert [e["tag"] for e in entries] == client.get(f"/v2/{repo}/tags/list").json()["tags"]
    assert [e["tag"] for e in entries] == ["A", "B", "a", "b", "c"]
    digests = {e["tag"]: e["digest"] for e in entries}
    assert digests == {"A": second, "B": first, "a": first, "b": first, "c": second}
    for entry in entries:
        body = second_body if entry["digest"] == second else first_body
        assert entry["mediaType"] == OCI_MANIFEST and entry["size"] == len(body)
        pushed = datetime.fromisoformat(entry["pushed"].replace("Z", "+00:00"))
        assert before <= pushed <= datetime.now(UTC)
    # Paged like /tags/list.
    page = client.get(f"/v2/{repo}/_dockyard/tags", params={"n": 2})
    assert [e["tag"] for e in page.json()["tags"]] == ["A", "B"]
    assert page.headers["Link"] == f'</v2/{repo}/_dockyard/tags?n=2&last=B>; rel="next"'
    rest = client.get(f"/v2/{repo}/_dockyard/tags", params={"n": 2, "last": "B"})
    assert [e["tag"] for e in rest.json()["tags"]] == ["a", "b"]
    assert client.get(f"/v2/{repo}/_dockyard/tags", params={"n": 0}).json()["tags"] == []
    bad = client.get(f"/v2/{repo}/_dockyard/tags", params={"n": "-1"})
    assert bad.status_code == 400 and error_code(bad) == "UNSUPPORTED"
    unknown = client.get(f"/v2/{unique_repo()}/_dockyard/tags")
    assert unknown.status_code == 404 and error_code(unknown) == "NAME_UNKNOWN"


def test_the_tag_history_extension_shows_where_a_tag_pointed(client: httpx.Client) -> None:
    """`GET /v2/<name>/_dockyard/tag-history/<tag>` (a Dockyard extension): newest first,
    `digest` null where the tag was deleted."""
    repo = unique_repo()
    first, first_body = push_image(client, repo, "latest")
    second, _ = push_image(client, repo, "latest")
    push_manifest(client, repo, "latest", first_body)
    assert client.delete(f"/v2/{repo}/manifests/latest").status_code == 202
    answer = client.get(f"/v2/{repo}/_dockyard/tag-history/latest")
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == repo and answer.json()["tag"] == "latest"
    entries = answer.json()["history"]
    assert [e["digest"] for e in entries] == [None, first, second, first]
    times = [datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in entries]
    assert times == sorted(times, reverse=True)
    for missing in ("never", "-bad", "x" * 129):
        gone = client.get(f"/v2/{repo}/_dockyard/tag-history/{missing}")
        assert gone.status_code == 404 and error_code(gone) == "MANIFEST_UNKNOWN"
