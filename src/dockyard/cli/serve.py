"""Running the server: settings checked, schema migrated, then the HTTP server started."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import socket
import stat
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dockyard.cli.connections import (
    LISTEN_BACKLOG,
    connections_per_worker,
    raise_open_file_limit,
)
from dockyard.cli.exits import FAILED, USAGE, fail, say
from dockyard.cli.reload import Reloader
from dockyard.config import Settings, redact_url, scrub
from dockyard.core.errors import RegistryError
from dockyard.storage.private import OTHERS, private_umask

log = logging.getLogger("dockyard")


ADMIN_PASSWORD_ENV = "DOCKYARD_ADMIN_PASSWORD"


def prepare(settings: Settings) -> None:
    """Before any worker starts (`dockyard.assembly.prepare`), then the first admin's
    generated password shown once."""
    from dockyard import assembly

    private_umask()  # the data folder, databases and key are the owner's only
    generated = asyncio.run(assembly.prepare(settings, os.environ.get(ADMIN_PASSWORD_ENV)))
    if generated:
        sys.stderr.write(
            "\n  Dockyard created the administrator account 'admin' with the password\n\n"
            f"      {generated}\n\n  It is shown only this once. Log in with\n\n"
            f"      {login_command(settings)}\n\n"
            "  and change it with `dockyard user passwd admin`.\n\n"
        )


def login_command(settings: Settings) -> str:
    """The `dockyard login` command that works against this server as configured: a wildcard
    address is no host to connect to (the token realm names this machine, so that name is the
    one to use), plain HTTP needs --insecure off loopback, and a self-signed certificate needs
    --ca-cert."""
    from urllib.parse import urlsplit

    from dockyard.client.transport import is_loopback
    from dockyard.config import machine_name
    from dockyard.core.tls import check_pair

    if settings.public_url:
        host = urlsplit(settings.public_url).netloc
    elif settings.is_wildcard:
        host = f"{machine_name()}:{settings.port}"
    else:
        shown = f"[{settings.host}]" if ":" in settings.host else settings.host
        host = f"{shown}:{settings.port}"
    # Clients see HTTPS when this server serves it, or when public_url says a proxy in front
    # does (whose certificate is not ours to judge).
    flag = ""
    if settings.tls_cert and settings.tls_key:
        if check_pair(settings.tls_cert, settings.tls_key).self_signed:
            flag = f" --ca-cert {settings.tls_cert.resolve()}"
    elif not settings.public_base().startswith("https://") and not is_loopback(host):
        flag = " --insecure"
    return f"dockyard login{flag} {host} -u admin"


def prepare_apart(settings: Settings) -> None:
    """`prepare` in a short-lived child: the migration code (Alembic, 8 MiB) and whatever the
    setup leaves behind stay out of this process, whose memory every worker inherits.

    A failure is reported by the child, as it would have been here, and this process exits
    with the child's status."""
    wait_for_prepare(start_prepare(settings))


def start_prepare(settings: Settings) -> int:
    """Fork the child of `prepare_apart` and return its pid at once: this process has the
    application to import meanwhile (`share_with_workers`), on another core."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        # The collector stays off here as in the parent's start (`cli.main`): this child
        # imports the same libraries beside the parent, and its memory goes with its exit.
        from sqlalchemy.exc import SQLAlchemyError

        code = 0
        try:
            prepare(settings)
        except (OSError, SQLAlchemyError, ValueError) as exc:
            # A folder it cannot create or write, a database it cannot reach or whose URL is
            # malformed: one line.
            reason = scrub(_reason(exc), settings)  # a driver may quote the database URL
            say(f"cannot prepare {_where(settings)}: {reason}")
            code = FAILED
        except RegistryError as exc:  # the first admin's password breaks a rule
            say(f"{ADMIN_PASSWORD_ENV}: {exc.message}")
            code = USAGE
        except BaseException:
            sys.stderr.write(scrub(traceback.format_exc(), settings))
            code = FAILED
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return pid


def wait_for_prepare(pid: int) -> None:
    """Wait for the child of `start_prepare`; exit with its status if it failed."""
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if status != 0:
        raise SystemExit(status if status > 0 else 1)


def _where(settings: Settings) -> str:
    where = f"the data folder {settings.data_dir}"
    if settings.metadata:
        where += " and the metadata database"
    return where


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error
    return str(orig if orig is not None else exc).splitlines()[0]


def prepare_and_load(settings: Settings) -> None:
    """Prepare the registry (`prepare`, in a child of its own) while this process imports what
    its workers will share (`load_for_workers`); exit as `wait_for_prepare` does if the
    preparation failed. A registry that needs no preparing gets no child."""
    preparing = start_prepare(settings) if needs_preparing(settings) else None
    try:
        load_for_workers(settings)
    finally:
        if preparing is not None:
            wait_for_prepare(preparing)


def needs_preparing(settings: Settings) -> bool:
    """Whether `prepare` may have anything to do. Not on a data folder that is already private
    and whose SQLite schema is at the newest revision, with blobs on the file system and no
    accounts (so no signing key or first administrator to make): `prepare` would open the
    registry, find it current and close it, in a child that imports the whole registry beside
    this process (most of a start's CPU; bench/README.md). Asked without SQLAlchemy, read-only
    (`metadata.migrate.sqlite_at_head`): a revision being migrated by another process is not
    yet the head, so such a folder is still prepared, under the folder's lock."""
    if settings.metadata or settings.auth_enabled or (settings.storage or "").startswith("s3://"):
        return True
    from dockyard.metadata.migrate import METADATA_FILE, sqlite_at_head

    try:
        if stat.S_IMODE(settings.data_dir.stat().st_mode) & OTHERS:
            return True  # an older version's open folder: the child tightens it once
    except OSError:
        return True
    return not sqlite_at_head(settings.data_dir / METADATA_FILE)


def worker_count(settings: Settings) -> int:
    return settings.workers or max(1, os.cpu_count() or 1)


def run(
    settings: Settings, verbose: bool = False, reload: Callable[[], Settings] | None = None
) -> None:
    """Serve until SIGTERM or SIGINT. `reload` reads the settings again from where they came
    from, for SIGHUP (`dockyard.cli.reload`); without it a SIGHUP only replaces the workers."""
    from dockyard.core.memory import reuse_then_release

    claim = claim_address(settings.host, settings.port)
    # Before any worker is forked: blobs, uploads, databases and keys are the owner's only.
    private_umask()
    reuse_then_release()  # before granian is loaded (`http_server`)
    prepare_and_load(settings)
    from dockyard.api.app import SETTINGS_ENV

    if settings.metadata and not settings.redis_url and settings.auth_enabled:
        log.warning(
            "metadata is shared (PostgreSQL) but redis_url is not set: rate limits and "
            "login throttling are counted per replica; set redis_url when running "
            "several replicas"
        )
    if settings.auth_enabled and settings.is_wildcard and not settings.public_url:
        log.warning(
            "listening on every interface without public_url: token challenges name "
            "this machine (%s); set public_url to the name clients use",
            settings.public_base(),
        )
    os.environ[SETTINGS_ENV] = json.dumps(settings.model_dump(mode="json"))
    workers = worker_count(settings)
    open_files = raise_open_file_limit()
    # Which upstreams a cache answers for is the first thing to check when a pull fails.
    upstreams = ", ".join(
        f"{p.name}={redact_url(p.url)}" + (" (mirror)" if p.mirror else "")
        for p in settings.proxies
    )
    log.info(
        "dockyard serving %s://%s with %d worker(s), data in %s, accounts %s%s",
        "https" if settings.tls_cert else "http",
        settings.listen,
        workers,
        settings.data_dir.resolve(),
        "on" if settings.auth_enabled else "off",
        f", caching {upstreams}" if upstreams else "",
    )
    server = http_server(settings, workers, verbose, open_files)
    from dockyard.cli.early_stop import judge_clean_exits_after_group_stops, keep_early_stops
    from dockyard.cli.metrics_serving import metrics_for_workers

    with claim, metrics_for_workers(settings), settings_for_workers(settings) as settings_file:
        if reload is not None:
            reload_on_sighup(server, Reloader(settings, reload), settings_file)
        share_with_workers(settings)
        keep_early_stops()
        judge_clean_exits_after_group_stops(server)
        server.serve()


def http_server(
    settings: Settings, workers: int, verbose: bool = False, open_files: int | None = None
) -> Any:
    """The granian server `run` starts: the application's factory in each of `workers`
    processes, with the timeouts and TLS the settings give; each worker takes as many
    connections as `open_files` (the process's open-file limit, read now when not given)
    leaves room for."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops, SSLProtocols
    from granian.http import HTTP1Settings

    if open_files is None:
        import resource

        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    server = Granian(
        target="dockyard.api.app:app_from_environment",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        # Plain HTTP is HTTP/1.1 only: in auto mode granian waits for a first byte to tell the
        # versions apart, with no timeout, so connections that sent nothing were held forever.
        # Over TLS, HTTP/2 is chosen by ALPN.
        http=HTTPModes.auto if settings.tls_cert else HTTPModes.http1,
        workers=workers,
        # Idle keep-alive connections count against granian's per-worker cap (by default its
        # backlog divided among the workers, 512 each on two cores): held open by clients'
        # pools, they kept new clients waiting. The open-file limit is the real bound.
        backlog=LISTEN_BACKLOG,
        backpressure=connections_per_worker(open_files),
        # uvloop: the server's CPU per manifest GET fell by about a fifth against asyncio's
        # own loop (bench/README.md); named, so that another loop installed later is not
        # picked up by granian's automatic choice.
        loop=Loops.uvloop,
        log_access=False,
        log_dictconfig=logging_config(verbose, settings.log_format),
        respawn_failed_workers=True,
        # On SIGTERM granian stops accepting, closes idle keep-alive connections and answers
        # the requests in progress with `Connection: close`; a worker still busy after this
        # long is killed, so that a stop (or a rolling restart) has a known bound. A SIGHUP
        # replaces the workers one at a time under the same bound (dockyard.cli.reload).
        workers_kill_timeout=settings.shutdown_timeout_seconds,
        # A client must have sent a request's headers this long after it connected (or after
        # the previous answer): slow-header connections are cut off instead of held forever.
        http1_settings=HTTP1Settings(
            header_read_timeout=int(settings.header_timeout_seconds * 1000)
        ),
        # HTTPS (and HTTP/2 by ALPN) when a certificate is configured; TLS 1.2 at least, as
        # docker and containerd still speak it.
        ssl_cert=settings.tls_cert,
        ssl_key=settings.tls_key,
        ssl_protocol_min=SSLProtocols.tls12,
    )
    skip_memory_census(server)
    return server


@contextlib.contextmanager
def settings_for_workers(settings: Settings) -> Iterator[Path | None]:
    """The file the workers read reloaded settings from (`dockyard.api.reloading`): a memory
    file of this process, which the workers open by its /proc path (named to them by the
    environment), and which goes away with this process however it ends; no copy of the
    settings' secrets is left on disk. None off Linux: a SIGHUP replaces the workers."""
    from dockyard.api.reloading import SETTINGS_FILE_ENV, write_settings

    if sys.platform != "linux":
        yield None
        return
    memory = os.memfd_create("dockyard-settings")
    path = Path(f"/proc/{os.getpid()}/fd/{memory}")
    try:
        write_settings(path, settings)
        os.environ[SETTINGS_FILE_ENV] = str(path)
        yield path
    finally:
        os.environ.pop(SETTINGS_FILE_ENV, None)
        os.close(memory)


def reload_on_sighup(server: Any, reloader: Reloader, settings_file: Path | None) -> None:
    """On SIGHUP, settings the reloader accepts are written where the workers read them.
    With the same certificate files, each worker is sent SIGHUP and takes them in place
    (`dockyard.api.reloading`): no worker stops, no connection is closed. A new certificate
    needs new workers (granian loads it once per worker), which granian starts one at a time
    (`dockyard.cli.reload` says what that costs). Refused settings leave the workers alone.

    granian gives no way to refuse a reload from its reload hooks (an exception there ends
    the server), so its reload step itself is wrapped; a granian without that step keeps
    its own SIGHUP (workers replaced, settings as they were), with a warning."""
    replace = getattr(server, "_reload", None)
    if replace is None:
        log.warning("SIGHUP will replace the workers without reading the settings again")
        return

    def reload_step(spawn_target: object, target_loader: object) -> None:
        # Cleared first, as granian does: a SIGHUP during this step is handled after it.
        server.reload_signal = False
        server.main_loop_interrupt.clear()
        settings = reloader.reload()
        if settings is None:
            return
        from dockyard.api.app import SETTINGS_ENV
        from dockyard.api.reloading import write_settings

        # Workers started from now on (a crashed one respawned) read the environment.
        os.environ[SETTINGS_ENV] = json.dumps(settings.model_dump(mode="json"))
        if settings_file is None:
            replace(spawn_target, target_loader)
            return
        write_settings(settings_file, settings)
        if reloader.new_certificate:
            hand_over(server, spawn_target, target_loader, settings)
            return
        for worker in list(server.wrks):
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker._id(), signal.SIGHUP)

    server._reload = reload_step


def hand_over(server: Any, spawn_target: Any, target_loader: Any, settings: Settings) -> None:
    """granian's reload step (`AbstractServer._reload`), each worker replaced by
    `dockyard.cli.handover`, which moves new connections to the new worker first."""
    from dockyard.cli.handover import replace_worker

    log.info("HUP signal received, gracefully respawning workers..")
    server.respawned_wrks.clear()
    server._env_loader(server.env_files)
    server._call_hooks(server.hooks_reload)
    for idx in range(len(server.wrks)):
        if server.interrupt_signal:  # stopping: the workers left are stopped as they are
            break

        def spawn(idx: int = idx) -> Any:
            worker = server._spawn_worker(
                idx=idx, target=spawn_target, callback_loader=target_loader
            )
            worker.start()
            return worker

        replace_worker(server, idx, spawn, settings.port, settings.header_timeout_seconds)
    server._metrics.incr_spawn(len(server.wrks))


def skip_memory_census(server: Any) -> None:
    """granian's process server reads the memory of every process on the machine when it
    starts (its collector for the workers' RSS limit), before it forks the first worker: on
    a machine running a few hundred processes, tens of milliseconds of a start. This server
    sets no RSS limit, so the collector is never used; its pid file is still written.

    A granian whose start-up is shaped differently keeps its own."""
    from granian.server.common import AbstractServer

    own = getattr(type(server), "_write_pidfile", None)
    if server.workers_rss is not None or own is AbstractServer._write_pidfile:
        return

    def write_pidfile() -> None:
        AbstractServer._write_pidfile(server)

    server._write_pidfile = write_pidfile


def claim_address(host: str, port: int) -> socket.socket:
    """Exit with one line when something already listens on the address; else return the claim
    on it, to be held for as long as the server runs.

    granian's workers each bind the address with SO_REUSEPORT, so the kernel lets any other
    process of the same user that does the same join them: a second server on a taken port
    started silently and took every other connection. A bind without SO_REUSEPORT succeeds
    only when nobody listens there (SO_REUSEADDR still allows the TIME_WAIT leftovers of a
    server just stopped). Two servers started at once would both pass that check before
    either listens: the claim, a name in the abstract socket namespace that only one process
    can hold and that goes away with it, settles which one starts."""
    try:
        # An ASCII name goes as bytes: given text, the resolver first loads the IDNA codec
        # (and stringprep) for it, which nothing else in a start needs.
        family, kind, proto, _, address = socket.getaddrinfo(
            host.encode() if host.isascii() else host,
            port,
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )[0]
        claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            claim.bind(f"\0dockyard-listen-{address[0]}-{int(address[1])}")
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
        except OSError:
            claim.close()
            raise
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            reason = "the address is already in use (is another server running there?)"
        else:
            reason = exc.strerror or str(exc)
        shown = f"[{host}]" if ":" in host else host
        raise fail(f"cannot listen on {shown}:{port}: {reason}", FAILED) from None
    return claim


def load_for_workers(settings: Settings) -> None:
    """Import what the workers run before their first answer: the application and its route
    table's compiled patterns, with the parts it loads only for some settings (the web pages'
    route table, the token service, the metrics middleware, the backends' and the
    pull-through cache's modules); once here, not again by every worker
    (`tests/unit/test_serve_imports.py` holds a worker to importing nothing, and compiling
    no route's pattern, until it has answered). The pages themselves load with the first
    page served (`dockyard.web.routes`)."""
    import importlib

    from dockyard.api.app import routes_for  # the workers' target is in its module
    from dockyard.assembly import modules_for

    routes_for(settings)  # its patterns, compiled into `re`'s cache the workers inherit
    if settings.auth_enabled:
        importlib.import_module("dockyard.auth.setup")
    if settings.metrics:
        importlib.import_module("dockyard.api.metrics")
    for name in modules_for(settings):
        importlib.import_module(name)
    if settings.proxies:
        # Every upstream request runs on anyio's asyncio backend, which anyio imports only on
        # first use: each worker's first cache miss waited 0.2-0.5 s of CPU for it, in the
        # middle of a cold pull (bench/README.md).
        importlib.import_module("anyio._backends._asyncio")


def share_with_workers(settings: Settings) -> None:
    """Keep what the workers inherit shared with this process.

    Workers are forked from here and share its memory until either side writes to a page; the
    cyclic garbage collector's full passes write to every object they visit, which copied the
    inherited modules into each worker within minutes of load. Frozen objects are never
    visited. The application is imported first (`load_for_workers`) so that its modules are
    among them.
    """
    import gc

    from dockyard.core.memory import limit_arenas

    load_for_workers(settings)
    limit_arenas()
    # No full collection first: the automatic ones during the imports left it nothing to
    # free (0 of about 75,000 objects), and it visits every object before the first answer.
    # The start runs with the collector off (`cli.main`); the workers collect as usual.
    gc.freeze()
    gc.enable()


def logging_config(verbose: bool = False, log_format: str = "text") -> dict:
    """The server's logging; `verbose` lets libraries' INFO lines through (httpx's
    "HTTP Request:" line for every upstream request of the pull-through cache), `log_format`
    "json" writes one JSON object per line. Both formats redact secrets
    (`dockyard.core.logs`)."""
    # The log lines name neither processes nor threads: spare each record the lookups (a
    # getpid system call and multiprocessing's current process, per request).
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.logThreads = False
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # In the text format the access log writes its lines itself (dockyard.api.access_log).
        "formatters": {
            "text": {"()": "dockyard.core.logs.TextFormatter"},
            "json": {"()": "dockyard.core.logs.JsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json" if log_format == "json" else "text",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["console"], "level": "INFO"},
        "loggers": {
            "_granian": {"level": "WARNING"},
            "granian": {"level": "INFO"},
            "alembic": {"level": "WARNING"},
            "httpx": {"level": "INFO" if verbose else "WARNING"},
            "httpcore": {"level": "INFO" if verbose else "WARNING"},
        },
    }
