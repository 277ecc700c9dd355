"""A registry that enforces a chunk minimum (`chunk_min_length`) still takes the pushes of
skopeo and crane, which stream each blob in one PATCH, layers larger than the minimum too."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import images
from tests.support.peers import containers_env, require, run, unique_repo


def test_skopeo_and_crane_push_to_a_registry_enforcing_a_chunk_minimum(
    start_registry, tmp_path: Path
) -> None:
    require("skopeo")
    crane = require("crane")
    strict = start_registry(env={"DOCKYARD_CHUNK_MIN_LENGTH": str(2 << 20)})
    image = images.write_oci_image(
        tmp_path / "src", "v1", seed="chunk-min", layers=2, files_per_layer=2, file_size=3 << 20
    )
    assert min(layer.size for layer in image.layers) > 2 << 20
    pushed = f"{strict.host}/{unique_repo('chunkmin')}:v1"
    with containers_env(tmp_path / "containers") as ce:
        ce.skopeo(
            "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1", f"docker://{pushed}"
        )
    tarball = tmp_path / "image.tar"
    run([crane, "pull", "--insecure", "--format", "tarball", pushed, str(tarball)], timeout=120)
    again = f"{strict.host}/{unique_repo('chunkmin')}:v1"
    run([crane, "push", "--insecure", str(tarball), again], timeout=120)
    assert run([crane, "digest", "--insecure", pushed], timeout=60).stdout.strip() == (
        image.manifest_digest
    )
    # crane's tarball is a Docker image (another manifest), with the same layers.
    layers = [
        [layer["digest"] for layer in json.loads(run(
            [crane, "manifest", "--insecure", ref], timeout=60).stdout)["layers"]]
        for ref in (pushed, again)
    ]  # fmt: skip
    assert layers[0] == layers[1] == [layer.digest for layer in image.layers]
