"""Real peer tools for interop tests: skopeo, podman, buildah, umoci and CNCF Distribution.

* `require(name)`: the binary's path; a missing peer fails the test under CI (env CI set) and
  skips it elsewhere. `.ci/install-peers.sh` installs them all.
* `ContainersEnv` / `containers_env(dir)`: run skopeo/podman/buildah against private vfs storage,
  registries.conf, policy.json, containers.conf and auth file in a temp folder, so tests never
  touch the machine's images, credentials or the network beyond the registries they name.
* `Distribution`: a CNCF Distribution (`docker-registry serve`) on a free loopback port, with a
  temp filesystem root and optional htpasswd auth or pull-through upstream.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import OnLoopback, free_port, wait_for_http

_EXTRA_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin")
# The peers Debian does not package (crane, regctl, CNCF Distribution v3) are kept in shared/,
# which lies beside the checkout (and beside CI's clone); DOCKYARD_PEERS_DIR names another place.
SHARED_PEERS = Path(__file__).resolve().parents[3] / "shared" / "peers" / "bin"

Completed = subprocess.CompletedProcess[Any]

INSTALL_HINT = "install the peers with `bash .ci/install-peers.sh` (as root)"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def find_binary(name: str) -> str | None:
    """Absolute path of a peer binary, looking past a PATH without the sbin folders."""
    found = shutil.which(name)
    if found:
        return found
    shared = os.environ.get("DOCKYARD_PEERS_DIR") or SHARED_PEERS
    for folder in (shared, *_EXTRA_DIRS):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require(name: str) -> str:
    """Path of `name`; pytest.fail under CI when it is missing (never skip in CI), else skip."""
    path = find_binary(name)
    if path is None:
        message = f"peer binary {name!r} not found; {INSTALL_HINT}"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def require_module(name: str) -> Any:
    """Import a Python peer (e.g. `oras.client`); fail under CI when it is missing, else skip."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        message = f"Python peer {name!r} not importable ({exc}); pip install the test extras"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


def unique_repo(prefix: str = "interop") -> str:
    """A repository name no other test uses (lowercase, valid per the distribution spec)."""
    return f"interop/{prefix.lower()}-{uuid.uuid4().hex[:10]}"


def _tail(stream: str | bytes | None) -> str:
    if isinstance(stream, bytes):
        stream = stream.decode(errors="replace")
    return (stream or "")[-6000:]


class PeerCommandError(AssertionError):
    def __init__(self, cmd: Sequence[str], result: subprocess.CompletedProcess[Any]):
        self.cmd = list(cmd)
        self.result = result
        super().__init__(
            f"command failed with exit {result.returncode}: {' '.join(cmd)}\n"
            f"--- stdout ---\n{_tail(result.stdout)}\n--- stderr ---\n{_tail(result.stderr)}"
        )


def run(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 300.0,
    cwd: Path | None = None,
    input: str | None = None,
    text: bool = True,
) -> subprocess.CompletedProcess[Any]:
    """Run a peer command, capture its output, and raise with both streams when it fails.

    `text=False` keeps stdout as bytes (for `skopeo inspect --raw`, compared byte for byte).
    """
    result = subprocess.run(
        list(cmd),
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=text,
        timeout=timeout,
        cwd=cwd,
        input=input if text or input is None else input.encode(),
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise PeerCommandError(cmd, result)
    return result


# ---------------------------------------------------------------------------------------------
# podman / buildah / skopeo in an isolated environment


INSECURE_POLICY = {"default": [{"type": "insecureAcceptAnything"}]}


@dataclass
class ContainersEnv:
    """Private containers/storage + containers/image configuration under `root`.

    Every command gets the same environment: vfs storage (no fuse, no overlay), a registries.conf
    without search registries (no short name ever reaches the network), an accept-anything
    policy.json, a containers.conf that keeps podman's state under `root`, and an auth file at
    `auth_file` (REGISTRY_AUTH_FILE).
    """

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    insecure_registries: list[str] = field(default_factory=list)
    # "overlay" where the kernel allows it: a build's many layers are not copied whole each.
    driver: str = "vfs"
    # What `podman run` needs in this sandbox (tests/packaging): runc, since crun 1.8 refuses
    # the hybrid cgroup layout, and limits no higher than the machine's hard ones, since the
    # runtime lacks CAP_SYS_RESOURCE to raise them (podman's default nofile is 1048576).
    runtime: str | None = None
    ulimits: Sequence[str] = ()

    @property
    def auth_file(self) -> Path:
        return self.root / "auth.json"

    @property
    def policy_file(self) -> Path:
        return self.root / "policy.json"

    @property
    def registries_conf(self) -> Path:
        return self.root / "registries.conf"

    def setup(self) -> ContainersEnv:
        home = self.root / "home"
        run_dir = self.root / "run"
        for folder in (
            home / ".config" / "containers",
            run_dir,
            self.root / "tmp",
            self.root / "graph",
            self.root / "libpod-tmp",
        ):
            folder.mkdir(parents=True, exist_ok=True)
        run_dir.chmod(0o700)
        storage_conf = self.root / "storage.conf"
        storage_conf.write_text(
            "[storage]\n"
            f'driver = "{self.driver}"\n'
            f'runroot = "{self.root / "runroot"}"\n'
            f'graphroot = "{self.root / "graph"}"\n'
        )
        containers_conf = self.root / "containers.conf"
        containers_conf.write_text(
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{self.root / "events.log"}"\n'
            f'tmp_dir = "{self.root / "libpod-tmp"}"\n'
            'lock_type = "file"\n'
            + (f'runtime = "{self.runtime}"\n' if self.runtime else "")
            + "[containers]\n"
            'log_driver = "k8s-file"\n'
            + (f"default_ulimits = {json.dumps(list(self.ulimits))}\n" if self.ulimits else "")
        )
        self.policy_file.write_text(json.dumps(INSECURE_POLICY))
        # containers/image looks for a per-user policy.json in $HOME before /etc/containers.
        (home / ".config" / "containers" / "policy.json").write_text(json.dumps(INSECURE_POLICY))
        self.write_registries_conf()
        self.auth_file.write_text('{"auths": {}}')
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                ("CONTAINERS_", "REGISTRY_AUTH", "BUILDAH_", "PODMAN_", "DOCKER_", "STORAGE_")
            )
        }
        self.env = {
            **base,
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(run_dir),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "TMPDIR": str(self.root / "tmp"),
            "CONTAINERS_STORAGE_CONF": str(storage_conf),
            "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
            "CONTAINERS_CONF": str(containers_conf),
            "REGISTRY_AUTH_FILE": str(self.auth_file),
            "DOCKER_CONFIG": str(home / ".docker"),
            "BUILDAH_ISOLATION": "chroot",
        }
        return self

    def write_registries_conf(self) -> None:
        lines = ["unqualified-search-registries = []", 'short-name-mode = "permissive"', ""]
        for host in self.insecure_registries:
            lines += ["[[registry]]", f'location = "{host}"', "insecure = true", ""]
        self.registries_conf.write_text("\n".join(lines))

    def allow_insecure(self, host: str) -> None:
        """Mark `host` as plain HTTP in registries.conf (for `FROM host/...` in buildah build)."""
        if host not in self.insecure_registries:
            self.insecure_registries.append(host)
            self.write_registries_conf()

    def run(
        self,
        binary: str,
        *args: str,
        check: bool = True,
        timeout: float = 300.0,
        cwd: Path | None = None,
        input: str | None = None,
        text: bool = True,
    ) -> subprocess.CompletedProcess[Any]:
        return run(
            [require(binary), *args],
            env=self.env,
            check=check,
            timeout=timeout,
            cwd=cwd,
            input=input,
            text=text,
        )

    def skopeo(self, *args: str, check: bool = True, **kw: Any) -> Completed:
        return self.run("skopeo", "--policy", str(self.policy_file), *args, check=check, **kw)

    def podman(self, *args: str, check: bool = True, **kw: Any) -> Completed:
        return self.run("podman", *args, check=check, **kw)

    def buildah(self, *args: str, check: bool = True, **kw: Any) -> Completed:
        return self.run("buildah", *args, check=check, **kw)

    def inspect_raw(self, ref: str, *extra: str) -> bytes:
        """`skopeo inspect --raw` of a docker:// reference, as the exact bytes served."""
        return self.skopeo("inspect", "--raw", "--tls-verify=false", *extra, ref, text=False).stdout

    def inspect_json(self, ref: str, *extra: str) -> dict[str, Any]:
        return json.loads(self.inspect_raw(ref, *extra))

    def cleanup(self) -> None:
        """Drop the storage. vfs layers are plain folders; `buildah rm` releases its containers.

        (Not `podman system reset`: it also prunes networks, which live in a machine-wide folder.)
        """
        buildah = find_binary("buildah")
        if buildah and (self.root / "graph").exists():
            run([buildah, "rm", "--all"], env=self.env, check=False, timeout=120)
        # overlay storage keeps its folder and image mounts mounted: undo them, deepest first.
        for point in sorted(mounts_under(self.root), key=len, reverse=True):
            run(["umount", "--lazy", point], check=False, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, from this process's mount table."""
    prefix = str(root.resolve())
    found = []
    with open("/proc/self/mountinfo") as table:
        for line in table:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


@contextmanager
def containers_env(root: Path, insecure_registries: Sequence[str] = ()) -> Iterator[ContainersEnv]:
    """A `ContainersEnv` under `root`, wiped afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    env = ContainersEnv(root=root, insecure_registries=list(insecure_registries)).setup()
    try:
        yield env
    finally:
        env.cleanup()


# ---------------------------------------------------------------------------------------------
# CNCF Distribution


def write_htpasswd(path: Path, users: Mapping[str, str]) -> Path:
    """A bcrypt htpasswd file (the only hash Distribution accepts), written with `htpasswd -B`."""
    htpasswd = require("htpasswd")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    for n, (user, password) in enumerate(users.items()):
        flags = "-Bbc" if n == 0 else "-Bb"
        run([htpasswd, flags, str(path), user, password])
    return path


@dataclass
class Distribution(OnLoopback):
    """A CNCF Distribution registry (`docker-registry serve`) for use as a peer.

    `users` turns on htpasswd Basic auth; `proxy_remote` makes it a pull-through cache of that
    URL (which must already answer). `config` entries are merged into the generated config.
    Gotcha (2.8.2): as a pull-through cache it does not send `proxy.username/password` to a
    Basic-auth upstream (the upstream logs a 401, clients get MANIFEST_UNKNOWN); proxy only
    no-auth upstreams.
    """

    root: Path
    port: int = 0
    users: Mapping[str, str] | None = None
    proxy_remote: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def storage_dir(self) -> Path:
        return self.root / "storage"

    def build_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
            },
            "http": {"addr": self.host, "secret": "dockyard-test-secret"},
        }
        if self.users:
            htpasswd = write_htpasswd(self.root / "htpasswd", self.users)
            config["auth"] = {"htpasswd": {"realm": "basic-realm", "path": str(htpasswd)}}
        if self.proxy_remote:
            config["proxy"] = {"remoteurl": self.proxy_remote}
        for key, value in self.config.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        return config

    def start(self, timeout: float = 20.0) -> Distribution:
        binary = require("docker-registry")
        self.root.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        config_path = self.root / "config.yml"
        # JSON is YAML: no YAML writer needed.
        config_path.write_text(json.dumps(self.build_config(), indent=2))
        self.log_path = self.root / f"distribution-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        env.pop("AWS_CA_BUNDLE", None)  # crashes its S3 driver when set
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [binary, "serve", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        try:
            wait_for_http(self.url + "/v2/", timeout=timeout, proc=self.proc)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"docker-registry did not start: {exc}\n{self.log()}") from exc
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def __enter__(self) -> Distribution:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
