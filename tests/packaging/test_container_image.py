"""The Containerfile built and run for real: buildah builds it on a Debian base made here with
debootstrap (.ci/image-base.sh, cached: no Docker Hub is reachable), `dockyard push` sends the
image to a test registry, podman pulls it back and runs it, and the containerised registry
answers `/v2/`, `/healthz` and `/readyz`, takes an image from skopeo and gives it back, runs as
its unprivileged user and keeps its data in the volume across a restart.

One build per run of this file (module fixtures), in private containers storage under the
test's temp folder; what podman starts here is removed here. `podman run` in this sandbox
needs runc and limits within the machine's hard ones (see ContainersEnv.runtime).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.images import write_oci_image
from tests.support.peers import ContainersEnv, require
from tests.support.server import RunningRegistry, free_port, register_secret, wait_for_http

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("DOCKYARD_IMAGE_CACHE") or ROOT / ".ci" / "cache" / "image")
BASE = "localhost/dockyard-base:bookworm"
BUILT = "localhost/dockyard:under-test"
REPOSITORY = "tools/dockyard"
PASSWORD = "container-admin-password"
register_secret(PASSWORD)
# The machine's hard limits are 20000 open files and 96367 processes; podman asks for more.
ULIMITS = ("nofile=16384:16384", "nproc=8192:8192")

pytestmark = pytest.mark.timeout(1200)


def wait_for_the_cache() -> str:
    """Wait while `make test`'s background `image-base.sh` prepares the cache (it holds
    CACHE/.lock exclusively to its end); what it logged, or "" when none ran."""
    lock = CACHE / ".lock"
    if not lock.is_file():
        return ""
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        fcntl.flock(handle, fcntl.LOCK_UN)
    log = CACHE / "image-base.log"
    logged = log.read_text(errors="replace")[-3000:] if log.is_file() else ""
    status = CACHE / ".status"
    if status.is_file() and status.read_text().strip() != "0":
        pytest.fail(
            f"image-base.sh failed in the background; its log ends:\n{logged}", pytrace=False
        )
    return logged


def prepared() -> tuple[Path, Path]:
    """The cached Debian base (OCI layout) and wheels; fails, never skips, when absent."""
    log = wait_for_the_cache()
    base, wheels = CACHE / "base", CACHE / "wheels"
    if not (base / "index.json").is_file() or not any(wheels.glob("pip-*.whl")):
        pytest.fail(
            f"no Debian base image or wheels in {CACHE}: make them once with `make image-base` "
            "(as root; .ci/image-base.sh runs debootstrap from the apt mirror)"
            + (f"\nimage-base.sh's log ends:\n{log}" if log else ""),
            pytrace=False,
        )
    return base, wheels


def dockyard(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`python -m dockyard ARGS` with a private credentials folder."""
    env = {**os.environ, "DOCKER_CONFIG": str(home / "docker"), "HOME": str(home)}
    env.pop("REGISTRY_AUTH_FILE", None)
    env.pop("XDG_RUNTIME_DIR", None)
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def build_wheel(source: Path, wheels: Path, out: Path) -> Path:
    """Dockyard's wheel from a copy of this checkout (never writing into it), built offline
    with the cached setuptools."""
    tree = source / "dockyard"
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    offline = ["--no-deps", "--no-index", "--quiet", "--disable-pip-version-check"]
    command = [sys.executable, "-m", "pip", "wheel", *offline, "--find-links", str(wheels)]
    subprocess.run(
        [*command, "--wheel-dir", str(out), str(tree)], check=True, capture_output=True, timeout=600
    )
    (built,) = out.glob("dockyard-*.whl")
    return built


@dataclass
class Built:
    """The image as built and as pushed: its config digest and where it is in the registry."""

    config_digest: str
    manifest_digest: str
    ref: str
    timings: dict[str, float]


@contextmanager
def phase(timings: dict[str, float], name: str) -> Iterator[None]:
    """Time one step of the fixtures, for the report `pytest -rP` prints."""
    started = time.monotonic()
    try:
        yield
    finally:
        timings[name] = round(time.monotonic() - started, 1)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    base = tmp_path_factory.mktemp("registry")
    server = RunningRegistry(data_dir=base / "data", port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, registry: RunningRegistry) -> Iterator[Built]:
    """Build the repository's Containerfile on the cached base, then `dockyard push` it."""
    base, wheels = prepared()
    for tool in ("buildah", "skopeo"):
        require(tool)
    work = tmp_path_factory.mktemp("build")
    env = ContainersEnv(root=work / "containers", driver="overlay").setup()
    timings: dict[str, float] = {}
    try:
        context = work / "context"
        (context / "dist").mkdir(parents=True)
        shutil.copy2(ROOT / ".containerignore", context / ".containerignore")
        for wheel in wheels.glob("*.whl"):
            shutil.copy2(wheel, context / "dist" / wheel.name)
        with phase(timings, "wheel"):
            build_wheel(work / "source", wheels, context / "dist")
        with phase(timings, "base into storage"):
            env.skopeo("copy", "--quiet", f"oci:{base}:bookworm", f"containers-storage:{BASE}")
        with phase(timings, "buildah build"):
            env.buildah(
                "build",
                "--format=docker",
                "--pull=never",
                "--build-arg",
                f"BASE={BASE}",
                "--file",
                str(ROOT / "Containerfile"),
                "--tag",
                BUILT,
                str(context),
                timeout=1200,
            )
        # A docker-archive keeps the docker format's config as built, HEALTHCHECK included
        # (an OCI layout would convert it to OCI's config, which has no field for it).
        archive = work / "dockyard.tar"
        with phase(timings, "buildah push docker-archive"):
            env.buildah("push", "--quiet", BUILT, f"docker-archive:{archive}:{BUILT}", timeout=600)
        built_id = env.podman("image", "inspect", "--format", "{{.Id}}", BUILT).stdout.strip()
    finally:
        env.cleanup()
    ref = f"{registry.host}/{REPOSITORY}:0.1.0"
    with phase(timings, "dockyard push"):
        lines = dockyard("push", f"docker-archive:{archive}", ref, "--json", home=work).stdout
    pushed = json.loads(lines.splitlines()[-1])  # the summary, after one line per blob
    manifest = httpx.get(
        f"{registry.url}/v2/{REPOSITORY}/manifests/0.1.0",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=30,
    )
    assert manifest.headers["docker-content-digest"] == pushed["digest"]
    config_digest = manifest.json()["config"]["digest"]
    assert config_digest == "sha256:" + built_id.removeprefix("sha256:")
    yield Built(config_digest, pushed["digest"], ref, timings)


@dataclass
class Container:
    """The pulled image running under podman, its port 5000 published on loopback."""

    env: ContainersEnv
    name: str
    volume: str
    url: str
    image_id: str

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory, built: Built) -> Iterator[Container]:
    """Pull the pushed image into fresh storage with podman and run it."""
    require("podman")
    root = tmp_path_factory.mktemp("run") / "containers"
    env = ContainersEnv(
        root=root,
        driver="overlay",
        runtime=require("runc"),
        ulimits=ULIMITS,
        insecure_registries=[built.ref.split("/")[0]],
    ).setup()
    name = f"dockyard-test-{uuid.uuid4().hex[:10]}"
    volume = f"{name}-data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        with phase(built.timings, "podman pull"):
            pulled = env.podman("pull", "--quiet", "--tls-verify=false", built.ref, timeout=600)
        image_id = pulled.stdout.strip().splitlines()[-1]
        env.podman(
            "run",
            "--detach",
            "--name",
            name,
            "--publish",
            f"127.0.0.1:{port}:5000",
            "--volume",
            f"{volume}:/var/lib/dockyard",
            "--env",
            f"DOCKYARD_ADMIN_PASSWORD={PASSWORD}",
            # The token realm must name the address clients use, not the container's own.
            "--env",
            f"DOCKYARD_PUBLIC_URL={url}",
            # No systemd here to run the timer; `podman healthcheck run` runs it on demand.
            "--health-interval=disable",
            built.ref,
        )
        try:
            with phase(built.timings, "podman run until /healthz"):
                wait_for_http(url + "/healthz", timeout=120)
        except TimeoutError as exc:
            logs = env.podman("logs", name, check=False)
            raise AssertionError(f"{exc}\n{logs.stdout}{logs.stderr}") from exc
        yield Container(env, name, volume, url, image_id)
    finally:
        env.podman("rm", "--force", "--time", "5", name, check=False)
        env.podman("volume", "rm", "--force", volume, check=False)
        env.podman("rmi", "--force", built.ref, check=False)
        env.cleanup()


def test_podman_pulls_the_image_dockyard_pushed(built: Built, container: Container) -> None:
    # podman names an image by its config's digest: what it pulled is what buildah built.
    assert "sha256:" + container.image_id.removeprefix("sha256:") == built.config_digest
    inspected = json.loads(container.env.podman("image", "inspect", built.ref).stdout)[0]
    config = inspected["Config"]
    assert config["Entrypoint"] == ["dockyard"] and config["Cmd"] == ["serve"]
    assert config["User"] == "10001:10001" and "5000/tcp" in config["ExposedPorts"]
    assert "/var/lib/dockyard" in config["Volumes"]
    assert "DOCKYARD_LISTEN=0.0.0.0:5000" in config["Env"]
    print("seconds per step:", json.dumps(built.timings))


def test_the_container_serves_v2_healthz_and_readyz(container: Container) -> None:
    v2 = httpx.get(container.url + "/v2/", timeout=10)
    # Listening on 0.0.0.0 inside, accounts are on: a token challenge naming the public URL.
    assert v2.status_code == 401
    assert v2.headers["docker-distribution-api-version"] == "registry/2.0"
    assert f'realm="{container.url}/token"' in v2.headers["www-authenticate"]
    assert httpx.get(container.url + "/healthz", timeout=10).status_code == 200
    ready = httpx.get(container.url + "/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    # The image's HEALTHCHECK asks /healthz from inside the container.
    checked = container.env.podman("healthcheck", "run", container.name, check=False)
    assert checked.returncode == 0, (checked.stdout, checked.stderr)
    # The first start made 'admin' with the password given: the token endpoint takes it and
    # refuses a wrong one.
    token = f"{container.url}/token?service=dockyard&scope=repository:admin/x:pull"
    assert httpx.get(token, auth=("admin", PASSWORD), timeout=10).status_code == 200
    assert httpx.get(token, auth=("admin", PASSWORD + "x"), timeout=10).status_code == 401


def test_runs_as_its_user_with_the_data_in_the_volume(container: Container) -> None:
    who = container.env.podman("exec", container.name, "id", "-u").stdout.strip()
    assert who == "10001"
    listing = container.env.podman("exec", container.name, "ls", "/var/lib/dockyard").stdout
    assert "blobs" in listing.split()
    mounts = json.loads(container.env.podman("inspect", container.name).stdout)[0]["Mounts"]
    assert [(m["Name"], m["Destination"]) for m in mounts] == [
        (container.volume, "/var/lib/dockyard")
    ]


def test_skopeo_pushes_into_the_container_and_reads_back_across_a_restart(
    container: Container, tmp_path: Path
) -> None:
    env = container.env
    env.allow_insecure(container.host)
    image = write_oci_image(tmp_path / "src", "v1", seed="into-the-container", layers=2)
    dest = f"docker://{container.host}/admin/hello:v1"
    creds = f"admin:{PASSWORD}"
    env.skopeo(
        "copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{tmp_path / 'src'}:v1", dest
    )
    raw = env.inspect_raw(dest, "--creds", creds)
    assert raw == image.manifest_bytes
    # Stopped with SIGTERM and started again: the image is still there, from the volume.
    env.podman("stop", "--time", "45", container.name, timeout=120)
    env.podman("start", container.name, timeout=120)
    wait_for_http(container.url + "/healthz", timeout=120)
    (tmp_path / "back").mkdir()
    env.skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        creds,
        dest,
        f"oci:{tmp_path / 'back' / 'out'}:v1",
    )
    back = env.skopeo("inspect", "--raw", f"oci:{tmp_path / 'back' / 'out'}:v1", text=False)
    assert back.stdout == image.manifest_bytes
    anonymous = httpx.get(f"{container.url}/v2/admin/hello/manifests/v1", timeout=10)
    assert anonymous.status_code == 401  # a private repository by default
