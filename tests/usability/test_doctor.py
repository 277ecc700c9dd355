"""`dockyard doctor`: one line per check, and each check fails when what it checks is broken
(a read-only folder, too little space, an old schema, an unreachable database, a key of
another certificate), never printing a secret."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import s3_postgres_env
from tests.support import certs
from tests.support.postgres import PostgresCluster
from tests.support.seaweedfs import SeaweedS3
from tests.support.server import free_port

LINE = re.compile(r"^(ok|warn|FAIL) +(\w+) +(.+)$")


def dockyard(*args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()):
    return subprocess.run(
        [*prefix, sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def checks(output: str) -> dict[str, tuple[str, str]]:
    """check name -> (status, detail); every line of the output must be one check."""
    found = {}
    for line in output.splitlines():
        match = LINE.match(line)
        assert match, f"not a check line: {line!r}"
        found[match.group(2)] = (match.group(1), match.group(3))
    return found


def new_registry(data: Path, env: dict[str, str] | None = None) -> None:
    made = dockyard("db", "upgrade", "--init", "--data-dir", str(data), env=env)
    assert made.returncode == 0, made.stderr


def certificate(folder: Path, stem: str, days: float) -> tuple[Path, Path]:
    pair = certs.certificate(folder, stem, days=days)
    return pair.cert, pair.key


def tls_config(folder: Path, cert: Path, key: Path) -> Path:
    config = folder / "dockyard.yaml"
    config.write_text(f"tls_cert: {cert}\ntls_key: {key}\n")
    return config


def test_a_healthy_registry_passes_every_check(tmp_path: Path) -> None:
    data = tmp_path / "data"
    new_registry(data)
    cert, key = certificate(tmp_path, "server", days=90)
    config = tls_config(tmp_path, cert, key)
    done = dockyard("doctor", "--config", str(config), "--data-dir", str(data))
    assert done.returncode == 0, done.stdout + done.stderr
    found = checks(done.stdout)
    assert list(found) == ["config", "storage", "space", "metadata", "clock", "tls"]
    assert all(status == "ok" for status, _ in found.values()), found
    assert str(data.resolve()) in found["storage"][1]
    assert "valid until" in found["tls"][1]
    # The probe blob it wrote is gone again.
    assert not [p for p in (data / "blobs").rglob("*") if p.is_file()]


def test_an_invalid_configuration_is_the_first_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "dockyard.yaml"
    config.write_text("workers: many\n")
    done = dockyard("doctor", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2
    found = checks(done.stdout)
    assert found["config"][0] == "FAIL" and "workers" in found["config"][1]
    assert list(found) == ["config"]


def read_only_prefix(folder: Path) -> tuple[str, ...]:
    """Run the command where `folder` is read-only. Root writes through file modes, so for
    root the folder is bind-mounted read-only in a mount namespace of the command's own
    (nothing outside it sees the mount); anyone else gets the mode bits."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        return ()
    assert shutil.which("unshare"), "unshare (util-linux) is needed to make a read-only folder"
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
    return ("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(folder))


def test_a_read_only_data_folder_fails_the_storage_check(tmp_path: Path) -> None:
    data = tmp_path / "data"
    new_registry(data)
    prefix = read_only_prefix(data)
    try:
        done = dockyard("doctor", "--data-dir", str(data), prefix=prefix)
    finally:
        data.chmod(0o700)
    assert done.returncode == 1, done.stdout + done.stderr
    found = checks(done.stdout)
    assert found["storage"][0] == "FAIL", found
    assert "cannot write" in found["storage"][1]
    assert "read-only" in found["storage"][1].lower() or "permission" in found["storage"][1].lower()


def test_too_little_free_space_fails_the_space_check(tmp_path: Path) -> None:
    data = tmp_path / "data"
    new_registry(data)
    free_mib = shutil.disk_usage(data).free >> 20
    done = dockyard("doctor", "--data-dir", str(data), "--min-free-mib", str(free_mib + 1024))
    assert done.returncode == 1
    found = checks(done.stdout)
    assert found["space"][0] == "FAIL" and "below" in found["space"][1]
    assert found["storage"][0] == "ok"


def test_a_key_of_another_certificate_fails_the_tls_check(tmp_path: Path) -> None:
    data = tmp_path / "data"
    new_registry(data)
    cert, _ = certificate(tmp_path, "server", days=90)
    _, other_key = certificate(tmp_path, "other", days=90)
    done = dockyard(
        "doctor", "--config", str(tls_config(tmp_path, cert, other_key)), "--data-dir", str(data)
    )
    # The configuration itself is refused: serve would refuse it the same way.
    assert done.returncode == 2
    found = checks(done.stdout)
    assert found["config"][0] == "FAIL"
    assert "does not match" in found["config"][1]
    assert "BEGIN" not in done.stdout  # no key material


def test_a_certificate_expiring_soon_is_a_warning(tmp_path: Path) -> None:
    data = tmp_path / "data"
    new_registry(data)
    cert, key = certificate(tmp_path, "server", days=3)
    config = tls_config(tmp_path, cert, key)
    done = dockyard("doctor", "--config", str(config), "--data-dir", str(data))
    assert done.returncode == 0
    status, detail = checks(done.stdout)["tls"]
    assert status == "warn" and "expires in 2 day" in detail
    stricter = dockyard(
        "doctor", "--config", str(config), "--data-dir", str(data), "--cert-warn-days", "1"
    )
    assert checks(stricter.stdout)["tls"][0] == "ok"


def test_an_old_schema_fails_the_metadata_check(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import create_engine

    from dockyard.metadata.diagnosis import head_revision
    from dockyard.metadata.migrate import alembic_config

    data = tmp_path / "data"
    new_registry(data)
    # A real downgrade of one revision, as a registry last served by the previous version.
    engine = create_engine(f"sqlite:///{data / 'metadata.db'}")
    command.downgrade(alembic_config(engine), "-1")
    engine.dispose()
    done = dockyard("doctor", "--data-dir", str(data))
    assert done.returncode == 1
    status, detail = checks(done.stdout)["metadata"]
    assert status == "FAIL"
    assert f"this version needs {head_revision()}" in detail
    assert "dockyard db upgrade" in detail
    # The doctor migrated nothing: it still fails until told to.
    assert dockyard("doctor", "--data-dir", str(data)).returncode == 1
    assert dockyard("db", "upgrade", "--data-dir", str(data)).returncode == 0
    assert dockyard("doctor", "--data-dir", str(data)).returncode == 0


def test_an_unreachable_postgresql_fails_without_showing_its_password(tmp_path: Path) -> None:
    password = "doctor-secret-password-1"
    url = f"postgresql://dockyard:{password}@127.0.0.1:{free_port()}/registry"
    done = dockyard("doctor", "--data-dir", str(tmp_path / "data"), env={"DOCKYARD_METADATA": url})
    assert done.returncode == 1
    found = checks(done.stdout)
    assert found["metadata"][0] == "FAIL" and "unreachable" in found["metadata"][1]
    assert found["clock"][0] == "FAIL"
    assert password not in done.stdout + done.stderr


def test_s3_and_postgresql_pass_and_the_clock_is_compared_with_the_database(
    tmp_path: Path, s3_server: SeaweedS3, pg_cluster: PostgresCluster
) -> None:
    env = s3_postgres_env(s3_server, pg_cluster, redirect=False)
    data = tmp_path / "data"
    new_registry(data, env)
    done = dockyard("doctor", "--data-dir", str(data), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    found = checks(done.stdout)
    assert found["storage"] == ("ok", f"{env['DOCKYARD_STORAGE']} takes writes")
    assert found["metadata"][0] == "ok" and "PostgreSQL" in found["metadata"][1]
    status, detail = found["clock"]
    assert status == "ok" and "from the database's clock" in detail and "SQLite" not in detail
