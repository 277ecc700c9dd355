"""Upstreams that want credentials: htpasswd (Basic) and a token service (Bearer), with the
credentials from DOCKYARD_PROXIES; wrong credentials give a clear error."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.proxy.helpers import (
    TokenFlow,
    Upstream,
    error_of,
    get_manifest,
    make_image,
    proxies_env,
    pull,
    upstream,
)
from tests.support.auth_peers import token_distribution
from tests.support.counting_proxy import CountingProxy

REPO = "team/app"
USERS = {"puller": "s3cret"}


def test_basic_and_token_upstreams_with_right_and_wrong_credentials(
    start_registry, tmp_path: Path
) -> None:
    image = make_image(tmp_path, "auth")
    with (
        upstream(tmp_path / "basic", users=USERS) as basic,
        token_distribution(tmp_path / "token", USERS, anonymous_pull=False) as (dist, tokens),
        CountingProxy(dist.port) as token_proxy,
    ):
        bearer = Upstream(dist, token_proxy, TokenFlow(*next(iter(USERS.items()))))
        basic.push_image(REPO, "v1", image)
        bearer.push_image(REPO, "v1", image)
        # Unauthenticated requests really are refused by both upstreams.
        assert httpx.get(f"{basic.dist.url}/v2/{REPO}/manifests/v1").status_code == 401
        assert httpx.get(f"{dist.url}/v2/{REPO}/manifests/v1").status_code == 401

        good = {"username": "puller", "password": "s3cret"}
        bad = {"username": "puller", "password": "wrong"}
        cache = start_registry(
            env=proxies_env(
                {"name": "basic", "url": basic.url, **good},
                {"name": "basic-bad", "url": basic.url, **bad},
                {"name": "token", "url": token_proxy.url, **good},
                {"name": "token-bad", "url": token_proxy.url, **bad},
            )
        )
        with httpx.Client(base_url=cache.url, timeout=60) as http:
            for prefix in ("basic", "token"):
                pulled = pull(http, f"{prefix}/{REPO}", "v1")
                assert pulled.digest == image.manifest_digest, prefix
                assert set(pulled.blobs) == set(image.blob_digests)
            # The token service was asked as the configured user, never anonymously.
            assert tokens.issued() and all(r["user"] == "puller" for r in tokens.issued())

            for prefix in ("basic-bad", "token-bad"):
                for reference in ("v1", image.manifest_digest):
                    resp = get_manifest(http, f"{prefix}/{REPO}", reference)
                    assert resp.status_code in (502, 503), f"{prefix} {reference}: {resp.text}"
                    error = error_of(resp)
                    message = error["message"]
                    assert message.startswith(f"{prefix} "), message  # names the upstream
                    assert "credentials" in message or "unauthorized" in message.lower(), message
                    # It was reached; it refused. Saying it "cannot be reached" would send the
                    # operator looking at the network instead of the password.
                    assert "cannot be reached" not in message, message
