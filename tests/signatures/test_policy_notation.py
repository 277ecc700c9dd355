"""A signature policy naming notation trust-store roots: the real tool's signature (the OCI
layout in tests/data) opens its image under `enforce`; an image without one, a policy naming
another root, and a signature whose certificate expired do not."""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path

import httpx
import pytest

from tests.signatures.test_policy import policy, refused, served
from tests.support.notary import DAY, NOW, JwsSigner, issue
from tests.support.server import RunningRegistry
from tests.usability.test_notation_verify import (
    IMAGE,
    TRUST,
    _attach_envelope,
    _pushed,
    push_layout,
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def page_statuses(url: str, repo: str, digest: str) -> list[str]:
    """The rows of the image page's signature table, cells joined by " | "."""
    page = httpx.get(f"{url}/r/{repo}/-/image/{digest}").text
    table = page.split('<table class="signatures">', 1)[1].split("</table>", 1)[0]
    return [
        " | ".join(
            html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td>(.*?)</td>", row, re.S)
        )
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1], re.S)
    ]


def test_notation_signatures_open_a_protected_repository(
    home: Path, tmp_path: Path, registry: RunningRegistry
) -> None:
    ns = "notary" + uuid.uuid4().hex[:10]
    repo = f"{ns}/app"
    # Without the referrers tag: the signature is found through the referrers the server keeps.
    push_layout(home, registry.host, repo, keep_tag=False)
    unsigned, _ = _pushed(home, registry.host, repo, "unsigned")
    assert policy(registry, ns, "--trust-store", str(TRUST)).returncode == 0
    served(registry.url, repo, "v1")
    served(registry.url, repo, IMAGE)
    refused(registry.url, repo, unsigned, unsigned, ns)

    # Another root only: the real signature no longer counts.
    other = tmp_path / "other.pem"
    other.write_bytes(issue("Other Root", ca=True).pem())
    assert policy(registry, ns, "--trust-store", str(other)).returncode == 0
    refused(registry.url, repo, "v1", IMAGE, ns)

    # A signature under our own root by a certificate that expired: refused; a valid one opens.
    root = issue("Policy Test Root", ca=True, not_before=NOW - 900 * DAY)
    roots = tmp_path / "roots"
    roots.mkdir()
    (roots / "root.pem").write_bytes(root.pem())
    assert policy(registry, ns, "--trust-store", str(roots)).returncode == 0
    digest, size = _pushed(home, registry.host, repo, "signed here")
    media_type = "application/vnd.oci.image.manifest.v1+json"
    expired = issue("expired signer", root, not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    stale = JwsSigner([expired], signing_time=NOW - 100 * DAY).sign(media_type, digest, size)
    _attach_envelope(home, f"{registry.host}/{repo}@{digest}", stale)
    refused(registry.url, repo, digest, digest, ns)
    signer = issue("signer", root)
    fresh = JwsSigner([signer]).sign(media_type, digest, size)
    _attach_envelope(home, f"{registry.host}/{repo}@{digest}", fresh)
    served(registry.url, repo, digest)
    # The image page shows both with their status, as the gate judged them.
    statuses = page_statuses(registry.url, repo, digest)
    assert len(statuses) == 2, statuses
    assert any(
        row.startswith("notation signature | referrer")
        and " | invalid | " in row
        and "expired" in row
        for row in statuses
    ), statuses
    assert any(
        row.startswith("notation signature | referrer")
        and " | valid | notation root " in row
        and "Policy Test Root" in row
        for row in statuses
    ), statuses
    # Its signature does not open another image.
    refused(registry.url, repo, unsigned, unsigned, ns)

    bad = policy(registry, ns, "--trust-store", str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and "trust store:" in bad.stderr and "no such file" in bad.stderr
