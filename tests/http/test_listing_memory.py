"""Tag lists and catalog pages, remembered by each worker until the next commit anywhere,
follow every push and delete at once, whichever of two workers served the change and whichever
answers the next listing (each request on a connection of its own, so both workers answer)."""

from __future__ import annotations

import httpx

from tests.support.push import image_manifest, push_manifest, unique_repo

ASKS = 12  # requests per check, each on a new connection: both workers answer some


def every_answer(url: str) -> list[dict[str, object]]:
    answers = []
    for _ in range(ASKS):
        response = httpx.get(url, timeout=30)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def test_listings_follow_changes_made_on_any_worker(start_registry) -> None:
    server = start_registry("--workers", "2")
    repo, other = unique_repo("mem"), unique_repo("mem")
    tags_url, catalog_url = f"{server.url}/v2/{repo}/tags/list", f"{server.url}/v2/_catalog"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        body = image_manifest(client, repo)
        push_manifest(client, repo, "v1", body)
        expected_tags = ["v1"]
        for step in range(3):
            assert every_answer(tags_url) == [{"name": repo, "tags": expected_tags}] * ASKS
            assert (
                every_answer(f"{tags_url}?n=1&last=v0")
                == [{"name": repo, "tags": expected_tags[:1]}] * ASKS
            )
            push_manifest(client, repo, f"v{step + 2}", body)
            expected_tags = [*expected_tags, f"v{step + 2}"]
        assert client.delete(f"/v2/{repo}/manifests/v1").status_code == 202
        assert every_answer(tags_url) == [{"name": repo, "tags": expected_tags[1:]}] * ASKS
        assert every_answer(f"{tags_url}?n=1&last=v0") == [{"name": repo, "tags": ["v2"]}] * ASKS

        assert every_answer(catalog_url) == [{"repositories": [repo]}] * ASKS
        other_body = image_manifest(client, other)
        push_manifest(client, other, "latest", other_body)
        assert every_answer(catalog_url) == [{"repositories": sorted([repo, other])}] * ASKS
        assert client.delete(f"/api/v1/repositories/{other}").status_code == 200
        assert every_answer(catalog_url) == [{"repositories": [repo]}] * ASKS
        assert client.get(f"/v2/{other}/tags/list").status_code == 404
