"""`dockyard serve` loads the server's modules, not the client's or the admin commands': the
command line imports a command's module only when that command (or the full help) is asked for."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from tests.conftest import s3_postgres_env
from tests.support.postgres import PostgresCluster
from tests.support.seaweedfs import SeaweedS3

PROBE = textwrap.dedent("""
    import json, sys
    from dockyard.cli.main import app_for
    command = app_for(sys.argv[1:])
    import typer.main
    names = sorted(typer.main.get_command(command).commands)
    loaded = sorted(m for m, v in sys.modules.items() if v is not None)  # None: barred
    print(json.dumps({"commands": names, "modules": loaded}))
""")

COMMAND_MODULES = (
    "dockyard.cli.admin",
    "dockyard.cli.images",
    "dockyard.cli.login",
    "dockyard.cli.signing",
    "dockyard.cli.attest",
    "dockyard.cli.policy",
    "dockyard.client.api",
    "httpx",
    "markdown_it",
    "yaml",
)


def _probe(*argv: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _loaded(modules: list[str], prefix: str) -> bool:
    return any(m == prefix or m.startswith(prefix + ".") for m in modules)


def test_serve_does_not_import_the_other_commands() -> None:
    seen = _probe("dockyard", "serve", "--listen", "127.0.0.1:1")
    assert "serve" in seen["commands"]
    assert [m for m in COMMAND_MODULES if _loaded(seen["modules"], m)] == []


def test_a_command_loads_its_own_module_alone() -> None:
    from dockyard.cli.commands import COMMAND_MODULES as TABLE

    seen = _probe("dockyard", "user", "list")
    assert set(seen["commands"]) == set(TABLE["admin"])
    assert _loaded(seen["modules"], "dockyard.cli.admin")
    assert not _loaded(seen["modules"], "dockyard.cli.images")
    assert not _loaded(seen["modules"], "dockyard.cli.signing")
    seen = _probe("dockyard", "tags", "localhost:5000/app")
    assert set(seen["commands"]) == set(TABLE["images"])
    assert not _loaded(seen["modules"], "dockyard.cli.admin")
    assert not _loaded(seen["modules"], "dockyard.cli.serve_entry")


def test_the_version_needs_no_other_command() -> None:
    seen = _probe("dockyard", "--version")
    assert [m for m in COMMAND_MODULES if _loaded(seen["modules"], m)] == []


def test_the_full_help_no_command_or_a_mistyped_word_gets_every_command() -> None:
    for argv in (["dockyard", "--help"], ["dockyard"], ["dockyard", "pusj"]):
        seen = _probe(*argv)
        assert {"serve", "user", "push", "login", "gc", "policy"} <= set(seen["commands"]), argv
        assert _loaded(seen["modules"], "dockyard.cli.admin")


def _nothing() -> None:
    pass


def test_the_table_names_the_module_of_every_command() -> None:
    # Each module registered alone adds exactly the commands the table gives it, so a command
    # named on the command line is found with its module alone, and none is missing.
    from dockyard.cli.commands import COMMAND_MODULES as TABLE

    for module, commands in TABLE.items():
        alone = typer.Typer()
        alone.callback()(_nothing)  # a group even with one command
        importlib.import_module(f"dockyard.cli.{module}").register(alone)
        assert set(typer.main.get_command(alone).commands) == set(commands), module


def test_a_command_answers_alone_as_in_the_whole_command_line() -> None:
    # Its help, and its refusal of an option it does not have, word for word: the top level's
    # settings and callback are the same in the app of one module.
    from dockyard.cli.commands import MODULE_OF_COMMAND, full_app, one_module_app

    runner = CliRunner()
    whole = full_app()
    for word, module in MODULE_OF_COMMAND.items():
        alone = one_module_app(module)
        for args in ([word, "--help"], [word, "--no-such-option"]):
            theirs, ours = runner.invoke(whole, args), runner.invoke(alone, args)
            assert (ours.exit_code, ours.output) == (theirs.exit_code, theirs.output), args


CLIENT_PROBE = textwrap.dedent("""
    import json, sys
    from dockyard.cli.main import app_for
    import typer.main
    typer.main.get_command(app_for(["dockyard", "tags"]))
    from dockyard.client.api import Client  # what `dockyard tags` and `inspect` run
    import httpx
    loaded = sorted(m for m, v in sys.modules.items() if v is not None)  # None: barred
    print(json.dumps({"modules": loaded}))
""")


def test_a_registry_command_loads_no_signing_or_terminal_library() -> None:
    # httpx's own command line (click, rich, pygments) and the signing formats (cryptography)
    # were two fifths of `dockyard tags`; Typer's pydantic conversion (Typer 0.29) another.
    result = subprocess.run(
        [sys.executable, "-c", CLIENT_PROBE], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout)["modules"]
    assert _loaded(modules, "httpx") and _loaded(modules, "dockyard.client.registry")
    heavy = ("click", "rich", "pygments", "pydantic", "cryptography", "dockyard.client.signatures")
    assert [m for m in heavy if _loaded(modules, m)] == []


def test_the_imported_app_is_the_whole_command_line() -> None:
    from dockyard.cli.main import app

    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "user", "push", "pull", "token", "gc", "fsck", "attest"):
        assert command in result.stdout, command


# What a server worker loads between its fork and its first answer on `/v2/`: the serving
# process runs its preparation (`serve.prepare_apart`, in a child of its own) and, in the order
# `serve.run` does, what it does before forking (`load_for_workers`, `metrics_for_workers`,
# `share_with_workers`); the worker then builds the app from the environment, starts it
# (lifespan) and answers. Anything it imports on the way is imported by
# every worker on its own: time before it answers, and memory it shares with no one.
WORKER_PROBE = textwrap.dedent("""
    import asyncio, json, os, re, sys
    from dockyard.api.app import SETTINGS_ENV
    from dockyard.cli import serve
    from dockyard.cli.metrics_serving import metrics_for_workers
    from dockyard.config import Settings

    settings = Settings.model_validate(json.loads(sys.argv[1]))
    serve.prepare_apart(settings)
    os.environ[SETTINGS_ENV] = json.dumps(settings.model_dump(mode="json"))

    async def first_answer(app):
        events = asyncio.Queue()
        for event in ({"type": "lifespan.startup"}, None):
            await events.put(event)
        sent = []

        async def lifespan_send(message):
            sent.append(message["type"])

        lifespan = asyncio.create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                events.get, lifespan_send))
        while "lifespan.startup.complete" not in sent:
            assert not lifespan.done(), sent
            await asyncio.sleep(0)
        status = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": "/v2/", "raw_path": b"/v2/",
            "root_path": "", "query_string": b"", "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", settings.port),
            "state": {},
        }
        await app(scope, receive, send)
        loaded = sorted(set(sys.modules) - before)
        await events.put({"type": "lifespan.shutdown"})
        await lifespan
        return status, loaded

    serve.load_for_workers(settings)  # as `serve.run` does, while the child prepares
    with metrics_for_workers(settings):
        serve.share_with_workers(settings)
        before = set(sys.modules)
        compiled = []  # patterns not in `re`'s cache: compiled anew by this worker
        compile_pattern = re._compiler.compile

        def counted_compile(pattern, flags):
            compiled.append(str(pattern))
            return compile_pattern(pattern, flags)

        re._compiler.compile = counted_compile
        from dockyard.api.app import app_from_environment
        status, loaded = asyncio.run(first_answer(app_from_environment()))
        re._compiler.compile = compile_pattern
    print(json.dumps({"status": status, "loaded": loaded, "compiled": compiled,
                      "jinja2": "jinja2" in sys.modules, "nh3": "nh3" in sys.modules}))
""")


def _worker_loads(tmp_path: Path, env: dict[str, str] | None = None, **settings: object) -> dict:
    chosen = {"listen": "127.0.0.1:5000", "data_dir": str(tmp_path / "data"), **settings}
    env = {**os.environ, "DOCKYARD_ADMIN_PASSWORD": "probe-password-1", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", WORKER_PROBE, json.dumps(chosen)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "settings",
    [
        {},  # the defaults: SQLite, pages and metrics on, no accounts on loopback
        {"auth": True},
        {"ui": False, "metrics": False, "read_only": True},
        {"proxies": [{"name": "docker.io", "url": "http://127.0.0.1:9", "mirror": True}]},
    ],
    ids=["defaults", "accounts", "bare", "pull-through"],
)
def test_a_worker_imports_nothing_before_its_first_answer(
    tmp_path: Path, settings: dict[str, object]
) -> None:
    seen = _worker_loads(tmp_path, **settings)
    assert seen["status"] == [401 if settings.get("auth") else 200]
    assert seen["loaded"] == []
    # Nor compiles the route table's patterns (Starlette compiles one per route, 60-odd, most
    # of a worker's own work before it answered): the serving process compiled them before
    # the fork, and they come from `re`'s cache the worker inherits.
    assert [pattern for pattern in seen["compiled"] if pattern.startswith("^/")] == []
    # The web pages (and jinja2) load with the first page served, not with the server; the
    # README sanitiser with the first README rendered.
    assert seen["jinja2"] is False
    assert seen["nh3"] is False


def test_a_worker_on_s3_and_postgresql_imports_nothing_before_its_first_answer(
    tmp_path: Path, s3_server: SeaweedS3, pg_cluster: PostgresCluster
) -> None:
    shared = s3_postgres_env(s3_server, pg_cluster, redirect=True)
    seen = _worker_loads(
        tmp_path,
        env={key: shared.pop(key) for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
        auth=True,
        **{key.removeprefix("DOCKYARD_").lower(): value for key, value in shared.items()},
    )
    assert seen["status"] == [401]
    assert seen["loaded"] == []


# What the serving process does before it forks its workers, in `serve.run`'s order: the
# command line read without Typer (`cli.main`), the settings, the preparation and the imports
# the workers share (`serve.prepare_and_load`), granian, the metrics' folder, the freeze.
SERVING_PROBE = textwrap.dedent("""
    import json, os, sys
    from dockyard.cli import serve_entry
    from dockyard.cli.serve_argv import read

    options = read(sys.argv[1:])
    assert options is not None, "a plain command line"
    settings = serve_entry.settings_or_fail(options.pop("config", None), **{
        k: v for k, v in options.items() if k in ("listen", "data_dir", "auth", "workers")})
    from dockyard.cli import serve
    from dockyard.cli.metrics_serving import metrics_for_workers

    forks = []
    real_fork = os.fork

    def counted_fork():
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    os.fork = counted_fork
    serve.prepare_and_load(settings)
    os.fork = real_fork
    serve.http_server(settings, serve.worker_count(settings))
    with metrics_for_workers(settings):
        serve.share_with_workers(settings)
    loaded = sorted(m for m, v in sys.modules.items() if v is not None)  # None: barred
    print(json.dumps({"forks": len(forks), "modules": loaded}))
""")

# Libraries a server on the default settings (SQLite, no accounts, no upstreams) never
# needs before its workers answer, each of which once crept onto that path and cost tens of
# milliseconds of every start to ready (issue 21's target is 0.3 s): the command-line and
# settings libraries, the migrations (only when the schema is behind), the ORM and the async
# engine (PostgreSQL only), the HTTP client (upstreams and webhooks), the pages' templates
# (the first page served), and the rest of the client's.
NOT_ON_THE_SERVE_PATH = (
    "typer",
    "click",
    "rich",
    "pydantic",
    "alembic",
    "mako",
    "sqlalchemy.orm",
    "sqlalchemy.ext.asyncio",
    "greenlet",
    "asyncpg",
    "httpx",
    "httpcore",
    "jinja2",
    "markdown_it",
    "yaml",
    "cryptography",
    "obstore",
    # Our own modules that only some pages and routes use, loaded with the first of them.
    "dockyard.service.image_views",
)


def _serving_process(data_dir: Path, *flags: str) -> dict:
    argv = ["--listen", "127.0.0.1:5000", "--data-dir", str(data_dir), *flags]
    env = {**os.environ, "DOCKYARD_ADMIN_PASSWORD": "probe-password-1"}
    result = subprocess.run(
        [sys.executable, "-c", SERVING_PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_the_serving_process_loads_no_heavy_library_before_its_workers(tmp_path: Path) -> None:
    for start in ("new folder", "existing folder"):
        seen = _serving_process(tmp_path / "data")
        heavy = [m for m in NOT_ON_THE_SERVE_PATH if _loaded(seen["modules"], m)]
        assert heavy == [], start


def test_a_folder_already_prepared_is_served_without_a_preparing_child(tmp_path: Path) -> None:
    # The child imports the whole registry beside the serving process only to find the schema
    # current: most of a start's CPU on a folder that needs nothing.
    assert _serving_process(tmp_path / "data")["forks"] == 1  # a new folder is made
    assert (tmp_path / "data" / "metadata.db").is_file()
    assert _serving_process(tmp_path / "data")["forks"] == 0
    # With accounts on, the signing key and the first administrator are the child's to check.
    assert _serving_process(tmp_path / "data", "--auth")["forks"] == 1
    # A folder others may read (an older version's) is the child's to tighten, once.
    (tmp_path / "data").chmod(0o755)
    assert _serving_process(tmp_path / "data")["forks"] == 1
    assert (tmp_path / "data").stat().st_mode & 0o077 == 0
    assert _serving_process(tmp_path / "data")["forks"] == 0


def test_a_folder_behind_the_newest_schema_is_prepared(tmp_path: Path) -> None:
    import sqlite3

    from dockyard.metadata.migrate import script_head, upgrade
    from dockyard.metadata.sqlite_runner import sqlite_engine

    path = tmp_path / "data" / "metadata.db"
    path.parent.mkdir(mode=0o700)
    engine = sqlite_engine(path)
    upgrade(engine, "0015")  # a folder an older Dockyard made
    engine.dispose()
    assert _serving_process(tmp_path / "data")["forks"] == 1
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert rows == [(script_head(),)]
