"""The PostgreSQL stores of the store tests are copies of one database migrated once per session
(tests/stores/conftest.py `migrated_template`): each copy is at the schema's head, is its own
(what one test writes, another never sees), and the template stays empty."""

from __future__ import annotations

from dockyard.metadata.base import ManifestRecord
from dockyard.metadata.diagnosis import head_revision
from dockyard.metadata.sql import SQLMetadataStore
from tests.support.postgres import PostgresCluster

DIGEST = "sha256:" + "d" * 64


def test_each_copy_of_the_migrated_template_is_at_head_and_its_own(
    postgres: PostgresCluster, migrated_template: str, run
) -> None:
    first, second = (
        SQLMetadataStore.open_postgres(postgres.create_database(template=migrated_template))
        for _ in range(2)
    )
    try:
        for store in (first, second):
            assert run(store.schema_state()).revision == head_revision()
        record = ManifestRecord(
            digest=DIGEST, media_type="application/vnd.oci.image.manifest.v1+json", size=10
        )
        run(first.put_manifest("copy/app", record, [], ["v1"]))
        assert run(first.resolve_tag("copy/app", "v1")) is not None
        assert run(second.resolve_tag("copy/app", "v1")) is None
    finally:
        run(first.close())
        run(second.close())
    # Written to the copies only: a copy made now is empty too.
    third = SQLMetadataStore.open_postgres(postgres.create_database(template=migrated_template))
    try:
        assert run(third.resolve_tag("copy/app", "v1")) is None
    finally:
        run(third.close())
