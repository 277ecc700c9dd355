"""`dockyard serve` and `dockyard config`: defaults, sources of settings, refusals, read-only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from dockyard.config import machine_name
from tests.support.push import error_code, push_image, unique_repo
from tests.support.server import free_port


def dockyard(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 30
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def test_help_explains_every_option() -> None:
    out = dockyard("serve", "--help").stdout
    for option in (
        "--listen",
        "--data-dir",
        "--config",
        "--workers",
        "--read-only",
        "--insecure-no-auth",
        "--no-fsync",
    ):
        assert option in out
    assert "serve" in dockyard("--help").stdout


def test_non_loopback_address_turns_accounts_on(start_registry) -> None:
    # Listening on every interface; the test itself only talks to loopback.
    port = free_port()
    server = start_registry(
        "--listen",
        f"0.0.0.0:{port}",
        port=port,
        env={"DOCKYARD_ADMIN_PASSWORD": "first-admin-password"},
    )
    resp = httpx.get(f"http://127.0.0.1:{port}/v2/")
    assert resp.status_code == 401
    # No public URL configured: the realm names this machine, whatever Host the client sent.
    machine = machine_name()
    assert resp.headers["WWW-Authenticate"].startswith(f'Bearer realm="http://{machine}:{port}/')
    push = httpx.post(f"http://127.0.0.1:{port}/v2/a/blobs/uploads/")
    assert push.status_code == 401
    assert "accounts on" in server.log()
    result = dockyard(
        "config", "check", env={"DOCKYARD_AUTH": "1", "DOCKYARD_INSECURE_NO_AUTH": "1"}
    )
    assert result.returncode == 2 and "contradict" in result.stderr


def test_insecure_no_auth_serves_the_network_without_accounts(start_registry) -> None:
    port = free_port()
    start_registry("--listen", f"0.0.0.0:{port}", "--insecure-no-auth", port=port)
    assert httpx.get(f"http://127.0.0.1:{port}/v2/").status_code == 200


def test_config_sources_and_validation(tmp_path: Path) -> None:
    config = tmp_path / "dockyard.yml"
    config.write_text("listen: 127.0.0.1:6000\nworkers: 3\n")
    shown = dockyard(
        "config", "show", "--config", str(config), env={"DOCKYARD_WORKERS": "4"}
    ).stdout
    assert "listen: 127.0.0.1:6000" in shown and "workers: 4" in shown
    config.write_text("listen: 127.0.0.1:6000\nnot_a_setting: 1\n")
    result = dockyard("config", "check", "--config", str(config))
    assert result.returncode == 2 and "not_a_setting" in result.stderr
    config.write_text("workers: many\n")
    result = dockyard("config", "check", "--config", str(config))
    assert result.returncode == 2 and "workers" in result.stderr
    result = dockyard("config", "check", env={"DOCKYARD_LISTEN": "nohost"})
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_default_data_dir_and_env_settings(tmp_path: Path, start_registry) -> None:
    # The CLI fixture always passes --data-dir; here the folder comes from the environment.
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard", "serve"],
        cwd=tmp_path,
        env={**os.environ, "DOCKYARD_LISTEN": f"127.0.0.1:{port}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from tests.support.server import wait_for_http

        wait_for_http(f"http://127.0.0.1:{port}/v2/", proc=proc)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            push_image(c, unique_repo(), "t")
        assert (tmp_path / "dockyard-data" / "metadata.db").exists()
        assert any((tmp_path / "dockyard-data" / "blobs").rglob("*"))
    finally:
        proc.terminate()
        proc.wait(15)


def test_read_only_serves_pulls_and_refuses_writes(tmp_path: Path, start_registry) -> None:
    data = tmp_path / "shared"
    writer = start_registry(data_dir=data)
    repo = unique_repo()
    with httpx.Client(base_url=writer.url) as c:
        digest, body = push_image(c, repo, "t")
    writer.stop()
    reader = start_registry("--read-only", data_dir=data)
    with httpx.Client(base_url=reader.url) as c:
        assert c.get(f"/v2/{repo}/manifests/t").content == body
        for method, url in (
            ("POST", f"/v2/{repo}/blobs/uploads/"),
            ("PUT", f"/v2/{repo}/manifests/t"),
            ("DELETE", f"/v2/{repo}/manifests/{digest}"),
        ):
            resp = c.request(method, url, content=b"{}")
            assert resp.status_code == 405 and error_code(resp) == "UNSUPPORTED"


def test_a_data_folder_or_database_it_cannot_use_is_one_clear_line(tmp_path: Path) -> None:
    """Not a Python traceback: what could not be used and why, and exit status 1."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    port = str(free_port())
    result = dockyard("serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(blocker / "data"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert "dockyard: cannot prepare" in result.stderr and str(blocker) in result.stderr
    result = dockyard(
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(tmp_path / "data"),
        "--metadata",
        f"postgresql://nobody@127.0.0.1:{free_port()}/none",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert "dockyard: cannot prepare" in result.stderr
