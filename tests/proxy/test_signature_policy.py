"""A signature policy on a pull-through cache's namespace: an upstream image is served through
the cache only when the upstream holds a signature of it by the policy's key, fetched through
the cache like any tag; unsigned images, and images signed by another key, are not."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.proxy.helpers import start_cache
from tests.signatures.helpers import dockyard, key_pair, push_image
from tests.signatures.test_policy import policy


def get(url: str, repo: str, reference: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=60) as http:
        return http.get(
            f"/v2/{repo}/manifests/{reference}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )


def test_a_cache_serves_only_upstream_images_signed_by_the_key(
    tmp_path: Path, start_registry
) -> None:
    upstream = start_registry()
    cache = start_cache(start_registry, upstream.url)
    home = tmp_path / "home"
    home.mkdir()
    alice_key, alice_pub = key_pair(home, "alice")
    bob_key, _ = key_pair(home, "bob")
    signed = push_image(home, upstream.host, "vendor/signed")
    unsigned = push_image(home, upstream.host, "vendor/unsigned")
    by_bob = push_image(home, upstream.host, "vendor/by-bob")
    dockyard("sign", "--key", str(alice_key), f"{upstream.host}/vendor/signed:1.0", home=home)
    dockyard("sign", "--key", str(bob_key), f"{upstream.host}/vendor/by-bob:1.0", home=home)

    assert policy(cache, "up", "--key", str(alice_pub)).returncode == 0
    served = get(cache.url, "up/vendor/signed", "1.0")
    assert served.status_code == 200, served.text
    assert served.headers["docker-content-digest"] == signed
    assert get(cache.url, "up/vendor/signed", signed).status_code == 200
    for repo, digest in (("vendor/unsigned", unsigned), ("vendor/by-bob", by_bob)):
        refused = get(cache.url, f"up/{repo}", "1.0")
        assert refused.status_code == 403, refused.text
        assert refused.json()["errors"][0] == {
            "code": "DENIED",
            "message": f"up/{repo}@{digest} has no valid signature required by the signature "
            "policy on up",
            "detail": {"policy": "up", "digest": digest},
        }
    # The signature itself came through the cache, and is served as any signature is.
    sig = "sha256-" + signed.split(":")[1] + ".sig"
    assert get(cache.url, "up/vendor/signed", sig).status_code == 200

    # Signed upstream later: served through the cache from then on.
    dockyard("sign", "--key", str(alice_key), f"{upstream.host}/vendor/unsigned:1.0", home=home)
    assert get(cache.url, "up/vendor/unsigned", "1.0").status_code == 200
