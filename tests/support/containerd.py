"""containerd (Debian's) as a test peer: a daemon of the test's own, on a private socket with its
own root, state and configuration, never the machine's service; `ctr` pulls through it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.peers import Completed, require, run

# Plugins that need kernel features or services a test machine may lack, or that listen on
# their own (CRI): a pull needs only the content store, the metadata and a snapshotter.
DISABLED_PLUGINS = [
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.internal.v1.opt",
    "io.containerd.tracing.processor.v1.otlp",
]


@dataclass
class Containerd:
    root: Path
    proc: subprocess.Popen[bytes] | None = None
    # A unix socket's path is limited to about 100 bytes: a short folder of its own in /tmp.
    socket_dir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="ctrd-", dir="/tmp"))
    )

    @property
    def socket(self) -> Path:
        return self.socket_dir / "sock"

    @property
    def log_path(self) -> Path:
        return self.root / "containerd.log"

    def start(self, timeout: float = 30.0) -> Containerd:
        binary = require("containerd")
        self.root.mkdir(parents=True, exist_ok=True)
        disabled = ", ".join(f'"{p}"' for p in DISABLED_PLUGINS)
        config = self.root / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.root / "root"}"\n'
            f'state = "{self.root / "state"}"\n'
            f"disabled_plugins = [{disabled}]\n"
            f'[grpc]\naddress = "{self.socket}"\n'
            f'[ttrpc]\naddress = "{self.socket}.ttrpc"\n'
            '[debug]\naddress = ""\n'
            '[metrics]\naddress = ""\n'
        )
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [binary, "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while self.ctr("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"containerd did not start:\n{self.log_path.read_text()}")
            time.sleep(0.2)
        return self

    def ctr(self, *args: str, check: bool = True, timeout: float = 300.0) -> Completed:
        return run(
            [require("ctr"), "--address", str(self.socket), *args],
            env={k: v for k, v in os.environ.items() if not k.startswith("CONTAINERD_")},
            check=check,
            timeout=timeout,
        )

    def stop(self, timeout: float = 15.0) -> None:
        try:
            self._stop_process(timeout)
        finally:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def _stop_process(self, timeout: float) -> None:
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

    def __enter__(self) -> Containerd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
