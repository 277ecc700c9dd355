"""One Dockyard as the mirror of two upstreams at once, driven by the real clients: containerd
(`ctr` with a `hosts.toml` per upstream, which sends `?ns=HOST`) and podman (a `registries.conf`
mirror per upstream, which sends no `ns`: the mirror's location carries the cache namespace).

One set of servers for the module: two CNCF Distribution instances on loopback standing in for
docker.io and ghcr.io, a Dockyard caching both under those names, and a containerd daemon.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.proxy.helpers import Trap, Upstream, make_image, proxies_env, upstream
from tests.support.containerd import Containerd
from tests.support.images import BuiltImage
from tests.support.peers import containers_env
from tests.support.server import RunningRegistry, free_port


@dataclass
class Mirrors:
    hub: Upstream
    ghcr: Upstream
    cache: RunningRegistry
    hub_image: BuiltImage
    ghcr_image: BuiltImage

    def access_log(self) -> list[str]:
        assert self.cache.log_path is not None
        return [line for line in self.cache.log_path.read_text().splitlines() if "/v2/" in line]


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirrors]:
    root = tmp_path_factory.mktemp("mirrors")
    with upstream(root / "hub") as hub, upstream(root / "ghcr") as ghcr:
        hub_image = make_image(root, "hub-x")
        ghcr_image = make_image(root, "ghcr-z")
        hub.push_image("library/x", "1.0", hub_image)
        ghcr.push_image("y/z", "2.0", ghcr_image)
        cache = RunningRegistry(
            data_dir=root / "data",
            port=free_port(),
            log_dir=root,
            env=proxies_env(
                {"name": "docker.io", "url": hub.url}, {"name": "ghcr.io", "url": ghcr.url}
            ),
        ).start()
        try:
            yield Mirrors(hub, ghcr, cache, hub_image, ghcr_image)
        finally:
            cache.stop()


def hosts_toml(server: str, mirror: str) -> str:
    """containerd's registry host configuration: ask `mirror` first, then the upstream itself."""
    return f'server = "{server}"\n\n[host."{mirror}"]\n  capabilities = ["pull", "resolve"]\n'


def test_containerd_pulls_two_upstreams_through_one_dockyard_with_ns(
    mirrors: Mirrors, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("ctrd")
    hosts = root / "certs.d"
    for host, up in (("docker.io", mirrors.hub), ("ghcr.io", mirrors.ghcr)):
        (hosts / host).mkdir(parents=True)
        (hosts / host / "hosts.toml").write_text(hosts_toml(up.dist.url, mirrors.cache.url))
    mirrors.hub.proxy.reset()
    mirrors.ghcr.proxy.reset()
    with Containerd(root / "d") as containerd:
        pulls = {
            "docker.io/library/x:1.0": ("docker.io", "library/x", mirrors.hub_image),
            "ghcr.io/y/z:2.0": ("ghcr.io", "y/z", mirrors.ghcr_image),
        }
        for ref in pulls:
            containerd.ctr(
                "images", "pull", "--hosts-dir", str(hosts), "--snapshotter", "native", ref
            )
        listed = containerd.ctr("images", "ls", "--quiet").stdout.split()
        assert sorted(listed) == sorted(pulls)
        for ref, (_, _, image) in pulls.items():
            found = containerd.ctr("images", "ls", f"name=={ref}").stdout
            assert image.manifest_digest in found, found
    log = mirrors.access_log()
    for host, repo, image in pulls.values():
        # Every piece of the image came through Dockyard, asked under the plain name with `ns`.
        for digest in (image.manifest_digest, image.config_digest, *image.layer_digests):
            asked = [line for line in log if f"/v2/{repo}/" in line and digest in line]
            assert asked and all(f"ns={host}" in line for line in asked), (digest, log[-20:])
            assert all(" 200 " in line or " 307 " in line for line in asked), asked
    # Each upstream was asked by Dockyard only for its own repository.
    assert all("y/z" not in p for p in mirrors.hub.proxy.paths())
    assert all("library/x" not in p for p in mirrors.ghcr.proxy.paths())
    assert mirrors.hub.proxy.paths() and mirrors.ghcr.proxy.paths()


def test_podman_mirrors_each_upstream_through_its_cache_namespace(
    mirrors: Mirrors, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """podman sends no `ns`: a mirror per upstream, located at the cache namespace's prefix."""
    root = tmp_path_factory.mktemp("podman")
    cache = mirrors.cache.host
    with containers_env(root / "containers") as ce:
        ce.registries_conf.write_text(
            'unqualified-search-registries = []\nshort-name-mode = "permissive"\n\n'
            f'[[registry]]\nprefix = "docker.io"\nlocation = "{mirrors.hub.dist.host}"\n'
            f'insecure = true\n[[registry.mirror]]\nlocation = "{cache}/docker.io"\n'
            "insecure = true\n\n"
            f'[[registry]]\nprefix = "ghcr.io"\nlocation = "{mirrors.ghcr.dist.host}"\n'
            f'insecure = true\n[[registry.mirror]]\nlocation = "{cache}/ghcr.io"\n'
            "insecure = true\n"
        )
        before = len(mirrors.access_log())
        for ref, image in (
            ("docker.io/library/x:1.0", mirrors.hub_image),
            ("ghcr.io/y/z:2.0", mirrors.ghcr_image),
        ):
            ce.podman("pull", "--quiet", ref)
            inspected = json.loads(ce.podman("image", "inspect", ref).stdout)
            assert inspected[0]["Digest"] == image.manifest_digest
        log = mirrors.access_log()[before:]
        for repo in ("docker.io/library/x", "ghcr.io/y/z"):
            assert any(f"/v2/{repo}/manifests/" in line and " 200 " in line for line in log), log
        assert not any("ns=" in line for line in log)


def test_containerd_through_a_cache_that_needs_an_account(
    mirrors: Mirrors, start_registry, tmp_path: Path
) -> None:
    """ghcr.io cached for accounts only: containerd, asking with `ns`, is challenged for the
    cache namespace's scope, and `ctr --user` pulls once it follows the challenge."""
    cache = start_registry(
        "--auth",
        env={
            "DOCKYARD_ADMIN_PASSWORD": "admin-pw1",
            **proxies_env({"name": "ghcr.io", "url": mirrors.ghcr.url}),
        },
    )
    hosts = tmp_path / "certs.d"
    (hosts / "ghcr.io").mkdir(parents=True)
    ref = "ghcr.io/y/z:2.0"
    # containerd falls back to the server after a mirror's refusal (to https://ghcr.io when none
    # is set): a server that accepts and answers nothing, so a refusal is the pull's failure.
    with Trap() as server, Containerd(tmp_path / "d") as containerd:
        fallback = f"http://127.0.0.1:{server.port}"
        (hosts / "ghcr.io" / "hosts.toml").write_text(hosts_toml(fallback, cache.url))
        pull = ("images", "pull", "--hosts-dir", str(hosts), "--snapshotter", "native")
        refused = containerd.ctr(*pull, ref, check=False)
        assert refused.returncode != 0
        containerd.ctr(*pull, "--user", "admin:admin-pw1", ref)
        found = containerd.ctr("images", "ls", f"name=={ref}").stdout
        assert mirrors.ghcr_image.manifest_digest in found, found
    assert cache.log_path is not None
    log = [line for line in cache.log_path.read_text().splitlines() if "?ns=ghcr.io" in line]
    assert any(" 401 " in line and "account=" not in line for line in log), log
    blob = mirrors.ghcr_image.layer_digests[0]
    assert any(blob in line and " 200 " in line and "account=admin" in line for line in log), log
