"""The README's "Signing and verifying" commands, read from the README itself and run against a
fresh `dockyard serve`, so that the section cannot drift from what works."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.signatures.helpers import dockyard, key_pair, push_image
from tests.support.images import write_oci_index
from tests.support.server import RunningRegistry

README = Path(__file__).resolve().parents[2] / "README.md"
README_REGISTRY = "localhost:5000"


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _commands() -> tuple[list[str], list[str]]:
    """(commands run here, commands about GHCR that need an account and the network)."""
    run, remote = [], []
    for block in re.findall(
        r"```sh\n(.*?)```", _section(README.read_text(), "Signing and verifying"), re.DOTALL
    ):
        pending = ""
        for line in block.splitlines():
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            command = re.sub(r"\s+#\s.*$", "", pending + line).strip()
            pending = ""
            if command and not command.startswith("#"):
                (remote if "ghcr.io" in command else run).append(command)
    return run, remote


def test_readme_signing_commands_run(tmp_path: Path, start_registry) -> None:
    run, remote = _commands()
    assert len(run) >= 5 and len(remote) == 2, (run, remote)
    assert all(command.startswith("dockyard verify") for command in remote)
    server: RunningRegistry = start_registry()
    home = tmp_path / "home"
    home.mkdir()
    push_image(home, server.host, "me/app", "1.0")
    layout = home / "multi-layout"
    write_oci_index(layout, "multi", seed="readme-multi", layers=1)
    dockyard("push", f"oci:{layout}:multi", f"{server.host}/me/app:multi", "--quiet", home=home)
    key_pair(home, "previous")
    for command in run:
        args = shlex.split(command.replace(README_REGISTRY, server.host))
        assert args[0] == "dockyard"
        result = dockyard(*args[1:], home=home)
        if args[1] == "verify":
            assert "signed by release.pub" in result.stdout, (command, result.stdout)
