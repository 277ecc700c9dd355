"""Registry credentials, kept where docker and podman keep them so users can switch tools.

Reads and writes `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`) exactly as the
docker CLI does: `auths[KEY].auth` is base64("user:password"), `identitytoken` holds an OAuth2
refresh token, and `credsStore` / `credHelpers` hand secrets to `docker-credential-NAME`
helpers (JSON over stdin/stdout, never argv). Docker Hub's key is `https://index.docker.io/v1/`.
Also reads podman/skopeo's auth file (`$REGISTRY_AUTH_FILE` when set, as they do, else
`$XDG_RUNTIME_DIR/containers/auth.json`), whose keys may name a repository (`host/ns/repo`).

Secrets never appear in exception messages or in `repr()`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.client.blobio import write_atomic
from dockyard.client.errors import CredentialsError
from dockyard.core.reference import DOCKER_HUB, DOCKER_HUB_API

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = frozenset({DOCKER_HUB, DOCKER_HUB_API, "index.docker.io"})
# What a helper prints as the user name when the secret is an identity token.
_TOKEN_USER = "<token>"
_HELPER_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Credentials:
    """What to authenticate with: user + password, and/or an OAuth2 refresh token."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token)


def normalize_host(server: str) -> str:
    """The registry host a user or a config key names: no scheme (`docker://` included), no
    path; Hub is `docker.io`.

    `https://index.docker.io/v1/`, `registry-1.docker.io` and `docker.io` are all Docker Hub.
    """
    host = server.strip()
    for prefix in ("https://", "http://", "docker://"):
        if host.lower().startswith(prefix):
            host = host[len(prefix) :]
            break
    host = host.split("/", 1)[0]
    return DOCKER_HUB if host.lower() in _HUB_ALIASES else host


def config_key(host: str) -> str:
    """The key docker uses in `auths` and sends to helpers for this host."""
    host = normalize_host(host)
    return DOCKER_HUB_KEY if host == DOCKER_HUB else host


def _docker_config_dir(env: Mapping[str, str]) -> Path:
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"])
    return Path(env.get("HOME") or Path.home()) / ".docker"


def _decode_auth(entry: Mapping[str, Any], where: str) -> Credentials | None:
    username = entry.get("username") or None
    password = entry.get("password") or None
    encoded = entry.get("auth")
    if encoded:
        try:
            decoded = base64.b64decode(encoded, validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialsError(
                f"{where}: an `auth` entry is not valid base64 of user:password; log in again"
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise CredentialsError(
                f"{where}: an `auth` entry has no ':' between user and password; log in again"
            )
    creds = Credentials(username or None, password or None, entry.get("identitytoken") or None)
    return None if creds.empty else creds


class CredentialHelper:
    """`docker-credential-NAME get|store|erase`, speaking JSON on stdin/stdout."""

    def __init__(self, name: str, env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.binary = f"docker-credential-{name}"
        self.env = dict(env) if env is not None else None

    def _run(self, action: str, payload: str) -> subprocess.CompletedProcess[str]:
        path_var = (self.env or os.environ).get("PATH")
        binary = shutil.which(self.binary, path=path_var)
        if binary is None:
            raise CredentialsError(
                f"credential helper {self.binary!r} is not installed (named "
                "by credsStore/credHelpers in the docker config); install "
                "it or remove that setting"
            )
        try:
            return subprocess.run(
                [binary, action],
                input=payload,
                capture_output=True,
                text=True,
                timeout=_HELPER_TIMEOUT,
                env=self.env,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CredentialsError(
                f"credential helper {self.binary} {action} failed: {type(exc).__name__}"
            ) from None

    def _fail(self, action: str, result: subprocess.CompletedProcess[str]) -> CredentialsError:
        # Helpers print their own message on stdout; it never contains the secret we sent.
        detail = (result.stdout or result.stderr or "").strip().splitlines()
        reason = detail[0][:200] if detail else f"exit status {result.returncode}"
        return CredentialsError(f"credential helper {self.binary} {action} failed: {reason}")

    def get(self, server: str) -> Credentials | None:
        result = self._run("get", server)
        if result.returncode != 0:
            if "credentials not found" in (result.stdout + result.stderr).lower():
                return None
            raise self._fail("get", result)
        try:
            data = json.loads(result.stdout)
        except ValueError:
            raise CredentialsError(
                f"credential helper {self.binary} get printed something that is not JSON"
            ) from None
        username, secret = data.get("Username") or None, data.get("Secret") or None
        if username == _TOKEN_USER:
            return Credentials(identity_token=secret)
        creds = Credentials(username, secret)
        return None if creds.empty else creds

    def store(self, server: str, creds: Credentials) -> None:
        if creds.identity_token:
            username, secret = _TOKEN_USER, creds.identity_token
        else:
            username, secret = creds.username or "", creds.password or ""
        payload = json.dumps({"ServerURL": server, "Username": username, "Secret": secret})
        result = self._run("store", payload)
        if result.returncode != 0:
            raise self._fail("store", result)

    def erase(self, server: str) -> bool:
        result = self._run("erase", server)
        if result.returncode != 0:
            if "credentials not found" in (result.stdout + result.stderr).lower():
                return False
            raise self._fail("erase", result)
        return True


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CredentialsError(
            f"{path} is not valid JSON (line {exc.lineno}); fix or remove it"
        ) from None
    if not isinstance(data, dict):
        raise CredentialsError(f"{path} must hold a JSON object")
    return data


def _atomic_write(path: Path, data: dict[str, Any]) -> None:
    """Write via a 0600 temp file in the same folder and rename: never a half-written config."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, (json.dumps(data, indent="\t") + "\n").encode(), mode=0o600)


class CredentialStore:
    """Credentials for registry hosts, looked up the way docker (then podman) does.

    `env` defaults to the process environment read at each call, so tests and callers can point
    DOCKER_CONFIG / REGISTRY_AUTH_FILE / XDG_RUNTIME_DIR elsewhere.
    """

    def __init__(
        self, docker_config_dir: Path | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self._dir = docker_config_dir
        self._env = env

    @property
    def env(self) -> Mapping[str, str]:
        return self._env if self._env is not None else os.environ

    @property
    def docker_config_path(self) -> Path:
        return (self._dir or _docker_config_dir(self.env)) / "config.json"

    def podman_auth_files(self) -> list[Path]:
        # Podman and skopeo read only $REGISTRY_AUTH_FILE when it is set: a user pointing it
        # elsewhere must not be logged in by the default file.
        if self.env.get("REGISTRY_AUTH_FILE"):
            return [Path(self.env["REGISTRY_AUTH_FILE"])]
        if self.env.get("XDG_RUNTIME_DIR"):
            return [Path(self.env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"]
        return []

    def _helper_for(self, config: Mapping[str, Any], host: str) -> CredentialHelper | None:
        helpers = config.get("credHelpers") or {}
        name = helpers.get(config_key(host)) or helpers.get(normalize_host(host))
        name = name or config.get("credsStore")
        return CredentialHelper(name, self._env) if name else None

    def get(self, host: str, repository: str | None = None) -> Credentials | None:
        """Credentials for `host` (and, in podman files, the most specific `host/repo` key)."""
        host = normalize_host(host)
        path = self.docker_config_path
        config = _read_json(path) or {}
        helper = self._helper_for(config, host)
        if helper is not None:
            found = helper.get(config_key(host))
            if found:
                return found
        entry = _find_entry(config.get("auths") or {}, host)
        if entry is not None:
            found = _decode_auth(entry, str(path))
            if found:
                return found
        for auth_file in self.podman_auth_files():
            data = _read_json(auth_file) or {}
            auths = data.get("auths") or {}
            for key in _podman_keys(host, repository):
                entry = _find_entry(auths, key, exact=key != host)
                if entry is not None:
                    found = _decode_auth(entry, str(auth_file))
                    if found:
                        return found
        return None

    def store(self, host: str, creds: Credentials) -> Path:
        """Save as docker does: into the helper when one is configured, else base64 in `auths`."""
        host = normalize_host(host)
        path = self.docker_config_path
        config = _read_json(path) or {}
        auths = config.setdefault("auths", {})
        for key in [k for k in auths if normalize_host(k) == host]:
            del auths[key]
        helper = self._helper_for(config, host)
        if helper is not None:
            helper.store(config_key(host), creds)
            auths[config_key(host)] = {}
        else:
            entry: dict[str, str] = {}
            if creds.username or creds.password:
                raw = f"{creds.username or ''}:{creds.password or ''}".encode()
                entry["auth"] = base64.b64encode(raw).decode()
            if creds.identity_token:
                entry["identitytoken"] = creds.identity_token
            auths[config_key(host)] = entry
        _atomic_write(path, config)
        return path

    def erase(self, host: str) -> bool:
        """Forget `host` in the docker config and its helper; True if anything was removed."""
        host = normalize_host(host)
        path = self.docker_config_path
        config = _read_json(path)
        if config is None:
            return False
        removed = False
        helper = self._helper_for(config, host)
        if helper is not None:
            removed = helper.erase(config_key(host))
        auths = config.get("auths") or {}
        for key in [k for k in auths if normalize_host(k) == host]:
            del auths[key]
            removed = True
        if removed:
            _atomic_write(path, config)
        return removed


def _find_entry(auths: Mapping[str, Any], host: str, exact: bool = False) -> dict | None:
    if exact:
        entry = auths.get(host)
        return entry if isinstance(entry, dict) else None
    for key, entry in auths.items():
        if isinstance(entry, dict) and normalize_host(key) == host:
            return entry
    return None


def _podman_keys(host: str, repository: str | None) -> list[str]:
    """Most specific first: `host/a/b`, `host/a`, `host` (containers-auth.json(5))."""
    keys = []
    if repository:
        parts = repository.split("/")
        keys = [f"{host}/{'/'.join(parts[:n])}" for n in range(len(parts), 0, -1)]
    return [*keys, host]
