"""Issue 18 on the image page: each signature and attestation of an image is shown with its
status under the repository's signature policy, judged by the registry's own checks — valid
(which policy key), invalid (why), or not checked when the repository has no policy. In a real
browser, with screenshots and axe."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import BrowserContext, Response

from dockyard.core import keys
from tests.signatures.helpers import dockyard, get_manifest, key_pair, push_image
from tests.signatures.test_policy import policy

BAD = "signature invalid: no given key verifies it over the payload"


def rows(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        " | ".join(cell.strip() for cell in row.locator("td").all_inner_texts())
        for row in page.locator("table.signatures tbody tr").all()
    ]


def fingerprint(public: Path) -> str:
    return keys.fingerprint(keys.load_public_key(public.read_bytes()))


def test_the_image_page_shows_each_signature_with_its_status(
    tmp_path: Path,
    web_registry: Callable[..., object],
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
) -> None:
    registry = web_registry(args=("--no-auth",)).server  # type: ignore[attr-defined]
    home = tmp_path / "home"
    home.mkdir()
    host = registry.host
    alice_key, alice_pub = key_pair(home, "alice")
    bob_key, _ = key_pair(home, "bob")
    (home / "provenance.json").write_text('{"builder": {"id": "ci"}}')

    # Protected: signed by alice (the policy's key) and by bob, attested by alice.
    protected = "shipped/app"
    digest = push_image(home, host, protected)
    assert policy(registry, "shipped", "--key", str(alice_pub)).returncode == 0
    dockyard("sign", "--key", str(alice_key), f"{host}/{protected}@{digest}", home=home)
    dockyard(
        "sign", "--referrers", "--key", str(bob_key), f"{host}/{protected}@{digest}", home=home
    )
    dockyard(
        "attest", "--key", str(alice_key), "--type", "slsaprovenance",
        "--predicate", str(home / "provenance.json"), f"{host}/{protected}@{digest}", home=home,
    )  # fmt: skip
    # Unprotected: signed all the same, nothing checked.
    loose = "loose/app"
    loose_digest = push_image(home, host, loose)
    dockyard("sign", "--key", str(alice_key), f"{host}/{loose}@{loose_digest}", home=home)

    page = new_context().new_page()
    visit(page, f"{registry.url}/r/{protected}/-/image/1.0")
    shown = rows(page)
    sig = "sha256-" + digest.split(":")[1] + ".sig"
    att = "sha256-" + digest.split(":")[1] + ".att"
    alice = f"policy key 1 ({fingerprint(alice_pub)})"
    assert f"cosign signature | {sig} | valid | {alice}" in shown, shown
    assert f"cosign signature | {sig}, layer 2 | invalid | {BAD}" in shown, shown
    assert f"cosign attestation | {att} | valid | {alice}" in shown, shown
    # Bob's signature stored as a referrer too, and alice's attestation.
    [referrer] = [row for row in shown if row.startswith("cosign signature | referrer")]
    assert referrer.endswith(
        " | invalid | signature invalid: no given key verifies it over the payload"
    )
    [attested] = [row for row in shown if row.startswith("cosign attestation | referrer")]
    assert attested.endswith(f" | valid | {alice}")
    assert page.locator(".signature-invalid").first.is_visible()

    # The .sig tag deleted: its rows are gone at the next visit, as the signature is for pulls.
    dockyard("delete", "--tag-only", f"{host}/{protected}:{sig}", home=home)
    visit(page, f"{registry.url}/r/{protected}/-/image/1.0")
    shown = rows(page)
    assert not [row for row in shown if sig in row], shown
    assert len(shown) == 3, shown
    assert get_manifest(registry.url, protected, "1.0")[1].status_code == 403

    visit(page, f"{registry.url}/r/{loose}/-/image/1.0")
    shown = rows(page)
    assert shown, shown
    for row in shown:
        assert re.fullmatch(
            r"cosign signature \| .+ \| not checked \| no signature policy on this repository",
            row,
        ), shown

    # An image without signatures says so.
    plain = push_image(home, host, "loose/plain")
    visit(page, f"{registry.url}/r/loose/plain/-/image/{plain}")
    assert page.get_by_text("No signatures or attestations of this image are stored here.")
    assert rows(page) == []
