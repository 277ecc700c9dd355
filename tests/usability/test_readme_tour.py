"""Issue 14, the README's tour: its shell commands, read from the README itself, run against a
fresh `dockyard serve` with the real skopeo, curl and `dockyard` client, so that the README
cannot drift from what works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.images import write_oci_image, write_oci_index
from tests.support.peers import ContainersEnv, containers_env, require
from tests.support.server import RunningRegistry

README = Path(__file__).resolve().parents[2] / "README.md"
TOUR_SECTIONS = ("A short tour", "The client: no daemon needed")
README_REGISTRY = "localhost:5000"
README_DIGEST = "sha256:..."

# Commands of the tour that are not run here, each with why. Every entry must match exactly
# one command of the README, so a stale entry fails the test instead of hiding a new command.
SKIPPED_BY_DESIGN = {
    "dockyard login ghcr.io ": "needs a GHCR account and the network; `dockyard login` is run "
    "against local registries in tests/client/test_login_cli.py",
    "dockyard copy localhost:5000/me/app:1.0 ghcr.io/": "pushes to GHCR: needs an account and "
    "the network; copying between two registries is run in tests/client/test_transfer.py",
}


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def tour_commands(text: str) -> list[str]:
    """The tour's shell commands: its ```sh blocks, continuation lines joined, comments cut."""
    commands: list[str] = []
    for title in TOUR_SECTIONS:
        for block in re.findall(r"```sh\n(.*?)```", section(text, title), re.DOTALL):
            pending = ""
            for line in block.splitlines():
                if line.rstrip().endswith("\\"):
                    pending += line.rstrip()[:-1] + " "
                    continue
                command = re.sub(r"\s+#\s.*$", "", pending + line).strip()
                pending = ""
                if command and not command.startswith("#"):
                    commands.append(command)
    return commands


def skipped_reason(command: str) -> str | None:
    return next(
        (why for start, why in SKIPPED_BY_DESIGN.items() if command.startswith(start)), None
    )


def prepare(workdir: Path) -> dict[str, str]:
    """The local files the tour names; returns what the README's placeholders stand for."""
    image = write_oci_image(workdir / "myimage", "1.0", seed="tour-myimage")
    write_oci_index(workdir / "multiarch", "1.0", seed="tour-multiarch")
    write_oci_index(workdir / "app", "1.0", seed="tour-app")
    write_oci_image(workdir / "amd64", "1.0", seed="tour-amd64", architecture="amd64")
    write_oci_image(workdir / "arm64", "1.0", seed="tour-arm64", architecture="arm64")
    (workdir / "sbom.spdx.json").write_text('{"spdxVersion": "SPDX-2.3", "name": "app"}')
    return {README_DIGEST: image.manifest_digest}


def shim(folder: Path) -> Path:
    """A `dockyard` on PATH that runs this checkout's code with this interpreter."""
    folder.mkdir()
    script = folder / "dockyard"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dockyard "$@"\n')
    script.chmod(0o755)
    return folder


@pytest.fixture
def ce(tmp_path: Path):
    require("skopeo")
    require("curl")
    with containers_env(tmp_path / "containers") as env:
        yield env


def test_readme_tour_sees_both_sections_and_skips_only_what_it_names() -> None:
    commands = tour_commands(README.read_text())
    for start in SKIPPED_BY_DESIGN:
        assert sum(command.startswith(start) for command in commands) == 1, start
    assert any(command.startswith("skopeo copy") for command in commands)
    assert any(command.startswith("curl ") for command in commands)
    assert any(command.startswith("dockyard delete") for command in commands)


def test_readme_tour_runs_against_a_fresh_server(
    tmp_path: Path, ce: ContainersEnv, start_registry
) -> None:
    server: RunningRegistry = start_registry()
    host = f"localhost:{server.port}"
    workdir = tmp_path / "tour"
    workdir.mkdir()
    placeholders = {README_REGISTRY: host, **prepare(workdir)}
    env = {**ce.env, "PATH": f"{shim(tmp_path / 'bin')}:{ce.env['PATH']}"}

    ran, outputs = [], {}
    for command in tour_commands(README.read_text()):
        if skipped_reason(command):
            continue
        for placeholder, value in placeholders.items():
            command = command.replace(placeholder, value)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, (command, result.stderr)
        ran.append(command)
        outputs[command] = result.stdout

    def output_of(start: str) -> str:
        return next(outputs[c] for c in ran if c.startswith(start))

    assert "1.0" in output_of("skopeo list-tags")
    assert "myname/myimage" in output_of(f"curl -s {host}/v2/_catalog")
    assert output_of("curl -sI").startswith("HTTP/1.1 200")
    assert '"manifests"' in output_of(f"curl -s {host}/v2/myname/myimage/referrers/")
    assert "application/spdx+json" in output_of("dockyard discover")
    assert (workdir / "copy" / "index.json").is_file()
    assert (workdir / "app.tar").is_file()

    with httpx.Client(base_url=server.url) as http:
        referrers = http.get(f"/v2/myname/myimage/referrers/{placeholders[README_DIGEST]}")
        assert referrers.status_code == 200
        # The tour's last step removes the label `stable` and nothing else: `:1.0` (the same
        # manifest) and the index made from the two platforms are still there.
        assert sorted(http.get("/v2/me/app/tags/list").json()["tags"]) == ["1.0", "multi"]
        still = http.head(
            "/v2/me/app/manifests/1.0",
            headers={
                "Accept": "application/vnd.oci.image.index.v1+json, "
                "application/vnd.oci.image.manifest.v1+json"
            },
        )
        assert still.status_code == 200
        assert http.head("/v2/me/app/manifests/stable").status_code == 404
