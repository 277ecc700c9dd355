"""How a copy is shown: a progress bar per layer (like `docker push`), JSON lines, or nothing."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from dockyard.client.image import Manifest
from dockyard.core.manifest import Descriptor


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


class BarReporter:
    """One line per blob: bytes, speed, then "Pushed", "Layer already exists", "Mounted from"."""

    def __init__(self, console: Console | None = None, verb: str = "Pushed") -> None:
        self.verb = verb
        self.progress = Progress(
            TextColumn("{task.fields[name]}"),
            BarColumn(bar_width=30),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[state]}"),
            console=console or Console(stderr=True),
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> BarReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def blob_started(self, descriptor: Descriptor) -> None:
        if descriptor.digest not in self.tasks:
            self.tasks[descriptor.digest] = self.progress.add_task(
                "", total=descriptor.size, name=short(descriptor.digest), state="Waiting"
            )

    def blob_progress(self, descriptor: Descriptor, advanced: int) -> None:
        task = self.tasks[descriptor.digest]
        if advanced < 0:  # a resumed transfer starts over from the server's offset
            self.progress.update(task, completed=0, state="Retrying")
            return
        self.progress.update(task, advance=advanced, state="Transferring")

    def blob_finished(self, descriptor: Descriptor, outcome: str) -> None:
        state = {"pushed": self.verb, "exists": "Layer already exists"}.get(
            outcome, outcome[:1].upper() + outcome[1:]
        )
        self.progress.update(self.tasks[descriptor.digest], completed=descriptor.size, state=state)

    def manifest_written(self, manifest: Manifest, tag: str | None) -> None:
        if tag:
            self.progress.console.print(
                f"{tag}: digest: {manifest.digest} size: {len(manifest.body)}"
            )


class JsonReporter:
    """One JSON object per event on stdout, for CI logs and scripts."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout

    def _emit(self, **event: Any) -> None:
        self.stream.write(json.dumps(event) + "\n")
        self.stream.flush()

    def blob_started(self, descriptor: Descriptor) -> None:
        self._emit(event="blob", digest=descriptor.digest, size=descriptor.size, status="started")

    def blob_progress(self, descriptor: Descriptor, advanced: int) -> None:
        pass

    def blob_finished(self, descriptor: Descriptor, outcome: str) -> None:
        self._emit(event="blob", digest=descriptor.digest, size=descriptor.size, status=outcome)

    def manifest_written(self, manifest: Manifest, tag: str | None) -> None:
        self._emit(
            event="manifest",
            digest=manifest.digest,
            mediaType=manifest.media_type,
            size=len(manifest.body),
            tag=tag,
        )

    def __enter__(self) -> JsonReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
