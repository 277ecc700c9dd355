"""The garbage collector's review queue; every blob already stored is queued once.

Revision ID: 0008
Revises: 0007
"""

import time

import sqlalchemy as sa
from alembic import op

from dockyard.metadata.schema import metadata

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = metadata.tables["gc_queue"]
    metadata.create_all(op.get_bind(), tables=[table])
    # Content stored before the queue existed was never queued: review all of it once.
    blobs = sa.table("blobs", sa.column("digest"))
    op.execute(
        table.insert().from_select(
            ["digest", "queued_at"], sa.select(blobs.c.digest, sa.literal(time.time()))
        )
    )


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), tables=[metadata.tables["gc_queue"]])
