"""Typed, strict configuration: defaults, then a YAML file, then DOCKYARD_* variables, then flags.

Unknown keys and bad values are rejected before the server starts (`dockyard config check`).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dockyard.core.fields import InvalidFields, Record, field, list_fields

if TYPE_CHECKING:
    import yaml

ENV_PREFIX = "DOCKYARD_"


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


def _check_name(value: str) -> str:
    from dockyard.core.names import is_valid_name

    if "/" in value or not is_valid_name(value):
        raise ValueError("an upstream name is one lower-case path component, e.g. docker.io")
    return value


def _check_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValueError("expected http(s)://HOST[:PORT]")
    if "@" in parts.netloc:
        # Not quoted back: the part before @ may be a password.
        raise ValueError(
            "expected http(s)://HOST[:PORT]; credentials go in username and password, "
            "which are never shown"
        )
    return value.rstrip("/")


def _check_proxies_unique(value: list[Upstream]) -> list[Upstream]:
    names = [u.name for u in value]
    if len(set(names)) != len(names):
        raise ValueError("upstream names must be unique")
    if sum(u.mirror for u in value) > 1:
        raise ValueError("only one upstream can be the mirror")
    return value


def _check_public_url(value: str | None) -> str | None:
    if value is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    # Quoted into the WWW-Authenticate challenge: nothing that could end the quoted
    # string or the header.
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
        or any(c in value for c in '"\\, ')
        or not value.isprintable()
    ):
        raise ValueError("expected http(s)://HOST[:PORT][/PATH]")
    return value.rstrip("/")


def _check_proxies(value: list[str]) -> list[str]:
    for entry in value:
        ipaddress.ip_network(entry, strict=False)
    return value


def _check_listen(value: str) -> str:
    host, port = split_listen(value)
    if not 0 < port < 65536:
        raise ValueError("port must be between 1 and 65535")
    if not host:
        raise ValueError("host missing")
    return value


def _check_metrics_listen(value: str | None) -> str | None:
    return None if value is None else _check_listen(value)


@dataclasses.dataclass(frozen=True, init=False)
class Upstream(Record):
    """A registry cached through this one: pull `NAME/REPO` here to get `REPO` from `url`."""

    name: str = field(
        description="the prefix and the `ns` host it answers, e.g. docker.io or ghcr.io",
        check=_check_name,
    )
    url: str = field(
        description="the upstream registry, e.g. https://registry-1.docker.io", check=_check_url
    )
    username: str | None = None
    password: str | None = None
    ttl_seconds: int = field(300, ge=0, description="serve a tag from cache this long unchecked")
    mirror: bool = field(False, description="also serve un-prefixed names (registry-mirrors)")
    anonymous: bool = field(
        False, description="with accounts on, let anonymous clients pull through the cache"
    )
    timeout_seconds: float = field(30.0, gt=0, description="per upstream request")


def parse_upstream_flag(text: str) -> dict[str, Any]:
    """`NAME=URL` from the command line."""
    name, sep, url = text.partition("=")
    if not sep:
        raise ConfigError(
            f"--proxy {text!r}: expected NAME=URL, e.g. docker.io=https://registry-1.docker.io"
        )
    return {"name": name.strip(), "url": url.strip()}


@dataclasses.dataclass(frozen=True, init=False)
class Settings(Record):
    """Every setting of a registry, checked and converted as the sources are merged."""

    listen: str = field("127.0.0.1:5000", description="HOST:PORT to listen on", check=_check_listen)
    data_dir: Path = field(Path("dockyard-data"), description="folder for blobs and metadata")
    storage: str | None = field(
        None,
        description="s3://BUCKET[/PREFIX] to keep blobs in S3-compatible storage; "
        "default: the data folder",
    )
    s3_endpoint: str | None = field(None, description="S3 endpoint URL (MinIO, SeaweedFS, …)")
    s3_region: str = field("us-east-1", description="S3 region")
    s3_path_style: bool = field(False, description="path-style S3 addressing")
    s3_access_key: str | None = field(None, description="default: AWS_ACCESS_KEY_ID")
    s3_secret_key: str | None = field(None, description="default: AWS_SECRET_ACCESS_KEY")
    s3_redirect_seconds: int = field(
        600,
        ge=0,
        description="blob GETs answer 307 to a URL presigned for this long; "
        "0 = stream through the registry",
    )
    redis_url: str | None = field(
        None,
        description="redis://HOST:PORT/DB shared by replicas for rate limits and "
        "throttling (required with several replicas; one node keeps them in its data folder)",
    )
    metadata: str | None = field(
        None,
        description="postgresql://USER[:PASSWORD]@HOST[:PORT]/DB for shared metadata; "
        "default: SQLite in the data folder",
    )
    public_url: str | None = field(
        None,
        description="http(s)://HOST[:PORT][/PATH] clients reach this registry at (behind "
        "a proxy or a name); the token realm is built from it. Default: the listen address",
        check=_check_public_url,
    )
    tls_cert: Path | None = field(None, description="PEM certificate (chain): serve HTTPS")
    tls_key: Path | None = field(None, description="PEM private key of tls_cert")
    workers: int = field(0, ge=0, le=64, description="server processes; 0 = one per core")
    read_only: bool = field(False, description="serve pulls only; writes answer UNSUPPORTED")
    insecure_no_auth: bool = field(
        False, description="allow serving writes without authentication on a non-loopback address"
    )
    upload_ttl_seconds: int = field(
        24 * 3600, ge=1, description="abandoned uploads older than this are removed"
    )
    upload_purge_interval_seconds: int = field(
        600, ge=1, description="how often abandoned uploads are looked for"
    )
    gc: bool = field(
        True, description="collect garbage while serving (unreferenced blobs, expired uploads)"
    )
    gc_grace_seconds: int = field(
        3600,
        ge=0,
        description="how long content nothing references is kept before it is collected "
        "(a push uploads layers before its manifest); 0 collects at once",
    )
    gc_interval_seconds: float = field(
        60.0, gt=0, le=86400, description="how often the collector runs while serving"
    )
    gc_untagged_manifests: bool = field(
        False,
        description="also collect manifests no tag, index or subject keeps (default: keep "
        "them, as Docker Hub and GHCR do)",
    )
    chunk_min_length: int | None = field(
        None,
        ge=0,
        description="bytes every chunk of an upload but the last must hold, sent as "
        "OCI-Chunk-Min-Length and enforced (416); default: S3 advertises its 5 MiB part "
        "size without enforcing it, the filesystem nothing; 0 = neither",
    )
    body_timeout_seconds: float = field(
        60.0, gt=0, description="a client sending no body bytes for this long is cut off"
    )
    header_timeout_seconds: float = field(
        10.0,
        gt=0,
        le=3600,
        description="a client that has not sent a request's headers this "
        "long after connecting (or after the previous answer) is cut off",
    )
    shutdown_timeout_seconds: int = field(
        30,
        ge=1,
        le=3600,
        description="on SIGTERM (or SIGINT) the server stops accepting connections, closes idle "
        "ones and lets requests in progress finish for up to this long before it stops their "
        "workers; keep systemd's TimeoutStopSec above it",
    )
    max_requests_per_client: int = field(
        64,
        ge=0,
        description="requests one client address (an IPv6 client's /64) may have in "
        "progress at once, per worker; more answer 429 TOOMANYREQUESTS. 0 = unlimited",
    )
    # -- events and webhooks -----------------------------------------------------------------
    event_pulls: bool = field(
        False, description="also send an event for every manifest pulled (GET) to webhooks"
    )
    event_pulls_window_seconds: float = field(
        1.0,
        gt=0,
        le=60,
        description="pulls are counted this long per puller and manifest, then written as one "
        "event each with its count (a crash loses the last window; a graceful stop does not)",
    )
    webhook_allow_loopback: bool = field(
        False,
        description="let webhooks point at loopback and link-local addresses (127/8, ::1, "
        "169.254/16, fe80::/10); refused by default, at creation and at every delivery",
    )
    webhook_timeout_seconds: float = field(
        10.0, gt=0, le=300, description="a webhook's answer is awaited this long"
    )
    webhook_retry_seconds: float = field(
        2.0,
        gt=0,
        description="the first retry of a failed delivery waits about this long, each "
        "further one twice as long (with jitter), up to webhook_max_retry_seconds",
    )
    webhook_max_retry_seconds: float = field(
        600.0, gt=0, description="the longest wait between two attempts of a delivery"
    )
    fsync: bool = field(True, description="fsync blobs before acknowledging them")
    log_requests: bool = field(True, description="log one line per request")
    audit_retention_days: float = field(
        90.0, gt=0, description="audit log records older than this many days are removed"
    )
    log_format: Literal["text", "json"] = field(
        "text",
        description="text (for people) or json (one object per line, with the request id)",
    )
    ui: bool = field(True, description="serve the web pages at / (the API is unchanged)")
    metrics: bool = field(
        True, description="keep Prometheus metrics, served at /metrics to administrators"
    )
    metrics_listen: str | None = field(
        None,
        description="HOST:PORT of a second listener serving /metrics without authentication "
        "(bind it to loopback or a private network)",
        check=_check_metrics_listen,
    )

    # -- accounts and tokens ---------------------------------------------------------------
    auth: bool = field(
        False, description="require accounts and tokens (implied on a non-loopback address)"
    )
    default_visibility: Literal["public", "private"] = field(
        "private", description="visibility of new repositories unless their namespace says"
    )
    token_service: str = field("dockyard", description="the service name tokens are issued for")
    token_realm: str | None = field(
        None,
        description="URL of the token endpoint announced to clients; default: /token under "
        "public_url, else under the listen address",
        check=_check_public_url,
    )
    token_ttl_seconds: int = field(300, ge=30, le=86400, description="access token lifetime")
    refresh_token_ttl_seconds: int = field(
        30 * 86400, ge=60, description="refresh (offline) token lifetime"
    )
    anonymous_pull_limit: int = field(
        100,
        ge=0,
        description="manifest pulls per window per anonymous address (an IPv6 "
        "client's /64); 0 = unlimited",
    )
    authenticated_pull_limit: int = field(
        200, ge=0, description="manifest pulls per window per account; 0 = unlimited"
    )
    pull_limit_window_seconds: int = field(21600, ge=1, description="rate-limit window")
    trusted_proxies: list[str] = field(
        default_factory=list,
        description="addresses or networks whose X-Forwarded-For is believed",
        check=_check_proxies,
    )
    login_failure_limit: int = field(
        10,
        ge=0,
        description="failed password logins per window per account and address (ten times as "
        "many per account from all addresses); 0 = off",
    )
    login_failure_window_seconds: int = field(300, ge=1, description="failed-login window")
    password_min_length: int = field(
        8,
        ge=1,
        le=1024,
        description="shortest password an account may be given (user add, user passwd, the "
        "account API, DOCKYARD_ADMIN_PASSWORD); access tokens are not passwords",
    )

    # -- pull-through cache ------------------------------------------------------------------
    proxies: list[Upstream] = field(
        default_factory=list,
        description="registries cached through this one",
        check=_check_proxies_unique,
    )

    cache_max_bytes: int | None = field(
        None,
        ge=0,
        description="size limit of the pull-through cache; least recently used "
        "images are evicted past it",
    )

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def is_wildcard(self) -> bool:
        """Listening on every interface: the address names no host a client could use."""
        return self.host in ("0.0.0.0", "::", "")

    def public_base(self) -> str:
        """Where clients reach this registry, without a trailing slash: `public_url`, else the
        listen address (on a wildcard address, this machine's name). Never the request's Host
        header, which the client chooses."""
        if self.public_url:
            return self.public_url
        host = machine_name() if self.is_wildcard else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls_cert else 'http'}://{host}:{self.port}"

    @property
    def auth_enabled(self) -> bool:
        """Accounts are on when asked for, and always on a network address unless refused."""
        return self.auth or (not self.is_loopback and not self.insecure_no_auth)

    @property
    def is_loopback(self) -> bool:
        host = self.host
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


@functools.cache
def machine_name() -> str:
    """This machine's name as other machines would use it: its fully qualified name when the
    resolver knows one, else its host name (containers often resolve theirs to localhost)."""
    import socket

    fqdn = socket.getfqdn()
    if "." in fqdn and not fqdn.startswith("localhost"):
        return fqdn
    return socket.gethostname()


REDACTED = "***"
# Settings whose whole value is a secret, and those that are URLs with a password in them.
SECRET_KEYS = ("s3_secret_key",)
URL_KEYS = ("metadata", "redis_url")


def _is_secret_parameter(name: str) -> bool:
    """Query parameters drivers read a secret from (libpq's `password` and `sslpassword`,
    redis-py's `password`), and any other that names one."""
    from urllib.parse import unquote_plus

    name = unquote_plus(name).lower()
    return any(word in name for word in ("pass", "secret", "token"))


def _url_secrets(url: str) -> list[str]:
    """The URL's password and secret query parameters, as written and as decoded."""
    from urllib.parse import unquote, unquote_plus, urlsplit

    try:
        parts = urlsplit(url)
        written = [parts.password or ""]
    except ValueError:
        return []
    for item in parts.query.split("&"):
        name, _, value = item.partition("=")
        if _is_secret_parameter(name):
            written.append(value)
    found = {form for value in written for form in (value, unquote(value), unquote_plus(value))}
    return [value for value in found if value]


def redact_url(url: str) -> str:
    """The URL with its password and secret query parameters (if any) replaced, the rest
    left for the reader."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return REDACTED
    if password:
        user, _, host = parts.netloc.rpartition("@")
        name = user.partition(":")[0]
        parts = parts._replace(netloc=f"{name}:{REDACTED}@{host}")
    if parts.query:
        items = []
        for item in parts.query.split("&"):
            name, sep, _ = item.partition("=")
            items.append(f"{name}={REDACTED}" if sep and _is_secret_parameter(name) else item)
        parts = parts._replace(query="&".join(items))
    return urlunsplit(parts)


def redacted(settings: Settings) -> dict[str, Any]:
    """The settings as `config show` prints them: every secret replaced by ***."""
    values = settings.model_dump(mode="json")
    for key in SECRET_KEYS:
        if values.get(key):
            values[key] = REDACTED
    for key in URL_KEYS:
        if values.get(key):
            values[key] = redact_url(values[key])
    for upstream in values["proxies"]:
        if upstream.get("password"):
            upstream["password"] = REDACTED
    return values


def secrets_of(settings: Settings, environ: dict[str, str] | None = None) -> list[str]:
    """Every secret value the settings (and the admin password variable) hold, longest first,
    for scrubbing messages that may quote them (a driver's error quoting the database URL)."""
    found = [getattr(settings, key) for key in SECRET_KEYS]
    for key in URL_KEYS:
        url = getattr(settings, key)
        found += _url_secrets(url) if url else []
    found += [u.password for u in settings.proxies]
    found.append((os.environ if environ is None else environ).get("DOCKYARD_ADMIN_PASSWORD"))
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(text: str, settings: Settings) -> str:
    for secret in secrets_of(settings):
        text = text.replace(secret, REDACTED)
    return text


def split_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        raise ValueError("expected HOST:PORT")
    try:
        number = int(port)
    except ValueError as exc:
        raise ValueError("port must be a number") from exc
    return host.strip("[]"), number


def _env_values(environ: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    lists = list_fields(Settings)
    for name in Settings.model_fields:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            # Lists come comma-separated (DOCKYARD_TRUSTED_PROXIES=10.0.0.1,10.0.1.0/24) or as
            # JSON (DOCKYARD_PROXIES='[{"name": "docker.io", "url": "https://…"}]').
            is_list = name in lists
            if is_list and raw.lstrip().startswith("["):
                try:
                    values[name] = json.loads(raw)
                except ValueError as exc:
                    raise ConfigError(f"{ENV_PREFIX}{name.upper()} is not valid JSON") from exc
            elif is_list:
                values[name] = [p.strip() for p in raw.split(",") if p.strip()]
            else:
                values[name] = raw
    return values


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, without the parser's quote of the line: it may hold a
    password."""
    parts = []
    for text, mark in (
        (getattr(exc, "context", None), getattr(exc, "context_mark", None)),
        (getattr(exc, "problem", None), getattr(exc, "problem_mark", None)),
    ):
        if text:
            parts.append(
                text + (f" (line {mark.line + 1}, column {mark.column + 1})" if mark else "")
            )
    return ": ".join(parts) or "it cannot be parsed"


def load_settings(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Merge the sources in order of precedence and validate the result."""
    values: dict[str, Any] = {}
    environ = dict(os.environ) if environ is None else environ
    config_file = config_file or (
        Path(environ["DOCKYARD_CONFIG"]) if environ.get("DOCKYARD_CONFIG") else None
    )
    if config_file is not None:
        import yaml  # only for a configuration file: a server started with flags needs no YAML

        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read {config_file}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_file} is not valid YAML: {_yaml_problem(exc)}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file} must hold a mapping of settings")
        values.update({str(k).replace("-", "_"): v for k, v in loaded.items()})
    values.update(_env_values(environ))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return Settings(**values)
    except InvalidFields as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc


def check_security(settings: Settings) -> None:
    """Nothing left to refuse: a network address turns accounts on unless told otherwise."""
    if settings.insecure_no_auth and settings.auth:
        raise ConfigError("auth and insecure_no_auth contradict each other; choose one")
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ConfigError("tls_cert and tls_key go together: give both or neither")
    for path in (settings.tls_cert, settings.tls_key):
        if path is not None and not path.is_file():
            raise ConfigError(f"{path} is not a readable file")
    if settings.tls_cert is not None and settings.tls_key is not None:
        from dockyard.core.tls import TlsFileError, check_pair

        try:
            check_pair(settings.tls_cert, settings.tls_key)
        except TlsFileError as exc:
            raise ConfigError(str(exc)) from None
