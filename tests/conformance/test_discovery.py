"""Content discovery: tag listing (``n``, ``last``, ``Link``) and the referrers API, as the
conformance suite's "Content Discovery" category exercises them.

The module fixture pushes, in the suite's order: four tags on one image; an empty JSON blob;
two referrers (one typed by its config media type, one by ``artifactType``) and an index
referrer, all *before* their subject exists; the subject image itself (tag ``tagtest0``);
two more referrers after it; and one referrer whose subject is never pushed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest

from tests.conformance._client import (
    OK_2XX,
    assert_error,
    describe,
    link_next,
    push_blob,
    push_manifest,
    tags_of,
)
from tests.conformance._content import (
    EMPTY_JSON_DIGEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
    Manifest,
    empty_json_blob,
    gzip_layer,
    image_config,
    image_index,
    image_manifest,
    repo_name,
    sha256,
)

SUBJECT_TAG = "tagtest0"
ANNOTATION = "org.opencontainers.conformance.test"
TYPE_A = "application/vnd.nhl.peanut.butter.bagel"
TYPE_B = "application/vnd.nba.strawberry.jam.croissant"
TYPE_INDEX = "application/vnd.food.stand"
MISSING_DIGEST = sha256(b"hello world")


@dataclass
class Discovery:
    repo: str
    tags: list[str]
    tagged: Manifest  # behind tags test0..test3
    subject: Manifest  # pushed, with five referrers
    absent_subject: Manifest  # never pushed, with one referrer
    ref_blob_a: Blob
    ref_blob_b: Blob
    config_a: Manifest
    layer_a: Manifest
    index: Manifest
    config_b: Manifest
    layer_b: Manifest
    orphan: Manifest  # refers to absent_subject
    blobs: list[Blob]
    setup: list[tuple[str, httpx.Response]] = field(default_factory=list)
    referrer_puts: dict[str, httpx.Response] = field(default_factory=dict)

    @property
    def subject_referrers(self) -> dict[str, Manifest]:
        return {
            m.digest: m
            for m in (self.config_a, self.layer_a, self.index, self.config_b, self.layer_b)
        }

    @property
    def annotation_of(self) -> dict[str, str]:
        return {d: m.doc["annotations"][ANNOTATION] for d, m in self.subject_referrers.items()}


@pytest.fixture(scope="module")
def disco(mclient: httpx.Client) -> Discovery:
    repo = repo_name("discovery")
    layer = gzip_layer()
    tagged_config, absent_config, subject_config = image_config(), image_config(), image_config()
    tagged = image_manifest(tagged_config, [layer], inline_config=True)
    absent_subject = image_manifest(absent_config, [layer], inline_config=True)
    subject = image_manifest(subject_config, [layer], inline_config=True)
    empty = empty_json_blob()
    ref_a = Blob(b"NHL Peanut Butter on my NHL bagel")
    ref_b = Blob(b"NBA Strawberry Jam on my NBA croissant")

    def by_config(blob: Blob, kind: str, note: str) -> Manifest:
        return image_manifest(
            blob, [empty], config_media_type=kind, subject=subject, annotations={ANNOTATION: note}
        )

    def by_artifact_type(blob: Blob, kind: str, on: Manifest, note: str | None) -> Manifest:
        return image_manifest(
            empty,
            [blob],
            layer_media_type=kind,
            artifact_type=kind,
            subject=on,
            annotations={ANNOTATION: note} if note else None,
            unknown_fields=False,
        )

    config_a = by_config(ref_a, TYPE_A, "test config a")
    layer_a = by_artifact_type(ref_a, TYPE_A, subject, "test layer a")
    index = image_index(
        [config_a, layer_a],
        artifact_type=TYPE_INDEX,
        subject=subject,
        annotations={ANNOTATION: "test index"},
    )
    config_b = by_config(ref_b, TYPE_B, "test config b")
    layer_b = by_artifact_type(ref_b, TYPE_B, subject, "test layer b")
    orphan = by_artifact_type(ref_b, TYPE_B, absent_subject, None)

    d = Discovery(
        repo,
        [],
        tagged,
        subject,
        absent_subject,
        ref_a,
        ref_b,
        config_a,
        layer_a,
        index,
        config_b,
        layer_b,
        orphan,
        blobs=[tagged_config, subject_config, layer, empty, ref_a, ref_b],
    )
    c = mclient

    d.setup.append(("tagged config blob", push_blob(c, repo, tagged_config)))
    d.setup.append(("layer blob", push_blob(c, repo, layer)))
    for i in range(4):
        d.setup.append((f"tag test{i}", push_manifest(c, repo, f"test{i}", tagged)))
    d.setup.append(("empty JSON blob", push_blob(c, repo, empty)))
    d.setup.append(("referrer blob A", push_blob(c, repo, ref_a)))
    for name, m in (("config A", config_a), ("layer A", layer_a), ("index", index)):
        d.referrer_puts[name] = push_manifest(c, repo, m.digest, m)
    d.setup.append(("subject config blob", push_blob(c, repo, subject_config)))
    d.setup.append(("layer blob again", push_blob(c, repo, layer)))
    d.setup.append(("subject by tag", push_manifest(c, repo, SUBJECT_TAG, subject)))
    d.setup.append(("referrer blob B", push_blob(c, repo, ref_b)))
    for name, m in (("config B", config_b), ("layer B", layer_b), ("orphan", orphan)):
        d.referrer_puts[name] = push_manifest(c, repo, m.digest, m)
    d.tags = sorted(["test0", "test1", "test2", "test3", SUBJECT_TAG])
    return d


def test_empty_json_blob_digest() -> None:
    assert empty_json_blob().digest == EMPTY_JSON_DIGEST


def test_setup_pushes_succeed(disco: Discovery) -> None:
    for what, resp in disco.setup:
        assert resp.status_code in OK_2XX, f"{what}: {describe(resp)}"


@pytest.mark.parametrize("name", ["config A", "layer A", "index", "config B", "layer B"])
def test_referrer_push_reports_subject(disco: Discovery, name: str) -> None:
    resp = disco.referrer_puts[name]
    assert resp.status_code in OK_2XX, describe(resp)
    assert resp.headers.get("OCI-Subject") == disco.subject.digest, describe(resp)


def test_referrer_to_absent_subject_reports_subject(disco: Discovery) -> None:
    resp = disco.referrer_puts["orphan"]
    assert resp.status_code in OK_2XX, describe(resp)
    assert resp.headers.get("OCI-Subject") == disco.absent_subject.digest, describe(resp)


def test_referrer_pushes_are_201_strict(disco: Discovery) -> None:
    for name, resp in disco.referrer_puts.items():
        assert resp.status_code == 201, f"{name}: {describe(resp)}"
        assert resp.headers.get("Location"), f"{name}: {describe(resp)}"
        assert resp.headers.get("Docker-Content-Digest"), f"{name}: {describe(resp)}"


def test_referrer_manifests_are_stored_verbatim_strict(
    client: httpx.Client, disco: Discovery
) -> None:
    for m in (*disco.subject_referrers.values(), disco.orphan):
        resp = client.get(
            f"/v2/{disco.repo}/manifests/{m.digest}",
            headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"},
        )
        assert resp.status_code == 200, describe(resp)
        assert resp.content == m.content
        assert resp.headers.get("Content-Type", "").split(";")[0].strip() == m.media_type


# --- Listing tags -------------------------------------------------------------------------


def _list(client: httpx.Client, repo: str, **params: str | int) -> httpx.Response:
    return client.get(f"/v2/{repo}/tags/list", params=params or None)


def test_list_tags_is_200(client: httpx.Client, disco: Discovery) -> None:
    resp = _list(client, disco.repo)
    assert resp.status_code == 200, describe(resp)
    assert len(tags_of(resp)) >= 1


def test_list_tags_body_strict(client: httpx.Client, disco: Discovery) -> None:
    resp = _list(client, disco.repo)
    body = resp.json()
    assert body["name"] == disco.repo
    assert body["tags"] == disco.tags
    assert "Link" not in resp.headers, describe(resp)


def test_list_tags_limited_by_n(client: httpx.Client, disco: Discovery) -> None:
    n = len(tags_of(_list(client, disco.repo))) // 2
    resp = _list(client, disco.repo, n=n)
    assert resp.status_code == 200, describe(resp)
    assert len(tags_of(resp)) == n


def test_list_tags_last_sets_start(client: httpx.Client, disco: Discovery) -> None:
    n = len(tags_of(_list(client, disco.repo))) // 2
    first = tags_of(_list(client, disco.repo, n=n))
    assert len(first) == n
    resp = _list(client, disco.repo, n=n, last=first[n - 1])
    assert resp.status_code == 200, describe(resp)
    page = tags_of(resp)
    assert len(page) <= n
    assert first[n - 1] not in page, "results must start after `last`, not at it"


def test_list_tags_pages_strict(client: httpx.Client, disco: Discovery) -> None:
    n = len(disco.tags) // 2
    first = _list(client, disco.repo, n=n)
    assert tags_of(first) == disco.tags[:n]
    second = _list(client, disco.repo, n=n, last=disco.tags[n - 1])
    assert second.status_code == 200, describe(second)
    assert tags_of(second) == disco.tags[n : 2 * n]


def test_list_tags_link_header_strict(client: httpx.Client, disco: Discovery) -> None:
    resp = _list(client, disco.repo, n=2)
    assert 'rel="next"' in resp.headers.get("Link", ""), describe(resp)
    nxt = link_next(resp)
    assert nxt is not None and nxt.startswith(f"/v2/{disco.repo}/tags/list"), nxt
    follow = client.get(nxt)
    assert follow.status_code == 200, describe(follow)
    assert tags_of(follow) == disco.tags[2:4]


def test_list_tags_last_without_n_strict(client: httpx.Client, disco: Discovery) -> None:
    resp = _list(client, disco.repo, last=disco.tags[1])
    assert resp.status_code == 200, describe(resp)
    assert tags_of(resp) == disco.tags[2:]


def test_list_tags_n_zero_is_empty_without_link_strict(
    client: httpx.Client, disco: Discovery
) -> None:
    resp = _list(client, disco.repo, n=0)
    assert resp.status_code == 200, describe(resp)
    assert resp.json().get("tags") == [], describe(resp)
    assert "Link" not in resp.headers, describe(resp)


def test_list_tags_n_beyond_count_strict(client: httpx.Client, disco: Discovery) -> None:
    resp = _list(client, disco.repo, n=len(disco.tags) + 10)
    assert resp.status_code == 200, describe(resp)
    assert tags_of(resp) == disco.tags
    assert "Link" not in resp.headers, describe(resp)


def test_list_tags_walk_links_strict(client: httpx.Client) -> None:
    repo = repo_name("discovery-walk")
    config = image_config()
    assert push_blob(client, repo, config).status_code == 201
    manifest = image_manifest(config, [])
    wanted = sorted(["a", "b-1", "b.2", "c_3", "latest", "v1.0", "v1.1", "v2", "zeta"])
    for tag in reversed(wanted):
        assert push_manifest(client, repo, tag, manifest).status_code == 201
    seen: list[str] = []
    url: str | None = f"/v2/{repo}/tags/list?n=4"
    pages = 0
    while url is not None and pages <= len(wanted):
        resp = client.get(url)
        assert resp.status_code == 200, describe(resp)
        page = tags_of(resp)
        assert len(page) <= 4
        seen.extend(page)
        url = link_next(resp)
        pages += 1
    assert seen == wanted


def test_list_tags_of_unknown_repository_strict(client: httpx.Client) -> None:
    assert_error(_list(client, repo_name("nowhere")), 404, "NAME_UNKNOWN")


# --- Listing referrers --------------------------------------------------------------------


def _referrers(
    client: httpx.Client, repo: str, digest: str, **params: str
) -> tuple[httpx.Response, list[dict]]:
    resp = client.get(f"/v2/{repo}/referrers/{digest}", params=params or None)
    manifests: list[dict] = []
    if resp.status_code == 200:
        manifests = resp.json().get("manifests") or []
    return resp, manifests


def _index_content_type(resp: httpx.Response) -> str:
    return resp.headers.get("Content-Type", "")


def test_referrers_of_unknown_digest_is_empty_200(client: httpx.Client, disco: Discovery) -> None:
    resp, manifests = _referrers(client, disco.repo, MISSING_DIGEST)
    assert resp.status_code == 200, describe(resp)
    assert _index_content_type(resp) == OCI_INDEX
    assert manifests == []


def test_referrers_empty_index_shape_strict(client: httpx.Client, disco: Discovery) -> None:
    resp, _ = _referrers(client, disco.repo, MISSING_DIGEST)
    body = resp.json()
    assert body.get("schemaVersion") == 2
    assert body.get("mediaType") == OCI_INDEX
    assert body.get("manifests") == []


def test_referrers_of_subject(client: httpx.Client, disco: Discovery) -> None:
    resp, manifests = _referrers(client, disco.repo, disco.subject.digest)
    assert resp.status_code == 200, describe(resp)
    assert _index_content_type(resp) == OCI_INDEX
    assert len(manifests) == 5
    assert manifests[0]["digest"] != manifests[1]["digest"]
    for desc in manifests:
        assert len(desc.get("annotations") or {}) == 1, desc
        assert desc["annotations"][ANNOTATION] == disco.annotation_of.get(desc["digest"]), desc


def test_referrers_descriptors_strict(client: httpx.Client, disco: Discovery) -> None:
    _, manifests = _referrers(client, disco.repo, disco.subject.digest)
    expected = disco.subject_referrers
    assert sorted(d["digest"] for d in manifests) == sorted(expected)
    wanted_type = {
        disco.config_a.digest: TYPE_A,  # from config.mediaType
        disco.layer_a.digest: TYPE_A,  # from artifactType
        disco.index.digest: TYPE_INDEX,
        disco.config_b.digest: TYPE_B,
        disco.layer_b.digest: TYPE_B,
    }
    for desc in manifests:
        m = expected[desc["digest"]]
        assert desc["mediaType"] == m.media_type, desc
        assert desc["size"] == m.size, desc
        assert desc.get("artifactType") == wanted_type[desc["digest"]], desc


def test_referrers_filtered_by_artifact_type(client: httpx.Client, disco: Discovery) -> None:
    resp, manifests = _referrers(client, disco.repo, disco.subject.digest, artifactType=TYPE_A)
    assert resp.status_code == 200, describe(resp)
    assert _index_content_type(resp) == OCI_INDEX
    if resp.headers.get("OCI-Filters-Applied"):
        assert len(manifests) == 2
        assert resp.headers["OCI-Filters-Applied"] == "artifactType"
    else:
        assert len(manifests) == 5
    for desc in manifests:
        assert len(desc.get("annotations") or {}) == 1, desc
        assert desc["annotations"][ANNOTATION] == disco.annotation_of.get(desc["digest"]), desc


def test_referrers_filter_is_applied_strict(client: httpx.Client, disco: Discovery) -> None:
    for kind, members in (
        (TYPE_A, (disco.config_a, disco.layer_a)),
        (TYPE_B, (disco.config_b, disco.layer_b)),
        (TYPE_INDEX, (disco.index,)),
        ("application/vnd.nobody.uses.this", ()),
    ):
        resp, manifests = _referrers(client, disco.repo, disco.subject.digest, artifactType=kind)
        assert resp.headers.get("OCI-Filters-Applied") == "artifactType", describe(resp)
        assert sorted(d["digest"] for d in manifests) == sorted(m.digest for m in members), kind
        assert all(d.get("artifactType") == kind for d in manifests)


def test_referrers_of_absent_subject(client: httpx.Client, disco: Discovery) -> None:
    resp, manifests = _referrers(client, disco.repo, disco.absent_subject.digest)
    assert resp.status_code == 200, describe(resp)
    assert _index_content_type(resp) == OCI_INDEX
    assert len(manifests) == 1
    assert manifests[0]["digest"] == disco.orphan.digest


def test_referrers_are_per_repository_strict(client: httpx.Client, disco: Discovery) -> None:
    resp, manifests = _referrers(client, repo_name("discovery-other"), disco.subject.digest)
    assert resp.status_code == 200, describe(resp)
    assert manifests == []


def test_referrers_with_malformed_digest_is_400_strict(
    client: httpx.Client, disco: Discovery
) -> None:
    resp = client.get(f"/v2/{disco.repo}/referrers/sha256:totallywrong")
    assert_error(resp, 400, "DIGEST_INVALID")


# --- Teardown -----------------------------------------------------------------------------


def test_teardown_delete_manifests(client: httpx.Client, disco: Discovery) -> None:
    for digest in (
        disco.index.digest,
        disco.tagged.digest,
        disco.subject.digest,
        disco.config_a.digest,
        disco.layer_a.digest,
        disco.config_b.digest,
        disco.layer_b.digest,
        disco.orphan.digest,
    ):
        resp = client.delete(f"/v2/{disco.repo}/manifests/{digest}")
        assert resp.status_code in OK_2XX or resp.status_code in (404, 405), describe(resp)
        assert resp.status_code == 202, f"Dockyard deletes manifests: {describe(resp)}"


def test_teardown_referrers_are_gone_strict(client: httpx.Client, disco: Discovery) -> None:
    for subject in (disco.subject, disco.absent_subject):
        resp, manifests = _referrers(client, disco.repo, subject.digest)
        assert resp.status_code == 200, describe(resp)
        assert manifests == [], manifests


def test_teardown_delete_blobs(client: httpx.Client, disco: Discovery) -> None:
    for blob in disco.blobs:
        resp = client.delete(f"/v2/{disco.repo}/blobs/{blob.digest}")
        assert resp.status_code in OK_2XX or resp.status_code in (404, 405), describe(resp)
        assert resp.status_code == 202, f"Dockyard deletes blobs: {describe(resp)}"
