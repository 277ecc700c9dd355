"""The pull-through cache's size limit: least recently used images go, nothing else does."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dockyard.cli.main import app
from tests.support.images import write_oci_image
from tests.support.peers import Distribution, containers_env, require


def dockyard(*args: str, home: Path, env: dict[str, str] | None = None) -> str:
    """`dockyard ...` run in-process: the same Typer app and code as `python -m dockyard`
    (as tests/auth's `admin`), without an interpreter start for each of the many commands."""
    result = CliRunner().invoke(
        app, list(args), env={"DOCKER_CONFIG": str(home / "docker"), **(env or {})}
    )
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def stats(data: Path, env: dict[str, str], home: Path) -> dict[str, int]:
    out = dockyard("cache", "stats", "--data-dir", str(data), env=env, home=home)
    return {k: int(v) for k, v in (line.split(": ") for line in out.strip().splitlines())}


def test_prune_evicts_least_recently_used_and_spares_local_content(
    start_registry, tmp_path: Path
) -> None:
    require("docker-registry")
    upstream = Distribution(root=tmp_path / "upstream").start()
    try:
        old = write_oci_image(tmp_path / "old", "v1", seed="old", file_size=200_000)
        new = write_oci_image(tmp_path / "new", "v1", seed="new", file_size=200_000)
        with containers_env(tmp_path / "ce") as ce:
            for name, image in (("old", old), ("new", new)):
                ce.skopeo(
                    "copy",
                    "--dest-tls-verify=false",
                    f"oci:{image.layout}:v1",
                    f"docker://{upstream.host}/lib/{name}:v1",
                )
        proxies = json.dumps([{"name": "up", "url": upstream.url}])
        env = {"DOCKYARD_PROXIES": proxies}
        server = start_registry(env=env)
        host = server.host
        # An ordinary repository holding the same content as a cached image.
        dockyard("push", f"oci:{old.layout}:v1", f"{host}/mine/old:v1", home=tmp_path)
        for name in ("old", "new"):
            dockyard(
                "pull",
                f"{host}/up/lib/{name}:v1",
                f"oci:{tmp_path / ('c-' + name)}:v1",
                home=tmp_path,
            )
        dockyard(
            "pull", f"{host}/up/lib/new:v1", f"oci:{tmp_path / 'again'}:v1", home=tmp_path
        )  # "new" is now the most recently used
        before = stats(server.data_dir, env, tmp_path)
        assert before["manifests"] == 2
        # Blobs of "old" are also linked by mine/old: only "new"'s count as the cache's own.
        assert before["blobs"] == 1 + len(new.layers)

        out = dockyard(
            "cache",
            "prune",
            "--max-size",
            "1",
            "--data-dir",
            str(server.data_dir),
            env=env,
            home=tmp_path,
        )
        assert "evicted 2 manifest(s)" in out
        after = stats(server.data_dir, env, tmp_path)
        assert after == {"repositories": 2, "manifests": 0, "blobs": 0, "bytes": 0}
        # The ordinary repository lost nothing, byte for byte.
        back = dockyard(
            "pull", f"{host}/mine/old:v1", f"oci:{tmp_path / 'mine'}:v1", "--json", home=tmp_path
        )
        assert json.loads(back.splitlines()[-1])["digest"] == old.manifest_digest
        # Evicted images come back from the upstream on the next pull.
        again = dockyard(
            "pull",
            f"{host}/up/lib/new:v1",
            f"oci:{tmp_path / 'refetch'}:v1",
            "--json",
            home=tmp_path,
        )
        assert json.loads(again.splitlines()[-1])["digest"] == new.manifest_digest

        # With a limit that fits one image, the least recently used one goes first.
        dockyard("pull", f"{host}/up/lib/old:v1", f"oci:{tmp_path / 'o2'}:v1", home=tmp_path)
        dockyard("pull", f"{host}/up/lib/new:v1", f"oci:{tmp_path / 'n2'}:v1", home=tmp_path)
        full = stats(server.data_dir, env, tmp_path)
        out = dockyard(
            "cache",
            "prune",
            "--max-size",
            str(full["bytes"]),
            "--data-dir",
            str(server.data_dir),
            env=env,
            home=tmp_path,
        )
        assert "evicted 0 manifest(s)" in out
        dockyard("pull", f"{host}/up/lib/old:v1", f"oci:{tmp_path / 'o3'}:v1", home=tmp_path)
        out = dockyard(
            "cache",
            "prune",
            "--max-size",
            str(full["bytes"] - 1),
            "--data-dir",
            str(server.data_dir),
            env=env,
            home=tmp_path,
        )
        assert "evicted 1 manifest(s)" in out
        dockyard("inspect", f"{host}/up/lib/old:v1", home=tmp_path)  # still served
        assert not any((server.data_dir / "trash").iterdir())
    finally:
        upstream.stop()
