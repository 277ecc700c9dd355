"""Issue 14, the client: `dockyard attach` pushes an artifact with a `subject`, `dockyard
discover` lists an image's referrers as a tree, on Dockyard (referrers API) and on CNCF
Distribution 2.8.2 (no referrers API: the referrers tag `sha256-<hex>`); regctl sees the same."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.images import write_oci_image
from tests.support.peers import Distribution, require
from tests.support.server import OnLoopback, RunningRegistry

SBOM = "application/spdx+json"
SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"


def dockyard(
    *args: str, home: Path, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HOME": str(home),
        "DOCKER_CONFIG": str(home / ".docker"),
        "COLUMNS": "200",
    }
    env.pop("REGISTRY_AUTH_FILE", None)
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=home,
        input=input,
    )
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.fixture
def dockyard_registry(start_registry) -> RunningRegistry:
    return start_registry()


@pytest.fixture
def distribution(tmp_path: Path):
    with Distribution(root=tmp_path / "distribution") as server:
        yield server


def _push_image(home: Path, host: str, repo: str) -> str:
    layout = home / "layout"
    image = write_oci_image(layout, "1.0", seed=repo)
    dockyard("push", f"oci:{layout}:1.0", f"{host}/{repo}:1.0", "--quiet", home=home)
    return image.manifest_digest


def _files(home: Path) -> tuple[Path, Path]:
    sbom = home / "sbom.spdx.json"
    sbom.write_text('{"spdxVersion": "SPDX-2.3", "name": "app"}')
    sig = home / "app.sig"
    sig.write_bytes(b"signature bytes")
    return sbom, sig


def _attach_sbom_and_signature(home: Path, host: str, repo: str) -> tuple[str, str]:
    sbom, sig = _files(home)
    sbom_digest = dockyard(
        "attach",
        f"{host}/{repo}:1.0",
        "--artifact-type",
        SBOM,
        f"{sbom}:{SBOM}",
        "--annotation",
        "org.example.tool=dockyard",
        home=home,
    ).stdout.strip()
    assert sbom_digest.startswith(f"{host}/{repo}@sha256:"), sbom_digest
    sbom_digest = sbom_digest.rsplit("@", 1)[1]
    # A signature of the SBOM: a referrer of a referrer.
    sig_digest = dockyard(
        "attach",
        f"{host}/{repo}@{sbom_digest}",
        "--artifact-type",
        SIG,
        str(sig),
        "--json",
        home=home,
    ).stdout
    return sbom_digest, json.loads(sig_digest)["digest"]


def _check_artifact(server: OnLoopback, repo: str, digest: str, subject: str) -> dict:
    """The artifact as the registry holds it: empty config, files as titled layers."""
    with httpx.Client(base_url=server.url) as http:
        response = http.get(
            f"/v2/{repo}/manifests/{digest}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == digest.split(":")[1]
        manifest = response.json()
        subject_head = http.head(
            f"/v2/{repo}/manifests/{subject}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        config = http.get(f"/v2/{repo}/blobs/{manifest['config']['digest']}")
        assert config.content == b"{}"
    assert manifest["config"]["mediaType"] == EMPTY
    assert manifest["subject"] == {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": subject,
        "size": int(subject_head.headers["Content-Length"]),
    }
    return manifest


def _check_discover(home: Path, host: str, repo: str, image: str, sbom: str, sig: str) -> None:
    tree = json.loads(dockyard("discover", f"{host}/{repo}:1.0", "--json", home=home).stdout)
    assert tree["digest"] == image
    assert [(r["artifactType"], r["digest"]) for r in tree["referrers"]] == [(SBOM, sbom)]
    assert tree["referrers"][0]["annotations"] == {"org.example.tool": "dockyard"}
    assert tree["referrers"][0]["size"] > 0
    nested = tree["referrers"][0]["referrers"]
    assert [(r["artifactType"], r["digest"]) for r in nested] == [(SIG, sig)]
    assert nested[0]["referrers"] == []

    text = dockyard("discover", f"{host}/{repo}:1.0", home=home).stdout
    lines = text.splitlines()
    assert lines[0] == f"{host}/{repo}@{image}"
    sbom_line = next(i for i, line in enumerate(lines) if sbom in line)
    sig_line = next(i for i, line in enumerate(lines) if sig in line)
    assert SBOM in lines[sbom_line] and SIG in lines[sig_line]
    assert sig_line > sbom_line
    # The signature hangs below the SBOM: it is indented further.
    indent = len(lines[sig_line]) - len(lines[sig_line].lstrip(" │├└─"))
    assert indent > len(lines[sbom_line]) - len(lines[sbom_line].lstrip(" │├└─"))

    only_sigs = json.loads(
        dockyard(
            "discover", f"{host}/{repo}:1.0", "--json", "--artifact-type", SIG, home=home
        ).stdout
    )
    assert only_sigs["referrers"] == []
    only_sboms = json.loads(
        dockyard(
            "discover", f"{host}/{repo}:1.0", "--json", "--artifact-type", SBOM, home=home
        ).stdout
    )
    assert [r["digest"] for r in only_sboms["referrers"]] == [sbom]


def _regctl_lists(home: Path, host: str, reference: str) -> list[dict]:
    regctl = require("regctl")
    env = {**os.environ, "HOME": str(home)}
    result = subprocess.run(
        [
            regctl,
            "--host",
            f"reg={host},tls=disabled",
            "artifact",
            "list",
            reference,
            "--format",
            "{{json .Descriptors}}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_attach_and_discover_on_dockyard_referrers_api(
    home: Path, dockyard_registry: RunningRegistry
) -> None:
    host, repo = dockyard_registry.host, "me/app"
    image = _push_image(home, host, repo)
    sbom, sig = _attach_sbom_and_signature(home, host, repo)

    manifest = _check_artifact(dockyard_registry, repo, sbom, image)
    assert manifest["artifactType"] == SBOM
    assert manifest["annotations"] == {"org.example.tool": "dockyard"}
    [layer] = manifest["layers"]
    assert layer["mediaType"] == SBOM
    assert layer["annotations"] == {"org.opencontainers.image.title": "sbom.spdx.json"}
    signature = _check_artifact(dockyard_registry, repo, sig, sbom)
    assert signature["layers"][0]["mediaType"] == "application/octet-stream"

    with httpx.Client(base_url=dockyard_registry.url) as http:
        listed = http.get(f"/v2/{repo}/referrers/{image}").json()["manifests"]
        # The API indexes the subject: no referrers tag is written.
        tags = http.get(f"/v2/{repo}/tags/list").json()["tags"]
    assert [(m["digest"], m["artifactType"]) for m in listed] == [(sbom, SBOM)]
    assert tags == ["1.0"]

    _check_discover(home, host, repo, image, sbom, sig)
    assert [d["digest"] for d in _regctl_lists(home, host, f"{host}/{repo}:1.0")] == [sbom]
    assert [d["digest"] for d in _regctl_lists(home, host, f"{host}/{repo}@{sbom}")] == [sig]


def test_attach_and_discover_on_distribution_use_the_referrers_tag(
    home: Path, distribution: Distribution
) -> None:
    host, repo = distribution.host, "me/app"
    image = _push_image(home, host, repo)
    with httpx.Client(base_url=distribution.url) as http:
        # 2.8.2 has no referrers API: what makes the client fall back.
        assert http.get(f"/v2/{repo}/referrers/{image}").status_code == 404
    sbom, sig = _attach_sbom_and_signature(home, host, repo)
    _check_artifact(distribution, repo, sbom, image)

    with httpx.Client(base_url=distribution.url) as http:
        tag = "sha256-" + image.split(":")[1]
        index = http.get(
            f"/v2/{repo}/manifests/{tag}",
            headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        ).json()
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [(m["digest"], m["artifactType"]) for m in index["manifests"]] == [(sbom, SBOM)]

    _check_discover(home, host, repo, image, sbom, sig)
    assert [d["digest"] for d in _regctl_lists(home, host, f"{host}/{repo}:1.0")] == [sbom]
    assert [d["digest"] for d in _regctl_lists(home, host, f"{host}/{repo}@{sbom}")] == [sig]

    # Attaching the same artifact again lists it once.
    dockyard(
        "attach",
        f"{host}/{repo}:1.0",
        "--artifact-type",
        SBOM,
        f"{home / 'sbom.spdx.json'}:{SBOM}",
        "--annotation",
        "org.example.tool=dockyard",
        home=home,
    )
    tree = json.loads(dockyard("discover", f"{host}/{repo}:1.0", "--json", home=home).stdout)
    assert [r["digest"] for r in tree["referrers"]] == [sbom]


def test_attach_and_discover_refuse_bad_input(
    home: Path, dockyard_registry: RunningRegistry
) -> None:
    host, repo = dockyard_registry.host, "me/app"
    _push_image(home, host, repo)
    sbom, _ = _files(home)

    missing = dockyard(
        "attach", f"{host}/{repo}:nope", "--artifact-type", SBOM, str(sbom), home=home, check=False
    )
    assert missing.returncode == 3 and "no such image" in missing.stderr
    no_type = dockyard("attach", f"{host}/{repo}:1.0", str(sbom), home=home, check=False)
    assert no_type.returncode == 2 and "--artifact-type" in no_type.stderr
    bad_type = dockyard(
        "attach", f"{host}/{repo}:1.0", "--artifact-type", "sbom", str(sbom), home=home, check=False
    )
    assert bad_type.returncode == 1 and "media type" in bad_type.stderr
    no_file = dockyard(
        "attach",
        f"{host}/{repo}:1.0",
        "--artifact-type",
        SBOM,
        str(home / "absent.json"),
        home=home,
        check=False,
    )
    assert no_file.returncode == 1 and "absent.json: cannot read it" in no_file.stderr
    for result in (missing, no_type, bad_type, no_file):
        assert "Traceback" not in result.stderr
    bad_annotation = dockyard(
        "attach",
        f"{host}/{repo}:1.0",
        "--artifact-type",
        SBOM,
        str(sbom),
        "--annotation",
        "novalue",
        home=home,
        check=False,
    )
    assert bad_annotation.returncode == 2

    # Nothing was attached by the refused commands.
    empty = json.loads(dockyard("discover", f"{host}/{repo}:1.0", "--json", home=home).stdout)
    assert empty["referrers"] == []
    gone = dockyard("discover", f"{host}/{repo}:nope", home=home, check=False)
    assert gone.returncode == 3 and "Traceback" not in gone.stderr


def test_attach_to_another_accounts_image_is_denied_discover_is_not(
    home: Path, start_registry
) -> None:
    server = start_registry("--auth", env={"DOCKYARD_ADMIN_PASSWORD": "admin-password-1"})
    for user, password in (("carol", "carol-password"), ("dave", "dave-password")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "dockyard",
                "user",
                "add",
                user,
                "--password-stdin",
                "--data-dir",
                str(server.data_dir),
            ],
            input=f"{password}\n",
            check=True,
            capture_output=True,
            text=True,
        )
    carol, dave = home / "carol", home / "dave"
    for folder, user in ((carol, "carol"), (dave, "dave")):
        folder.mkdir()
        dockyard(
            "login",
            server.host,
            "-u",
            user,
            "--password-stdin",
            home=folder,
            input=f"{user}-password\n",
        )
    image = _push_image(carol, server.host, "carol/app")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard",
            "repo",
            "visibility",
            "carol/app",
            "public",
            "--data-dir",
            str(server.data_dir),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    sbom, _ = _files(dave)
    denied = dockyard(
        "attach",
        f"{server.host}/carol/app:1.0",
        "--artifact-type",
        SBOM,
        str(sbom),
        home=dave,
        check=False,
    )
    assert denied.returncode == 4, denied.stderr
    assert "Traceback" not in denied.stderr
    # Dave may read carol's public image, and sees that nothing was attached to it.
    seen = json.loads(
        dockyard("discover", f"{server.host}/carol/app:1.0", "--json", home=dave).stdout
    )
    assert seen["digest"] == image and seen["referrers"] == []
    sbom, _ = _files(carol)
    mine = dockyard(
        "attach",
        f"{server.host}/carol/app:1.0",
        "--artifact-type",
        SBOM,
        str(sbom),
        home=carol,
        check=False,
    )
    assert mine.returncode == 0, mine.stderr
    again = json.loads(
        dockyard("discover", f"{server.host}/carol/app:1.0", "--json", home=dave).stdout
    )
    assert [r["artifactType"] for r in again["referrers"]] == [SBOM]


def test_a_foreign_or_hostile_referrers_tag_is_neither_overwritten_nor_shown_raw(
    home: Path, distribution: Distribution
) -> None:
    host, repo = distribution.host, "me/app"
    image = _push_image(home, host, repo)
    tag = "sha256-" + image.split(":")[1]
    # Someone tagged an ordinary image with the referrers tag's name: not an index.
    dockyard("push", f"oci:{home / 'layout'}:1.0", f"{host}/{repo}:{tag}", "--quiet", home=home)
    sbom, _ = _files(home)
    refused = dockyard(
        "attach", f"{host}/{repo}:1.0", "--artifact-type", SBOM, str(sbom), home=home, check=False
    )
    assert refused.returncode == 1 and "is not an OCI index" in refused.stderr
    with httpx.Client(base_url=distribution.url) as http:
        kept = http.head(
            f"/v2/{repo}/manifests/{tag}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert kept.headers["Docker-Content-Digest"] == image
        http.delete(f"/v2/{repo}/manifests/{image}")
    # A fresh image, and a referrers tag written by another tool with terminal escapes in it.
    image = _push_image(home, host, repo)
    sbom_digest = json.loads(
        dockyard(
            "attach", f"{host}/{repo}:1.0", "--artifact-type", SBOM, str(sbom), "--json", home=home
        ).stdout
    )["digest"]
    with httpx.Client(base_url=distribution.url) as http:
        entry = http.get(
            f"/v2/{repo}/manifests/{tag}",
            headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        ).json()["manifests"][0]
        entry["artifactType"] = "application/x\x1b]0;pwned\x07\x1b[2J"
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [entry],
        }
        put = http.put(
            f"/v2/{repo}/manifests/{tag}",
            content=json.dumps(index),
            headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
        )
        assert put.status_code == 201, put.text
    shown = dockyard("discover", f"{host}/{repo}:1.0", home=home)
    assert sbom_digest in shown.stdout
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout


def test_dockyard_and_regctl_share_the_referrers_tag_on_distribution(
    home: Path, distribution: Distribution
) -> None:
    """Each tool adds to what the other wrote in the referrers tag instead of replacing it."""
    host, repo = distribution.host, "me/app"
    image = _push_image(home, host, repo)
    sbom, sig = _files(home)
    first = json.loads(
        dockyard(
            "attach", f"{host}/{repo}:1.0", "--artifact-type", SBOM, str(sbom), "--json", home=home
        ).stdout
    )["digest"]
    regctl = require("regctl")
    result = subprocess.run(
        [
            regctl,
            "--host",
            f"reg={host},tls=disabled",
            "artifact",
            "put",
            "--artifact-type",
            SIG,
            "--subject",
            f"{host}/{repo}:1.0",
            "-f",
            str(sig),
            "--file-media-type",
            "application/octet-stream",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(home)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    third = json.loads(
        dockyard(
            "attach",
            f"{host}/{repo}:1.0",
            "--artifact-type",
            "application/vnd.in-toto+json",
            str(sbom),
            "--json",
            home=home,
        ).stdout
    )["digest"]
    tree = json.loads(dockyard("discover", f"{host}/{repo}:1.0", "--json", home=home).stdout)
    assert tree["digest"] == image
    types = {r["artifactType"]: r["digest"] for r in tree["referrers"]}
    assert set(types) == {SBOM, SIG, "application/vnd.in-toto+json"}
    assert types[SBOM] == first and types["application/vnd.in-toto+json"] == third
    listed = {d["digest"] for d in _regctl_lists(home, host, f"{host}/{repo}:1.0")}
    assert listed == set(types.values())


def test_attach_a_large_file_in_chunks_and_an_artifact_without_files(
    home: Path, dockyard_registry: RunningRegistry
) -> None:
    host, repo = dockyard_registry.host, "me/app"
    _push_image(home, host, repo)
    big = home / "big.tar"
    big.write_bytes(os.urandom(9 * 1024 * 1024 + 17))  # past the one-request upload limit
    large = json.loads(
        dockyard(
            "attach",
            f"{host}/{repo}:1.0",
            "--artifact-type",
            "application/vnd.example.bundle",
            f"{big}:application/x-tar",
            "--json",
            home=home,
        ).stdout
    )["digest"]
    bare = json.loads(
        dockyard(
            "attach",
            f"{host}/{repo}:1.0",
            "--artifact-type",
            "application/vnd.example.approval",
            "--annotation",
            "approved-by=carol",
            "--json",
            home=home,
        ).stdout
    )["digest"]
    with httpx.Client(base_url=dockyard_registry.url) as http:
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        layer = http.get(f"/v2/{repo}/manifests/{large}", headers=accept).json()["layers"][0]
        assert layer["size"] == big.stat().st_size
        assert layer["digest"] == "sha256:" + hashlib.sha256(big.read_bytes()).hexdigest()
        blob = http.get(f"/v2/{repo}/blobs/{layer['digest']}", follow_redirects=True)
        assert blob.content == big.read_bytes()
        empty = http.get(f"/v2/{repo}/manifests/{bare}", headers=accept).json()
    assert empty["layers"] == [{"mediaType": EMPTY, "digest": empty["config"]["digest"], "size": 2}]
    assert empty["annotations"] == {"approved-by": "carol"}
    tree = json.loads(dockyard("discover", f"{host}/{repo}:1.0", "--json", home=home).stdout)
    assert {r["digest"] for r in tree["referrers"]} == {large, bare}
